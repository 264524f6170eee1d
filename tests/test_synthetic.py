"""Tests of core.data.synthetic: the eSpeak-NG demo corpus (small corpora in tmp_path, a few seconds)."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
from scipy.stats import spearmanr

from core.config import AVD
from core.data.corpus_formats import load_manifest
from core.data.synthetic import MANIFEST_COLUMNS, draw_labels, emotion_name, make_corpus, make_demo_corpus


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def corpus_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("tiny"), n_files=12, seed=0)


@pytest.fixture(scope="module")
def forty(tmp_path_factory) -> Path:
    """40 labelled training clips (10 speakers) for the acoustic checks."""
    return make_demo_corpus(tmp_path_factory.mktemp("forty"), seed=0, n_train=40, n_dev=0, n_test=0, n_unlabelled=0)


def test_labels_have_the_correlations_of_real_corpora():
    labels = draw_labels(np.random.default_rng(123), 2000)
    assert labels.shape == (2000, 3) and labels.min() >= 1 and labels.max() <= 7
    r = np.corrcoef(labels.T)  # order A, V, D
    assert 0.6 <= r[0, 2] <= 0.8
    assert abs(r[0, 1]) <= 0.3 and abs(r[1, 2]) <= 0.3
    assert np.allclose(labels.mean(0), 4, atol=0.15) and np.all((labels.std(0) > 0.8) & (labels.std(0) < 1.4))
    assert np.array_equal(labels, draw_labels(np.random.default_rng(123), 2000))


def test_emotion_names_follow_the_arousal_valence_quadrants():
    assert emotion_name(4.2, 3.9) == "neutral"
    assert (emotion_name(6, 6), emotion_name(6, 2), emotion_name(2, 2), emotion_name(2, 6)) == \
        ("happy", "angry", "sad", "calm")


def test_manifest_layout_and_splits(tiny):
    root = tiny.parent
    assert tiny == root / "manifest.csv"
    with open(tiny, newline="") as f:
        assert next(csv.reader(f)) == list(MANIFEST_COLUMNS)
    rows = read_rows(tiny)
    splits = [r["split"] for r in rows]
    assert splits.count("unlabelled") == 6 and all(splits.count(s) >= 1 for s in ("train", "dev", "test"))
    for r in rows:
        assert r["path"].startswith("audio/") and (root / r["path"]).is_file() and r["speaker"]
        if r["split"] == "unlabelled":
            assert all(r[a] == "" for a in AVD) and r["emotion"] == ""
        else:
            assert all(1 <= float(r[a]) <= 7 for a in AVD) and r["emotion"]
    speakers = {s: {r["speaker"] for r in rows if r["split"] == s} for s in ("train", "dev", "test", "unlabelled")}
    assert not speakers["train"] & (speakers["dev"] | speakers["test"]) and not speakers["dev"] & speakers["test"]
    truth = read_rows(root / "unlabelled_truth.csv")
    assert [t["path"] for t in truth] == [r["path"] for r in rows if r["split"] == "unlabelled"]
    assert all(1 <= float(t[a]) <= 7 for t in truth for a in AVD)
    assert json.loads((root / "corpus.json").read_text())["seed"] == 0
    table = load_manifest(tiny)  # the project's reader accepts it
    assert len(table) == 12 and table["valence"].isna().sum() == 6


def test_audio_is_16k_mono_int16_of_the_right_length_and_level(tiny):
    for r in read_rows(tiny):
        path = tiny.parent / r["path"]
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "WAV")
        assert 1.5 <= info.duration <= 5.0
        x, _ = sf.read(path, dtype="int16")
        assert np.abs(x.astype(int)).max() < 32000, f"{path} is clipped"
        rms = np.sqrt(np.mean((x / 32768.0) ** 2))
        assert rms > 0.01, f"{path} is silent"


def test_same_seed_gives_identical_files_and_another_seed_differs(tiny, tmp_path):
    again = make_corpus(tmp_path / "again", n_files=12, seed=0)
    assert corpus_bytes(again.parent) == corpus_bytes(tiny.parent)
    other = corpus_bytes(make_corpus(tmp_path / "other", n_files=12, seed=1).parent)
    assert other["manifest.csv"] != corpus_bytes(tiny.parent)["manifest.csv"]
    assert other["audio/demo_0000.wav"] != corpus_bytes(tiny.parent)["audio/demo_0000.wav"]


def test_second_call_reuses_a_complete_corpus(tmp_path):
    calls = []
    manifest = make_demo_corpus(tmp_path, seed=2, n_train=3, n_dev=1, n_test=1, n_unlabelled=1,
                                progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 6) for i in range(1, 7)]
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    calls.clear()
    assert make_demo_corpus(tmp_path, seed=2, n_train=3, n_dev=1, n_test=1, n_unlabelled=1,
                            progress=lambda done, total: calls.append((done, total))) == manifest
    assert calls == [] and stamps == {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    # other parameters rebuild, leaving no stale clips behind
    make_demo_corpus(tmp_path, seed=2, n_train=2, n_dev=1, n_test=1, n_unlabelled=0)
    assert len(read_rows(manifest)) == 4 and len(list((tmp_path / "audio").glob("*.wav"))) == 4
    # a corpus without its manifest (an interrupted run) is never taken as complete
    manifest.unlink()
    make_demo_corpus(tmp_path, seed=2, n_train=2, n_dev=1, n_test=1, n_unlabelled=0,
                     progress=lambda done, total: calls.append(done))
    assert manifest.exists() and calls == [1, 2, 3, 4]


def test_bad_counts_are_refused(tmp_path):
    with pytest.raises(ValueError):
        make_demo_corpus(tmp_path, n_train=-1)
    with pytest.raises(ValueError):
        make_demo_corpus(tmp_path, n_train=0, n_dev=0, n_test=0, n_unlabelled=0)


def pitch_track(path: Path) -> np.ndarray:
    """Semitone F0 (YIN) of the loud frames, which are the vowels of this clean speech."""
    x, sr = sf.read(path)
    f0 = librosa.yin(x, fmin=60, fmax=450, sr=sr, frame_length=1024, hop_length=256)
    rms = librosa.feature.rms(y=x, frame_length=1024, hop_length=256)[0]
    return 12 * np.log2(f0[rms > 0.3 * np.percentile(rms, 95)])


def test_acoustics_follow_the_documented_mapping(forty):
    rows = read_rows(forty)
    tracks = [pitch_track(forty.parent / r["path"]) for r in rows]
    arousal, valence = (np.array([float(r[a]) for r in rows]) for a in ("arousal", "valence"))
    speakers = np.array([r["speaker"] for r in rows])
    # arousal raises the pitch: median F0 relative to the speaker's mean (voices differ by an octave)
    median = np.array([np.median(t) for t in tracks])
    relative = median - np.array([median[speakers == s].mean() for s in speakers])
    assert spearmanr(relative, arousal)[0] > 0.4
    # valence shapes the final contour: the last 30 % of the voiced frames rise above the rest, or fall
    final = np.array([np.median(t[-(k := max(1, int(0.3 * len(t)))):]) - np.median(t[:-k]) for t in tracks])
    assert spearmanr(final, valence)[0] > 0.4


def test_importing_core_leaves_the_synthesis_filters_unimported():
    """scipy.signal (~1 s of import) is the synthesis's alone: `import core`, which every app start and CLI
    command pays, does not load it."""
    code = "import sys, core; from app import loaders, widgets; print('scipy.signal' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
