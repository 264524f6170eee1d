"""The map's colourings, declared once (`core.explore.colourings`): the table, its look-ups, and who reads it."""
import numpy as np
import pandas as pd
import pytest

from core.config import AVD, LabelConfig
from core.explore import colourings
from core.explore.colourings import COLOURINGS, Colouring, colouring, colourings_of, column_notes, text_columns
from core.explore.export import map_columns

EXTRA = Colouring(name="chunk_agreement", column="chunks_in_cluster", kind="continuous", label="chunks in its cluster",
                  palette=("#000000", "#ffffff"), missing="no chunks", limits=(0.0, 1.0))


def test_colourings_one_row_each_with_a_unique_name():
    names = [row.name for row in COLOURINGS]
    assert len(names) == len(set(names))
    assert {"cluster", "split", "emotion", "speaker"} <= set(names)
    for attribute in AVD:  # the true value, the prediction and its error
        assert colouring(attribute).kind == colouring(f"{attribute}_predicted").kind == "continuous"
        assert colouring(f"{attribute}_error").kind == "diverging" and colouring(f"{attribute}_error").legend


def test_colouring_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="expected one of .*'cluster'"):
        colouring("loudness")


@pytest.mark.parametrize("change,message", [({"kind": "ordinal"}, "kind must be one of"), ({"palette": ()}, "no colour"),
                                            ({"limits": (1.0, 1.0)}, "limits must rise")])
def test_colouring_rejects_a_bad_row(change, message):
    with pytest.raises(ValueError, match=message):
        Colouring(**{"name": "x", "column": "x", "kind": "continuous", "label": "x", "palette": ("#000000",),
                     "missing": "no x", **change})


def test_colouring_bounds_follow_the_label_scale_unless_fixed():
    scale = LabelConfig(minimum=1.0, maximum=5.0)
    assert colouring("valence").bounds(scale) == (1.0, 5.0)
    assert colouring("valence_error").bounds(scale) == (-4.0, 4.0)  # the widest error the labels allow
    assert EXTRA.bounds(scale) == (0.0, 1.0)


def test_colourings_of_offers_the_columns_that_hold_a_value():
    table = pd.DataFrame({"cluster": [0, 1], "arousal": [np.nan, np.nan], "arousal_predicted": [3.0, 4.0],
                          "arousal_error": np.nan, "speaker": ["a", None]})
    assert [row.name for row in colourings_of(table)] == ["cluster", "arousal_predicted", "speaker"]


def test_colourings_of_and_the_export_read_an_added_row(monkeypatch):
    """Issue 30: adding a way to colour the map is one row of the table; the export describes its column too."""
    monkeypatch.setattr(colourings, "COLOURINGS", (*COLOURINGS, EXTRA))
    table = pd.DataFrame({"cluster": [0, 1], "chunks_in_cluster": [0.5, 1.0]})
    assert [row.name for row in colourings_of(table)] == ["cluster", "chunk_agreement"]
    assert "chunks_in_cluster: chunks in its cluster (empty: no chunks)" in map_columns("utterances")
    assert map_columns("dependence") == ""


def test_text_columns_are_the_categorical_colourings_text():
    table = pd.DataFrame({"cluster": [0, 1], "split": ["train", "dev"], "speaker": pd.Series(["a", "b"], dtype="string"),
                          "arousal": [1.0, 2.0]})
    assert text_columns(table) == ["speaker", "split"]


def test_column_notes_say_what_each_column_holds_once():
    notes = column_notes(["cluster", "arousal_error", "arousal_error", "path"])
    assert notes == "cluster (empty: no cluster); arousal_error: arousal error, predicted − true (empty: no true label)"
