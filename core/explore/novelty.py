"""Out of distribution: is a new clip farther from the corpus than the corpus's own utterances are from each other?

The reference is the corpus's nearest-neighbour distances in the map's clustering space (each utterance's
distance to its nearest *other* utterance). A clip whose distance to its nearest corpus utterance lies
beyond their `PERCENTILE`th percentile is flagged: fewer than 1 % of the corpus's own utterances are that
isolated. Exact over every utterance up to `MAX_QUERIES`; above, over a seeded random sample of that many
utterances (each still against the whole corpus). 10 000 put 100 points in the tail: the flag's threshold lies
within 0.2 percentile points of the 99th (two standard errors of the sampled quantile's rank), at a fifth of the
cost of 50 000 (150 000 x 256: 34 s against 151 s, both timed on a busy 2-core machine).
scikit-learn is imported where distances are computed: reading a cached reference needs none (`core/__init__`).
"""
from __future__ import annotations

import numpy as np

from core.store.analysis_store import Novelty

PERCENTILE = 99.0
MAX_QUERIES = 10_000


def corpus_novelty(embeddings: np.ndarray, percentile: float = PERCENTILE, max_queries: int = MAX_QUERIES,
                   seed: int = 0) -> Novelty:
    """The reference distances of a corpus's (N, D) utterance embeddings (N >= 2), self excluded."""
    X = np.asarray(embeddings, np.float32)
    if len(X) < 2:
        raise ValueError(f"a corpus needs at least 2 utterances for nearest-neighbour distances, got {len(X)}")
    from sklearn.neighbors import NearestNeighbors
    queries = np.arange(len(X))
    if len(X) > max_queries:
        queries = np.sort(np.random.default_rng(seed).choice(len(X), max_queries, replace=False))
    distance, index = NearestNeighbors(n_neighbors=2, algorithm="brute").fit(X).kneighbors(X[queries])
    # the nearest is the utterance itself, unless an identical one came first: then either is at distance 0
    other = np.where(index[:, 0] == queries, distance[:, 1], distance[:, 0]).astype(np.float32)
    return Novelty(float(np.percentile(other, percentile)), percentile, other, len(X))


def nearest_corpus_distance(embeddings: np.ndarray, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distance, index) of each clip's nearest corpus utterance, in the same space."""
    from sklearn.neighbors import NearestNeighbors
    distance, index = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(
        np.asarray(embeddings, np.float32)).kneighbors(np.asarray(clips, np.float32))
    return distance[:, 0].astype(np.float32), index[:, 0]
