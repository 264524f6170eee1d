"""Awkward inputs through predict, locate and a training corpus: each is processed or gets a clear error.

The app's upload goes through the same `Locator.locate_files` (tests/test_browser.py drives it)."""
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.cli.main import main
from core.config import AudioConfig, ChunkConfig, FeatureConfig
from core.data.extraction import CorpusAudioError, extract_features
from core.store.feature_store import FeatureStore
from tests.matrix import write_failure_matrix


@pytest.fixture
def matrix(tmp_path, one_hour_wav):
    """A folder of every awkward input, and the good names (the hour-long clip among them)."""
    folder = tmp_path / "inputs"
    return (folder, *write_failure_matrix(folder, one_hour_wav))


def test_predict_processes_every_good_input_and_names_every_bad_one(official_run, matrix, capsys):
    folder, bad, good = matrix
    code = main(["--runs-dir", str(official_run.dir.parent), "predict", str(folder)])
    out, err = capsys.readouterr()
    assert code == 1  # some files failed: non-zero at the end, after the others were processed
    table = pd.read_csv(io.StringIO(out))
    assert sorted(Path(f).name for f in table["file"]) == good
    assert np.isfinite(table[["arousal", "valence", "dominance"]].to_numpy()).all()
    _assert_named(err, bad)


def test_locate_places_every_good_input_and_names_every_bad_one(app_store, matrix, tmp_path, capsys):
    folder, bad, good = matrix
    code = main(["locate", str(folder), "--out", str(tmp_path / "located.csv")])
    _, err = capsys.readouterr()
    assert code == 1
    table = pd.read_csv(tmp_path / "located.csv")
    assert sorted(Path(f).name for f in table["file"]) == good
    assert np.isfinite(table[["arousal", "valence", "dominance", "x", "y"]].to_numpy()).all()
    assert table["neighbours"].str.len().gt(0).all()
    _assert_named(err, bad)


def _assert_named(stderr: str, bad: dict[str, str]) -> None:
    for name, fragment in bad.items():
        line = next(l for l in stderr.splitlines() if name in l)
        assert fragment in line, line


def test_training_corpus_lists_every_bad_file_and_keeps_the_good_ones(matrix, tmp_path):
    folder, bad, good = matrix
    files = sorted(p.name for p in folder.iterdir())
    table = pd.DataFrame({"path": [str(folder / f) for f in files]}, index=pd.Index(files, name="file"))
    store = FeatureStore(tmp_path / "cache", AudioConfig(), FeatureConfig(), ChunkConfig())
    with pytest.raises(CorpusAudioError) as err:
        extract_features(table, store, AudioConfig(), FeatureConfig(), ChunkConfig(), workers=1)
    assert {Path(p).name for p in err.value.problems} == set(bad)
    with pytest.warns(UserWarning, match="5 audio files cannot be used"):
        features = extract_features(table, store, AudioConfig(), FeatureConfig(), ChunkConfig(), workers=1,
                                    skip_unreadable=True).features
    assert sorted(features.files) == good and np.isfinite(features.frames).all()
    hour = features.files.get_loc("one hour.wav")
    assert features.n_frames[hour] == 1 + 3600 * 16_000 // 256
