import io
import json

import numpy as np
import pandas as pd
import pytest

from core.explore.export import embeddings_table, neutralise_formulas, write_table


@pytest.fixture
def table():
    return pd.DataFrame({"path": ["=HYPERLINK(\"x\")", "+1.wav", "ok.wav", "@cmd"], "cluster": [0, 1, 2, -3],
                         "arousal": [1.5, -2.0, 3.25, 4.0]},
                        index=pd.Index(["-a.wav", "b.wav", "\tc.wav", "d.wav"], name="file"))


def test_neutralise_formulas_quotes_text_not_numbers(table):
    safe = neutralise_formulas(table)
    assert list(safe["path"]) == ["'=HYPERLINK(\"x\")", "'+1.wav", "ok.wav", "'@cmd"]
    assert list(safe.index) == ["'-a.wav", "b.wav", "'\tc.wav", "d.wav"]
    assert list(safe["cluster"]) == [0, 1, 2, -3] and list(safe["arousal"]) == [1.5, -2.0, 3.25, 4.0]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_write_table_round_trips(table, tmp_path, fmt):
    path = write_table(table, tmp_path / "t", fmt)
    assert path.suffix == f".{fmt}" and path.is_file()
    if fmt == "csv":
        back = pd.read_csv(path, index_col="file")
        assert back["path"].iloc[0].startswith("'=")  # neutralised in CSV only
        pd.testing.assert_series_equal(back["arousal"], table["arousal"].rename_axis("file"), check_index=False)
    elif fmt == "parquet":
        pd.testing.assert_frame_equal(pd.read_parquet(path), table)
    else:
        records = json.loads(path.read_text())
        assert records[0] == {"file": "-a.wav", "path": "=HYPERLINK(\"x\")", "cluster": 0, "arousal": 1.5}


def test_write_table_rejects_unknown_format(table, tmp_path):
    with pytest.raises(ValueError, match="format must be one of"):
        write_table(table, tmp_path / "t", "xlsx")


def test_embeddings_table_columns():
    t = embeddings_table(pd.Index(["a", "b"]), np.zeros((2, 256), np.float32))
    assert t.shape == (2, 256) and t.columns[0] == "e000" and t.columns[-1] == "e255" and t.index.name == "file"


def test_corpus_folder_and_zip_of_every_file(tmp_path):
    """Exported paths are relative to the folder the keys are relative to (issue 29: `file` was
    "audio/x.wav" and `path` "x.wav"); "download all" holds every file, intact."""
    import zipfile
    from core.explore.export import corpus_folder, zip_files
    files = pd.Index(["audio/a/x.wav", "audio/b/c/y.wav"])
    paths = pd.Series([str(tmp_path / "corpus" / f) for f in files])
    assert corpus_folder(files, paths) == tmp_path / "corpus"  # not corpus/audio, the clips' deepest folder
    absolute = pd.Index([str(tmp_path / "corpus" / f) for f in files])  # a manifest of absolute paths
    assert corpus_folder(absolute, paths) == tmp_path / "corpus" / "audio"
    files = [write_table(pd.DataFrame({"v": [1, 2]}), tmp_path / name, "csv") for name in ("one", "two")]
    with zipfile.ZipFile(io.BytesIO(zip_files(files))) as archive:
        assert sorted(archive.namelist()) == ["one.csv", "two.csv"]
        assert archive.read("two.csv") == files[1].read_bytes()
