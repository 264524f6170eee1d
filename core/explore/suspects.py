"""Suspicious dimensional labels: which labelled utterances' arousal, valence or dominance is likely wrong.

Two signals the run already has, per utterance and attribute: how far its label lies from the mean label of its
k nearest labelled neighbours in the run's clustering space (itself excluded), and how far it lies from the
model's prediction. A training utterance's prediction is in-sample (the network was fitted to that label), so
its prediction gap understates a wrong label; the neighbour gap does not have that bias. Each gap is scaled to a
robust z-score over the attribute's labelled utterances (median and MAD), so that attributes and corpora
compare; the score is their mean, and the ranking is by score. A corpus whose labels the space and the model
explain equally everywhere (a constant corpus) scores 0 throughout: nothing stands out.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

from core.store.analysis_store import load_table, save_table

if TYPE_CHECKING:
    from core.explore.exploration import Exploration

NEIGHBOURS = 10  # k: enough to average a label's noise out, few enough to stay inside one region of the space
MAD_TO_SD = 1.4826  # the MAD of a normal distribution times this is its standard deviation
SUSPECT_SCORE = 2.0  # a score this many robust standard deviations above the typical gap makes a suspect
SIGNALS = ("neighbour_gap", "prediction_gap")
COLUMNS = ["path", "split", "attribute", "label", "neighbours_label", "prediction", *SIGNALS,
           *[f"{s}_z" for s in SIGNALS], "score", "rank", "suspect"]


@dataclass(frozen=True)
class SuspectSettings:
    neighbours: int = NEIGHBOURS

    def __post_init__(self):
        if self.neighbours < 1:
            raise ValueError(f"neighbours must be >= 1, got {self.neighbours}")


def run_suspects(exploration: Exploration, settings: SuspectSettings = SuspectSettings(),
                 on_unsaved: Callable[[str], None] | None = None) -> pd.DataFrame:
    """`suspect_labels` of every attribute of the run over its corpus's own labels, cached with the exploration (the
    review queue, the map and the CLI read it; edits change the log, not this ranking). `on_unsaved`: told why, when
    the ranking cannot be cached (`core.explore.exploration.keep_cached`)."""
    from core.explore.exploration import keep_cached, utterance_table
    key = f"suspects-k{settings.neighbours}"
    ranked = load_table(exploration.folder, key)
    if ranked is None:
        ranked = suspect_labels(exploration.latent.embeddings["cluster"], utterance_table(exploration),
                                list(exploration.latent.predictions.columns), settings)
        keep_cached(lambda: save_table(exploration.folder, key, ranked, asdict(settings)), "The ranking of suspect labels",
                    on_unsaved)
    return ranked


def suspect_labels(embeddings: np.ndarray, table: pd.DataFrame, attributes: list[str] | tuple[str, ...],
                   settings: SuspectSettings = SuspectSettings()) -> pd.DataFrame:
    """The ranking of every (labelled utterance, attribute), most suspicious first within each attribute.

    Args:
        embeddings: (N, D) utterance embeddings in the run's clustering space, rows in `table`'s order.
        table: N rows indexed by file: `path`, `split`, `<attribute>` (true label, NaN = none) and
            `<attribute>_predicted` (`core.explore.exploration.utterance_table`).
        attributes: the attributes to score.

    Returns:
        One row per labelled utterance and attribute, columns `COLUMNS` (index `file`): its label, its
        neighbours' mean label, its prediction, each gap (absolute, on the label scale) and its robust z-score,
        the score (their mean), the rank within the attribute (1 = most suspicious) and whether the score reaches
        `SUSPECT_SCORE`. Empty where an attribute has fewer than two labelled utterances.
    """
    from sklearn.neighbors import NearestNeighbors  # imported here: reading a cached map needs no scikit-learn
    embeddings = np.asarray(embeddings, np.float32)
    assert len(embeddings) == len(table), "one embedding per utterance, in the table's order"
    parts = []
    for attribute in attributes:
        labelled = table[attribute].notna().to_numpy()
        if labelled.sum() < 2:
            continue
        labels = table[attribute].to_numpy(float)[labelled]
        k = min(settings.neighbours, len(labels) - 1)
        # `kneighbors()` without query points leaves each point out of its own neighbours: (n, k)
        index = NearestNeighbors(n_neighbors=k).fit(embeddings[labelled]).kneighbors(return_distance=False)
        neighbours = labels[index].mean(1)
        part = table.loc[labelled, ["path", "split"]].copy()
        part["attribute"], part["label"], part["neighbours_label"] = attribute, labels, neighbours
        part["prediction"] = table.loc[labelled, f"{attribute}_predicted"].to_numpy(float)
        part["neighbour_gap"] = np.abs(labels - neighbours)
        part["prediction_gap"] = np.abs(labels - part["prediction"].to_numpy())
        for signal in SIGNALS:
            part[f"{signal}_z"] = robust_z(part[signal].to_numpy())
        part["score"] = part[[f"{s}_z" for s in SIGNALS]].mean(axis=1)
        part["rank"] = part["score"].rank(ascending=False, method="first").astype(int)
        part["suspect"] = part["score"] >= SUSPECT_SCORE
        parts.append(part.sort_values("rank"))
    if not parts:
        return pd.DataFrame(columns=COLUMNS, index=pd.Index([], name="file"))
    return pd.concat(parts)[COLUMNS]


def robust_z(values: np.ndarray) -> np.ndarray:
    """(x - median) / (1.4826 MAD): a z-score that a few wrong labels cannot inflate; 0 where the MAD is 0
    (most values equal: nothing stands out by this signal)."""
    values = np.asarray(values, float)
    centre = np.median(values)
    spread = MAD_TO_SD * np.median(np.abs(values - centre))
    return (values - centre) / spread if spread > 0 else np.zeros_like(values)
