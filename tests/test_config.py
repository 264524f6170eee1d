import pytest

from core.config import (ChunkConfig, FeatureConfig, ModelConfig, RunConfig, apply_overrides, config_hash, default, demo,
                         paper, tiny)


def test_run_config_defaults_are_the_published_numbers():
    cfg = RunConfig()
    assert (cfg.audio.sampling_rate, cfg.features.n_fft, cfg.features.hop_length, cfg.features.n_mels) == (16000, 512, 256, 128)
    assert cfg.features.pad_mode == "reflect" and cfg.features.power == 2.0 and not cfg.features.log
    assert cfg.features.clip == 3.0 and (cfg.chunks.n_chunks, cfg.chunks.chunk_frames) == (11, 62)
    assert cfg.model.channels == (32, 32, 64, 64, 128, 128, 128) and cfg.model.strides == (1, 1, 2, 2, 2, 2, 2)
    assert cfg.model.latent_dim == 256 and cfg.model.dropout == 0.5


def test_run_config_dict_round_trip_and_hash():
    cfg = apply_overrides(RunConfig(), ["model.attributes=arousal", "chunks.n_chunks=5", "features.fmax_hz=7000"])
    again = RunConfig.from_dict(cfg.to_dict())
    assert again == cfg and config_hash(again) == config_hash(cfg)
    assert config_hash(cfg) != config_hash(RunConfig())


@pytest.mark.parametrize("override,message", [
    ("chunks.n_chunkz=3", "unknown config key 'chunks.n_chunkz'"),
    ("chunks.n_chunks=three", "chunks.n_chunks expects int, got 'three'"),
    ("audio.peak_normalise=maybe", "expects bool"),
    ("chunks=3", "is a section"),
    ("nonsense", "must look like"),
    ("chunks.n_chunks=0", "n_chunks must be >= 1"),
])
def test_apply_overrides_rejects_bad_input(override, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(RunConfig(), [override])


@pytest.mark.parametrize("factory,message", [
    (lambda: FeatureConfig(pad_mode="edge"), "pad_mode must be"),
    (lambda: ChunkConfig(short_policy="skip"), r"short_policy must be one of \['pad', 'drop', 'error'\]"),
    (lambda: ModelConfig(attributes=("happiness",)), "attributes must be distinct names"),
    (lambda: ModelConfig(n_clusters=1), "n_clusters must be >= 2, got 1"),
    (lambda: RunConfig(name="a b"), "name must be"),
])
def test_config_validation_names_the_valid_range(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


def test_train_config_rejects_an_unknown_keep_epoch_rule():
    with pytest.raises(ValueError, match=r"keep_epoch must be one of \['dev_ccc', 'authors'\], got 'best'"):
        apply_overrides(RunConfig(), ["train.keep_epoch=best"])


def test_paper_presets_keep_the_authors_epoch_and_loss_others_keep_the_projects():
    """Issue 30: `paper` reproduces the released code's kept-epoch rule and the unbiased variances of its CCC loss;
    `default`, `demo` and `tiny` keep the highest utterance-level dev CCC and population variances."""
    for cfg in (paper(), paper("valence"), paper("dominance")):
        assert (cfg.train.keep_epoch, cfg.train.ccc_unbiased) == ("authors", True)
    for cfg in (default(), demo(), tiny(), RunConfig()):
        assert (cfg.train.keep_epoch, cfg.train.ccc_unbiased) == ("dev_ccc", False)


def test_run_identity_leaves_out_the_kept_epoch_fields_at_their_old_behaviour():
    """Runs stored before `keep_epoch` and `ccc_unbiased` existed keep their ids; the paper presets get new ones."""
    assert {"keep_epoch", "ccc_unbiased"}.isdisjoint(default().identity()["train"])
    assert paper().identity()["train"]["keep_epoch"] == "authors" and paper().identity()["train"]["ccc_unbiased"] is True
