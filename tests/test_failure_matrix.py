"""Awkward inputs through predict and a training corpus: each is processed or gets a clear error."""
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from core.__main__ import main
from core.config import AudioConfig, ChunkConfig, FeatureConfig
from core.extraction import CorpusAudioError, extract_features
from core.store import FeatureStore
from tests.helpers import sine

GOOD = {  # file name -> (signal, sampling rate, subtype): each must be processed
    "silent.wav": (np.zeros(16_000, np.float32), 16_000, "PCM_16"),
    "dc offset.wav": (np.full(16_000, 0.3, np.float32), 16_000, "PCM_16"),
    "short 0.2 s.wav": (sine(0.2), 16_000, "PCM_16"),
    "narrowband 8k.wav": (sine(1.5, 8_000), 8_000, "PCM_16"),
    "studio 96k.flac": (sine(1.5, 96_000), 96_000, "PCM_24"),
    "surround 6ch.wav": (np.tile(sine(1.5)[:, None], (1, 6)), 16_000, "PCM_16"),
    "deep 24bit.wav": (sine(1.5), 16_000, "PCM_24"),
    "float 32bit.wav": (sine(1.5), 16_000, "FLOAT"),
    "ünïcödé name.wav": (sine(1.5), 16_000, "PCM_16"),
}


def _bad_files(folder: Path) -> dict[str, str]:
    """file name -> a fragment the error must contain."""
    (folder / "empty.wav").write_bytes(b"")
    buffer = io.BytesIO()
    sf.write(buffer, sine(1.0), 16_000, format="WAV")
    (folder / "truncated.wav").write_bytes(buffer.getvalue()[:20])
    (folder / "random bytes.wav").write_bytes(np.random.default_rng(0).bytes(4096))
    (folder / "text.mp3").write_text("this is not an mp3\n" * 50)
    nan = sine(1.0)
    nan[100] = np.nan
    sf.write(folder / "nan.wav", nan, 16_000, subtype="FLOAT")
    return {"empty.wav": "empty file", "truncated.wav": "not a recognised audio file",
            "random bytes.wav": "not a recognised audio file", "text.mp3": "not a recognised audio file",
            "nan.wav": "NaN"}


@pytest.fixture
def matrix(tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    for name, (signal, rate, subtype) in GOOD.items():
        sf.write(folder / name, signal, rate, subtype=subtype)
    return folder, _bad_files(folder)


def test_predict_processes_every_good_input_and_names_every_bad_one(official_run, matrix, capsys):
    folder, bad = matrix
    code = main(["--runs-dir", str(official_run.dir.parent), "predict", str(folder)])
    out, err = capsys.readouterr()
    assert code == 1  # some files failed: non-zero at the end, after the others were processed
    table = pd.read_csv(io.StringIO(out))
    assert sorted(Path(f).name for f in table["file"]) == sorted(GOOD)
    assert np.isfinite(table[["arousal", "valence", "dominance"]].to_numpy()).all()
    for name, fragment in bad.items():
        line = next(l for l in err.splitlines() if name in l)
        assert fragment in line, line


def test_training_corpus_lists_every_bad_file_and_keeps_the_good_ones(matrix, tmp_path):
    folder, bad = matrix
    files = sorted(p.name for p in folder.iterdir())
    table = pd.DataFrame({"path": [str(folder / f) for f in files]}, index=pd.Index(files, name="file"))
    store = FeatureStore(tmp_path / "cache", AudioConfig(), FeatureConfig(), ChunkConfig())
    with pytest.raises(CorpusAudioError) as err:
        extract_features(table, store, AudioConfig(), FeatureConfig(), ChunkConfig(), workers=1)
    assert {Path(p).name for p in err.value.problems} == set(bad)
    with pytest.warns(UserWarning, match="5 audio files cannot be used"):
        features, _ = extract_features(table, store, AudioConfig(), FeatureConfig(), ChunkConfig(), workers=1,
                                       skip_unreadable=True)
    assert sorted(features.files) == sorted(GOOD) and np.isfinite(features.frames).all()
