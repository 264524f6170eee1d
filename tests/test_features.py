import json

import numpy as np
import pytest
import torch

from core.audio.features import chunk_starts, cut_chunks, mel_spectrogram, mel_spectrograms, normalise, pad_short
from core.config import ChunkConfig, FeatureConfig

PARITY_CLIPS = ["espeak_00", "human_alsa_Front_Center", "human_codec2_speech_orig_16k"]


@pytest.mark.parametrize("clip", PARITY_CLIPS)
def test_mel_spectrogram_matches_published_librosa_features(official_dir, clip):
    ref_dir = official_dir / "reference" / "intermediates"
    signal = np.load(ref_dir / f"{clip}__signal_peaknorm.npy")
    reference = np.load(ref_dir / f"{clip}__mel_reflectpad.npy")
    mel = mel_spectrogram(signal, 16_000)
    assert mel.shape == reference.shape
    significant = reference > 1e-6 * reference.max()
    assert np.max(np.abs(mel - reference)[significant] / reference[significant]) <= 1e-4


def test_mel_spectrogram_zero_padding_matches_modern_librosa_variant(official_dir):
    ref_dir = official_dir / "reference" / "intermediates"
    signal = np.load(ref_dir / "espeak_00__signal_peaknorm.npy")
    reference = np.load(ref_dir / "espeak_00__mel.npy")
    mel = mel_spectrogram(signal, 16_000, FeatureConfig(pad_mode="constant"))
    significant = reference > 1e-6 * reference.max()
    assert np.max(np.abs(mel - reference)[significant] / reference[significant]) <= 1e-4


def test_chunk_starts_match_published_meta(official_dir):
    meta = json.loads((official_dir / "reference" / "intermediates" / "meta.json").read_text())
    for entry in meta.values():
        assert chunk_starts(entry["n_frames"]).tolist() == entry["chunk_starts"]


@pytest.mark.parametrize("n_samples", [0, 100, 256, 511, 16_000, 48_123])
def test_mel_spectrogram_frame_count_and_shape(n_samples):
    signal = np.random.default_rng(0).standard_normal(n_samples).astype(np.float32)
    mel = mel_spectrogram(signal, 16_000)
    assert mel.shape == (1 + n_samples // 256, 128)
    assert mel.dtype == np.float32 and np.isfinite(mel).all()


def test_mel_spectrograms_batch_equals_one_by_one():
    rng = np.random.default_rng(1)
    signals = [rng.standard_normal(n).astype(np.float32) for n in (3_000, 17_000, 9_999)]
    batched = mel_spectrograms(signals, 16_000)
    for signal, mel in zip(signals, batched):
        np.testing.assert_allclose(mel, mel_spectrogram(signal, 16_000), rtol=1e-6, atol=1e-9)


def test_mel_spectrogram_silence_is_zero_not_nan():
    mel = mel_spectrogram(np.zeros(8_000, np.float32), 16_000)
    assert np.all(mel == 0)


def test_mel_spectrogram_sine_peaks_in_the_right_mel_bin():
    import librosa
    t = np.arange(16_000) / 16_000
    mel = mel_spectrogram(np.sin(2 * np.pi * 1000 * t).astype(np.float32), 16_000)
    centres = librosa.mel_frequencies(130, fmax=8000)[1:-1]
    assert abs(centres[mel.mean(0).argmax()] - 1000) < 60


def test_chunk_starts_dynamic_step():
    cfg = ChunkConfig()
    assert chunk_starts(62, cfg).tolist() == [0] * 11  # exactly one chunk: 11 identical chunks
    assert chunk_starts(172, cfg).tolist() == list(range(0, 111, 11))  # (172 - 62) // 10 = 11
    starts = chunk_starts(np.array([62, 172, 1000]), cfg)
    assert starts.shape == (3, 11) and (starts[:, -1] + 62 <= np.array([62, 172, 1000])).all()


def test_cut_chunks_numpy_and_torch_agree():
    feats = np.arange(100 * 4, dtype=np.float32).reshape(100, 4)
    cfg = ChunkConfig(n_chunks=3, chunk_frames=20)
    starts = chunk_starts(100, cfg)  # step 40
    chunks = cut_chunks(feats, starts, cfg)
    assert chunks.shape == (3, 20, 4)
    assert np.array_equal(chunks[2], feats[80:100])
    assert torch.equal(cut_chunks(torch.from_numpy(feats), starts, cfg), torch.from_numpy(chunks))


def test_pad_short_appends_silence_to_one_chunk():
    feats = np.ones((10, 128), np.float32)
    padded = pad_short(feats)
    assert padded.shape == (62, 128) and np.all(padded[10:] == 0) and np.all(padded[:10] == 1)
    assert pad_short(np.ones((70, 128), np.float32)).shape == (70, 128)


def test_normalise_clips_and_removes_nan():
    x = torch.tensor([[0.0, 10.0, float("nan")], [-100.0, 1.0, 2.0]])
    z = normalise(x, torch.tensor([0.0, 1.0, 0.0]), torch.tensor([1.0, 1.0, 0.0]))
    assert torch.isfinite(z).all() and z.abs().max() <= 3
    assert z[0, 1] == 3 and z[1, 0] == -3 and z[0, 2] == 0


def test_short_clip_is_padded_and_chunked_into_model_input_not_crashed():
    """A 5-frame clip through the one input path: pad to a chunk, cut C chunks, `Normaliser` (issue 10)."""
    from core.data.dataset import ChunkSet, Normaliser
    padded = pad_short(np.ones((5, 128), np.float32))
    chunks = cut_chunks(padded, chunk_starts(len(padded)))
    normaliser = Normaliser.from_statistics(np.zeros(128), np.ones(128), 3.0, torch.device("cpu"))
    x = normaliser(torch.from_numpy(ChunkSet.from_chunks([chunks]).frames).view(-1, 62, 128))
    assert chunks.shape == (11, 62, 128) and x.shape == (11, 1, 62, 128) and x.dtype == torch.float32
    assert torch.equal(x[:, 0, 5:], torch.zeros(11, 57, 128)) and torch.equal(x[:, 0, :5], torch.ones(11, 5, 128))
