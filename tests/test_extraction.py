import sys
import types

import numpy as np
import pandas as pd
import pytest

from core.audio.decode import load_audio, peak_normalise
from core.audio.features import mel_spectrogram, pad_short
from core.config import AudioConfig, ChunkConfig, FeatureConfig
from core.data.extraction import CorpusAudioError, extract_features
from core.store.feature_store import FeatureStore

CFG = dict(audio=AudioConfig(), features=FeatureConfig(), chunks=ChunkConfig())


def _table(paths):
    return pd.DataFrame({"path": [str(p) for p in paths]}, index=pd.Index([p.name for p in paths], name="file"))


def _store(tmp_path):
    return FeatureStore(tmp_path / "cache", CFG["audio"], CFG["features"], CFG["chunks"])


def test_extract_features_in_worker_processes_matches_direct_computation(speechlike_clips, tmp_path):
    result = extract_features(_table(speechlike_clips), _store(tmp_path), **CFG, workers=2, batch_files=2)
    feats, stats = result.features, result.stats
    assert stats.n_extracted == 5 and stats.audio_seconds == pytest.approx(8.4, abs=0.01)
    assert list(feats.files) == [p.name for p in speechlike_clips]
    for i, path in enumerate(speechlike_clips):
        expected = pad_short(mel_spectrogram(peak_normalise(load_audio(path)), 16_000))
        np.testing.assert_array_equal(feats.utterance(i), expected)
    assert feats.n_frames[0] == 1 + 4800 // 256 and feats.stored_frames[0] == 62  # 0.3 s clip padded
    assert isinstance(feats.frames, np.memmap)


def test_extract_features_workers_start_under_a_streamlit_like_main(speechlike_clips, tmp_path, monkeypatch):
    # Streamlit (and AppTest) run the app script as __main__; spawned workers must not re-run it
    script = tmp_path / "app_script.py"
    script.write_text("raise SystemExit('the app script ran in a worker')\n")
    main = types.ModuleType("__main__")
    main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", main)
    result = extract_features(_table(speechlike_clips), _store(tmp_path), **CFG, workers=2, batch_files=2)
    feats, stats = result.features, result.stats
    assert stats.n_extracted == 5 and len(feats.files) == 5


def test_extract_features_rerun_extracts_nothing_new(speechlike_clips, tmp_path):
    store = _store(tmp_path)
    extract_features(_table(speechlike_clips[:3]), store, **CFG, workers=1)
    result = extract_features(_table(speechlike_clips), store, **CFG, workers=1)
    feats, stats = result.features, result.stats
    assert stats.n_extracted == 2 and len(feats.files) == 5
    again = extract_features(_table(speechlike_clips), store, **CFG, workers=1).stats
    assert again.n_extracted == 0


def test_extract_features_lists_every_bad_file_and_keeps_the_good_ones(speechlike_clips, tmp_path):
    bad = tmp_path / "clips" / "noise.wav"
    bad.write_bytes(b"this is not audio")
    missing = tmp_path / "clips" / "gone.wav"
    table = _table([*speechlike_clips, bad, missing])
    store = _store(tmp_path)
    with pytest.raises(CorpusAudioError) as err:
        extract_features(table, store, **CFG, workers=1)
    assert set(err.value.problems) == {str(bad), str(missing)}
    assert "noise.wav" in str(err.value) and "gone.wav: file not found" in str(err.value)
    assert len(store.index()) == 5  # the readable files were stored before the error
    with pytest.warns(UserWarning, match="2 audio files cannot be used"):
        result = extract_features(table, store, **CFG, workers=1, skip_unreadable=True)
        feats, stats = result.features, result.stats
    assert len(feats.files) == 5 and stats.n_extracted == 0


@pytest.mark.parametrize("policy", ["drop", "error"])
def test_extract_features_short_policy(speechlike_clips, tmp_path, policy):
    chunks = ChunkConfig(short_policy=policy)
    store = FeatureStore(tmp_path / "cache", CFG["audio"], CFG["features"], chunks)
    args = dict(audio=CFG["audio"], features=CFG["features"], chunks=chunks, workers=1)
    if policy == "drop":
        with pytest.warns(UserWarning, match="dropping 1 clips shorter than one chunk"):
            result = extract_features(_table(speechlike_clips), store, **args)
            feats = result.features
        assert "clip_0.wav" not in feats.files and len(feats.files) == 4
    else:
        with pytest.raises(CorpusAudioError, match="clip_0.wav: shorter than one chunk"):
            extract_features(_table(speechlike_clips), store, **args)


def test_feature_store_ignores_a_shard_without_its_index(speechlike_clips, tmp_path):
    store = _store(tmp_path)
    extract_features(_table(speechlike_clips[:2]), store, **CFG, workers=1)
    # a crash between the data and the index: the orphan data must never be trusted
    np.save(store.dir / "shard-orphan.npy", np.full((100, 128), np.nan, np.float32))
    (store.dir / ".shard-x.npy.tmp-1-abc").write_bytes(b"half written")
    assert len(store.index()) == 2
    result = extract_features(_table(speechlike_clips), store, **CFG, workers=1)
    feats, stats = result.features, result.stats
    assert stats.n_extracted == 3 and np.isfinite(feats.frames).all()


def test_feature_store_touching_a_file_re_extracts_it(speechlike_clips, tmp_path):
    import os
    store = _store(tmp_path)
    extract_features(_table(speechlike_clips), store, **CFG, workers=1)
    st = os.stat(speechlike_clips[1])
    os.utime(speechlike_clips[1], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    stats = extract_features(_table(speechlike_clips), store, **CFG, workers=1).stats
    assert stats.n_extracted == 1


def test_the_cli_says_a_core_warning_as_one_plain_line(speechlike_clips, tmp_path):
    """`python -m core` prints core's warnings as `warning: <sentence>`, not Python's file:line: Category: form."""
    import os
    import subprocess

    from tests.conftest import REPO
    bad = tmp_path / "clips" / "noise.wav"
    bad.write_bytes(b"this is not audio")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path\n" + "".join(f"{p}\n" for p in [*speechlike_clips, bad]))
    done = subprocess.run([sys.executable, "-m", "core", "extract", "--corpus", str(manifest), "--workers", "1",
                           "--skip-unreadable"], cwd=REPO, env={**os.environ, "SER_DATA_DIR": str(tmp_path / "data")},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "cannot be used" in line]
    assert said and said[0].startswith("warning: 1 audio files cannot be used") and "noise.wav" in done.stderr
    assert "UserWarning" not in done.stderr and ".py:" not in done.stderr
