"""The data path gathered ahead of the network (issue 11, item 3) and the bf16 training option."""
import numpy as np
import pytest
import torch

from core.config import RunConfig, TrainConfig, tiny
from core.data.dataset import ChunkSet, Normaliser, load_chunks
from core.data.loader import prefetched_inputs
from core.model.network import EmotionCNN, _native_bf16, autocast, resolve_precision
from tests.helpers import random_chunk_set

CPU = torch.device("cpu")


def _memory_mapped(tmp_path, chunk_set: ChunkSet) -> ChunkSet:
    """The chunk set over a real memory-mapped frames file, as training reads the feature store."""
    frames = np.lib.format.open_memmap(tmp_path / "frames.npy", "w+", np.float32, chunk_set.frames.shape)
    frames[:] = chunk_set.frames
    frames.flush()
    mapped = np.load(tmp_path / "frames.npy", mmap_mode="r")
    return ChunkSet(mapped, chunk_set.starts, chunk_set.utterance, chunk_set.files, chunk_set.targets,
                    chunk_set.n_chunks, chunk_set.chunk_frames)


@pytest.mark.parametrize("workers,ahead", [(1, 1), (2, 4), (3, 50)])
def test_prefetched_inputs_are_load_chunks_batch_by_batch(tmp_path, workers, ahead):
    chunk_set = _memory_mapped(tmp_path, random_chunk_set(9, 3))
    normaliser = Normaliser.from_statistics(np.linspace(-1, 1, 128), np.linspace(0.5, 2, 128), 3.0, CPU)
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, len(chunk_set), n) for n in (5, 1, 27, 0, 8, 3)]  # any order, repeats, empty
    got = list(prefetched_inputs(chunk_set, batches, normaliser, workers=workers, ahead=ahead))
    assert len(got) == len(batches)
    for index, inputs in zip(batches, got):
        expected = load_chunks(chunk_set, index, normaliser)
        assert inputs.shape == (len(index), 1, 62, 128) and inputs.dtype == torch.float32
        assert inputs.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(inputs, expected)  # bit for bit


def test_prefetched_inputs_gather_in_background_threads_ahead_of_the_consumer():
    chunk_set = random_chunk_set(4, 2)
    normaliser = Normaliser.from_statistics(np.zeros(128), np.ones(128), 3.0, CPU)
    requested = []

    def batches():
        for k in range(6):
            requested.append(k)
            yield np.array([k % len(chunk_set)])

    stream = prefetched_inputs(chunk_set, batches(), normaliser, ahead=3)
    next(stream)
    assert requested == [0, 1, 2, 3]  # three batches ahead of the one handed out
    assert len(list(stream)) == 5


def test_a_failing_gather_reaches_the_consumer_and_stops_the_threads():
    chunk_set = random_chunk_set(2, 2)
    normaliser = Normaliser.from_statistics(np.zeros(128), np.ones(128), 3.0, CPU)
    with pytest.raises(IndexError):
        list(prefetched_inputs(chunk_set, [np.array([0]), np.array([99])], normaliser))
    stream = prefetched_inputs(chunk_set, (np.array([0]) for _ in range(100)), normaliser)
    next(stream)
    stream.close()  # abandoned mid-way: returns without hanging


def test_precision_is_a_checked_train_option_that_names_its_runs():
    assert TrainConfig().precision == "fp32"
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp16")
    fp32, bf16 = RunConfig(), RunConfig(train=TrainConfig(precision="bf16"))
    # at its default the field stays out of the run id, so runs stored before it existed keep theirs
    assert "precision" not in fp32.identity()["train"] and bf16.identity()["train"]["precision"] == "bf16"
    assert RunConfig(train=TrainConfig(precision="auto")).identity()["train"]["precision"] == "auto"
    old = fp32.to_dict()
    del old["train"]["precision"]
    assert RunConfig.from_dict(old) == fp32


def test_bf16_autocast_runs_the_convolutions_in_bfloat16_and_backpropagates():
    torch.manual_seed(0)
    model = EmotionCNN(tiny().model).train().to(memory_format=torch.channels_last)
    seen = []
    model.encoder[0].register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    x = torch.randn(6, 1, 62, 128).contiguous(memory_format=torch.channels_last)
    with autocast(CPU, "bf16"):
        out = model(x)
    (out.attributes.float().sum() + out.cluster_logits.float().logsumexp(1).sum()).backward()
    with autocast(CPU, "fp32"):
        model(x)
    assert seen == [torch.bfloat16, torch.float32]
    assert all(p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("avx512_bf16, amx, expected", [(False, False, "fp32"), (True, False, "bf16"), (False, True, "bf16")])
def test_auto_precision_is_bf16_only_on_a_cpu_that_computes_it(monkeypatch, avx512_bf16, amx, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    _native_bf16.cache_clear()
    try:
        assert resolve_precision(CPU, "auto") == expected
        assert autocast(CPU, "auto")._enabled is (expected == "bf16")
        assert (resolve_precision(CPU, "fp32"), resolve_precision(CPU, "bf16")) == ("fp32", "bf16")  # as given
    finally:
        _native_bf16.cache_clear()  # the next caller probes this machine again
