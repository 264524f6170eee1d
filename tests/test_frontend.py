"""Files to features: long files are streamed with bounded memory and give the same features."""
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from core.audio.decode import AudioLoadingError, AudioStream, load_audio, peak_normalise
from core.audio.features import chunk_starts, cut_chunks, gather_chunks, mel_spectrogram, streamed_mel
from core.audio.frontend import load_features
from core.config import AudioConfig, ChunkConfig, FeatureConfig
import core.audio.frontend
from tests.helpers import sine

CONFIGS = (AudioConfig(), FeatureConfig(), ChunkConfig())


def _warble(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(rate + channels)
    x = sine(seconds, rate, 190.0) * (1 + 0.5 * sine(seconds, rate, 3.0)) + 0.01 * rng.standard_normal(int(seconds * rate))
    return np.tile(x[:, None], (1, channels)).astype(np.float32) * np.linspace(0.5, 1, channels, dtype=np.float32)


@pytest.mark.parametrize("name, rate, channels, subtype", [
    ("a.wav", 16_000, 1, "PCM_16"), ("b.wav", 8_000, 1, "PCM_16"), ("c.flac", 44_100, 2, "PCM_24"),
    ("d.wav", 96_000, 6, "FLOAT"), ("e.ogg", 22_050, 1, "VORBIS"),
])
def test_streamed_file_gives_the_same_features_bit_for_bit(tmp_path, monkeypatch, name, rate, channels, subtype):
    path = str(tmp_path / name)
    sf.write(path, _warble(3.3, rate, channels), rate, subtype=subtype)
    whole = load_features([path], *CONFIGS).clips[0]
    chunks = load_features([path], *CONFIGS, as_chunks=True).clips[0]
    monkeypatch.setattr(core.audio.frontend, "STREAM_ABOVE_S", 1.0)  # the 3.3-s file is now streamed
    streamed = load_features([path], *CONFIGS).clips[0]
    streamed_chunks = load_features([path], *CONFIGS, as_chunks=True).clips[0]
    assert streamed.n_samples == whole.n_samples == len(load_audio(path))
    assert streamed.n_frames == whole.n_frames
    np.testing.assert_array_equal(streamed.features, whole.features)
    np.testing.assert_array_equal(streamed_chunks.features, chunks.features)
    assert chunks.features.shape == (11, 62, 128)


def test_audio_stream_concatenates_to_load_audio(tmp_path):
    path = tmp_path / "x.flac"
    sf.write(path, _warble(2.0, 44_100, 2), 44_100, subtype="PCM_24")
    stream = AudioStream(path, 16_000, block_frames=1000)
    assert stream.n_samples is None
    np.testing.assert_array_equal(np.concatenate(list(stream)), load_audio(path, 16_000))
    assert stream.n_samples == len(load_audio(path, 16_000))


@pytest.mark.parametrize("seconds", [0.02, 1.3])
@pytest.mark.parametrize("sizes", [[1, 2, 100], [255, 1], [257], [5000], [512, 256, 3]])
def test_streamed_mel_does_not_depend_on_block_boundaries(sizes, seconds):
    signal = _warble(seconds, 16_000)[:, 0]
    cuts = np.cumsum(np.resize(sizes, 2000))
    blocks = np.split(signal, cuts[cuts < len(signal)])
    peak = float(np.abs(signal).max())
    frames = np.concatenate(list(streamed_mel(blocks, 16_000, FeatureConfig(), peak=peak)))
    np.testing.assert_array_equal(frames, mel_spectrogram(peak_normalise(signal), 16_000))
    if len(frames) >= ChunkConfig().chunk_frames:
        kept = gather_chunks(streamed_mel(blocks, 16_000, FeatureConfig(), peak=peak), len(frames))
        np.testing.assert_array_equal(kept, cut_chunks(frames, chunk_starts(len(frames))))


def test_streamed_mel_refuses_a_clip_shorter_than_half_a_window():
    list(streamed_mel([np.ones(257, np.float32)], 16_000))
    with pytest.raises(ValueError, match="longer than n_fft // 2"):
        list(streamed_mel([np.ones(200, np.float32)], 16_000))


def test_long_silent_and_nan_files(tmp_path, monkeypatch):
    monkeypatch.setattr(core.audio.frontend, "STREAM_ABOVE_S", 1.0)
    silent, nan = str(tmp_path / "silent.wav"), str(tmp_path / "nan.wav")
    sf.write(silent, np.zeros(48_000, np.float32), 16_000)
    broken = _warble(3.0, 16_000)[:, 0]
    broken[40_000] = np.nan
    sf.write(nan, broken, 16_000, subtype="FLOAT")
    loaded = load_features([silent, nan], *CONFIGS)
    clips, errors = loaded.clips, loaded.errors
    assert [c.path for c in clips] == [silent] and not clips[0].features.any()  # zeros, never 0 / 0
    assert "NaN" in errors[nan]
    loaded = load_features([silent], *CONFIGS, refuse_silent=True)
    clips, errors = loaded.clips, loaded.errors
    assert not clips and errors[silent] == "silent: every sample is zero"
    with pytest.raises(AudioLoadingError, match="NaN"):
        list(AudioStream(nan))


PEAK_RSS = """
import json, resource, sys
from core.model.inference import Predictor
from core.store.run_store import RunStore
predictor = Predictor.from_run(RunStore(sys.argv[1]).latest(), device="cpu")
result = predictor.predict_files([sys.argv[2]])
print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "errors": result.errors,
                  "duration_s": float(result.utterances["duration_s"].iloc[0]),
                  "predictions": result.utterances.iloc[0, 2:].astype(float).tolist()}))
"""


def _predict_in_child(runs_dir, path) -> dict:
    out = subprocess.run([sys.executable, "-c", PEAK_RSS, str(runs_dir), str(path)], capture_output=True, text=True,
                         check=True, timeout=600)
    return json.loads(out.stdout.splitlines()[-1])


def test_one_hour_file_is_predicted_with_bounded_memory(app_data, one_hour_wav, tmp_path):
    """Decoded whole, the hour would take > 1 GB (230 MB of samples, float64 STFT buffers); streamed it
    costs no more than a 5-s clip, give or take allocator noise."""
    short = tmp_path / "five seconds.wav"
    sf.write(short, _warble(5.0, 8_000)[:, 0], 8_000, subtype="PCM_16")
    baseline = _predict_in_child(app_data / "runs", short)
    hour = _predict_in_child(app_data / "runs", one_hour_wav)
    assert not hour["errors"] and hour["duration_s"] == pytest.approx(3600.0)
    assert np.isfinite(hour["predictions"]).all()
    assert hour["rss_mb"] - baseline["rss_mb"] < 150, (hour, baseline)
