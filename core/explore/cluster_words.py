"""Clusters in words, and where to write them on the map.

A cluster is described by its utterances' arousal/valence/dominance means against the corpus: an attribute
whose cluster mean lies at least `SHIFT` corpus standard deviations above (below) the corpus mean is
"high" ("low"); attributes in between are not named. "3 · high arousal, low valence" reads: cluster 3's
utterances are, on average, clearly more aroused and more negative than the corpus's.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

SHIFT = 0.5  # corpus standard deviations between a cluster's mean and the corpus mean that earn a word


def cluster_descriptions(clusters: np.ndarray, values: pd.DataFrame, n_clusters: int | None = None,
                         shift: float = SHIFT) -> pd.DataFrame:
    """One row per cluster: its size, each attribute's mean and shift, and its label.

    Args:
        clusters: (N,) cluster of each utterance.
        values: (N, A) one column per attribute (true labels or predictions; NaN = unknown, left out).
        n_clusters: clusters to describe (default: up to the largest id); an empty one is labelled "empty".

    Returns:
        index `cluster`: `n`, `<attribute>_mean`, `<attribute>_shift` (in corpus standard deviations),
        `label`.
    """
    clusters = np.asarray(clusters)
    k = int(n_clusters if n_clusters is not None else (clusters.max() + 1 if len(clusters) else 0))
    frame = values.reset_index(drop=True).astype(float)
    centre, spread = frame.mean(), frame.std(ddof=0).replace(0.0, np.nan)
    means = frame.groupby(clusters).mean().reindex(range(k))
    shifts = (means - centre) / spread
    out = pd.DataFrame(index=pd.RangeIndex(k, name="cluster"))
    out["n"] = np.bincount(clusters, minlength=k)[:k] if len(clusters) else np.zeros(k, int)
    for attribute in frame.columns:
        out[f"{attribute}_mean"] = means[attribute].to_numpy()
        out[f"{attribute}_shift"] = shifts[attribute].to_numpy()
    out["label"] = [_label(c, out.at[c, "n"], shifts.loc[c], shift) for c in range(k)]
    out["label"] = _told_apart(out["label"], shifts)
    return out


def _told_apart(labels: pd.Series, shifts: pd.DataFrame) -> pd.Series:
    """Labels whose words collide ("1 · high arousal" and "4 · high arousal") get what tells their clusters
    apart: the attribute whose shifts differ most among them, as "higher"/"lower" for two clusters and
    "lowest", "2nd highest", ..., "highest" for more; repeated with the next attribute while words still
    collide (issue 29). Empty clusters keep their label."""
    labels = labels.copy()
    words = labels.str.split(" · ", n=1).str[1]
    for attribute_rank in range(shifts.shape[1]):
        same = words.map(lambda text: ", ".join(sorted(text.split(", "))))  # the same words in another order too
        colliding = [group for _, group in words[shifts.notna().any(axis=1)].groupby(same) if len(group) > 1]
        if not colliding:
            break
        for group in colliding:
            spread = (shifts.loc[group.index].max() - shifts.loc[group.index].min()).sort_values(ascending=False)
            attribute = spread.index[min(attribute_rank, len(spread) - 1)]
            if not spread[attribute] > 0:
                continue
            order = shifts.loc[group.index, attribute].rank(method="first").astype(int)  # 1 = lowest
            for cluster, rank in order.items():
                words[cluster] += f", {_comparative(int(rank), len(group))} {attribute}"
                labels[cluster] = f"{cluster} · {words[cluster]}"
    return labels


def _comparative(rank: int, n: int) -> str:
    """'higher'/'lower' between two; 'lowest', '2nd highest', ..., 'highest' among more (rank 1 = lowest)."""
    if n == 2:
        return "higher" if rank == 2 else "lower"
    if rank in (1, n):
        return "highest" if rank == n else "lowest"
    place = n - rank + 1
    return f"{place}{ {2: 'nd', 3: 'rd'}.get(place, 'th')} highest"


def _label(cluster: int, n: int, shifts: pd.Series, shift: float) -> str:
    if n == 0:
        return f"{cluster} · empty"
    named = shifts[shifts.abs() >= shift].dropna()
    if named.empty:
        return f"{cluster} · near the corpus average"
    order = named.abs().sort_values(ascending=False).index
    return f"{cluster} · " + ", ".join(f"{'high' if named[a] > 0 else 'low'} {a}" for a in order)


def cluster_centres(coords: np.ndarray, clusters: np.ndarray, n_clusters: int) -> np.ndarray:
    """(K, 2) where to write each cluster's label on the map: the median of its points (NaN when empty);
    the median sits inside the cluster's bulk even when a few of its points lie far away."""
    centres = np.full((n_clusters, coords.shape[1]), np.nan)
    for c in range(n_clusters):
        members = coords[clusters == c]
        if len(members):
            centres[c] = np.median(members, axis=0)
    return centres
