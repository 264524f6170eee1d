"""Suspicious labels (issue 31, item 1): a planted outlier ranks first; a constant corpus gives no suspects."""
import numpy as np
import pandas as pd
import pytest

from core.explore.suspects import COLUMNS, SuspectSettings, robust_z, suspect_labels


def _table(labels: np.ndarray, predictions: np.ndarray) -> pd.DataFrame:
    files = [f"audio/clip_{i:03d}.wav" for i in range(len(labels))]
    return pd.DataFrame({"path": [f"/corpus/{f}" for f in files], "split": "train", "arousal": labels,
                         "arousal_predicted": predictions}, index=pd.Index(files, name="file"))


def test_a_planted_wrong_label_ranks_first_by_both_signals():
    rng = np.random.default_rng(0)
    centres = np.repeat([[0.0, 0.0], [10.0, 10.0]], 50, axis=0)  # two regions of the space: calm and aroused
    embeddings = centres + rng.normal(0, 0.5, centres.shape)
    truth = np.repeat([2.0, 6.0], 50) + rng.normal(0, 0.2, 100)
    labels = truth.copy()
    labels[7] = 6.5  # a calm clip labelled aroused: far from its neighbours' labels and from the prediction
    table = _table(labels, truth + rng.normal(0, 0.2, 100))
    ranked = suspect_labels(embeddings, table, ["arousal"])
    assert list(ranked.columns) == COLUMNS and len(ranked) == 100
    top = ranked.iloc[0]
    assert ranked.index[0] == "audio/clip_007.wav" and top["rank"] == 1 and bool(top["suspect"])
    assert top["neighbours_label"] == pytest.approx(2.0, abs=0.2) and top["label"] == 6.5
    assert top["neighbour_gap_z"] > 10 and top["prediction_gap_z"] > 10
    assert ranked["suspect"].sum() <= 5  # the clean labels are not suspected wholesale


def test_a_constant_corpus_gives_no_suspects_and_unlabelled_rows_are_left_out():
    table = _table(np.r_[np.full(20, 4.0), np.nan], np.full(21, 4.0))
    ranked = suspect_labels(np.random.default_rng(1).normal(size=(21, 3)), table, ["arousal"])
    assert len(ranked) == 20 and (ranked["score"] == 0).all() and not ranked["suspect"].any()
    assert suspect_labels(np.zeros((21, 3)), table.assign(arousal=np.nan), ["arousal"]).empty


def test_robust_z_and_settings():
    assert robust_z(np.array([1.0, 1.0, 1.0])).tolist() == [0.0, 0.0, 0.0]
    z = robust_z(np.r_[np.zeros(50), np.ones(50), 100.0])
    assert z[-1] > 50 and abs(np.median(z)) < 1e-9
    with pytest.raises(ValueError, match="neighbours must be >= 1"):
        SuspectSettings(neighbours=0)
