import pytest
import torch

from core.config import ModelConfig
from core.model.network import EmotionCNN, official_state_dict
from core.runtime.device import resolve_device


@pytest.mark.parametrize("attributes,n_clusters,expected", [(("arousal",), 10, 831_979),
                                                           (("valence",), 30, 837_119)])
def test_emotion_cnn_has_published_parameter_count(attributes, n_clusters, expected):
    net = EmotionCNN(ModelConfig(attributes=attributes, n_clusters=n_clusters))
    assert sum(p.numel() for p in net.parameters()) == expected


def test_emotion_cnn_output_shapes_joint_model():
    torch.manual_seed(0)
    net = EmotionCNN(ModelConfig(n_clusters=7)).eval()
    out = net(torch.randn(5, 1, 62, 128))
    assert out.embedding.shape == (5, 256) and out.cluster_features.shape == (5, 256)
    assert out.cluster_logits.shape == (5, 7) and out.attributes.shape == (5, 3)
    assert (out.embedding >= 0).all()  # after ReLU
    assert (out.cluster_features < 0).any()  # K-means space is taken before the branch's ReLU


def test_emotion_cnn_published_initialisation():
    torch.manual_seed(0)
    net = EmotionCNN(ModelConfig(attributes=("arousal",)))
    conv = net.encoder[0]
    assert conv.weight.std().item() == pytest.approx((2 / (9 * 32)) ** 0.5, rel=0.1)
    assert net.regressor[0].weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert all(m.bias.abs().max() == 0 for m in net.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)))
    bn = net.encoder[1]
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


def test_reset_cluster_head_changes_size_and_weights():
    net = EmotionCNN(ModelConfig(n_clusters=10))
    before = net.cluster_head.weight.clone()
    net.reset_cluster_head(10)
    assert not torch.equal(before, net.cluster_head.weight)
    net.reset_cluster_head(4)
    assert net.n_clusters == 4 and net(torch.randn(2, 1, 62, 128)).cluster_logits.shape == (2, 4)


def test_emotion_cnn_channels_last_gives_the_same_output():
    torch.manual_seed(0)
    net = EmotionCNN().eval()
    x = torch.randn(3, 1, 62, 128)
    with torch.no_grad():
        plain = net(x).attributes
        fast = net.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last)).attributes
    torch.testing.assert_close(plain, fast, rtol=1e-4, atol=1e-5)


def test_official_state_dict_rejects_unknown_keys():
    with pytest.raises(KeyError, match="unexpected key 'features.0.weight'"):
        official_state_dict({"features.0.weight": torch.zeros(1)})


def test_resolve_device_auto_is_cpu_without_cuda():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected and resolve_device("cpu").type == "cpu"
