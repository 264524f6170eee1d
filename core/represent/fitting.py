"""Any utterance vectors made into what a trained run has: a standardised space, clusters and predictions.

The same three steps for an acoustic baseline and for imported embeddings, each fitted on the corpus's own
splits as a trained run is: the vectors are standardised with the train split's mean and standard deviation;
K-means (`core.model.clustering`, the project's, seeded) runs on the train and unlabelled clips, the data a
DeepEmoCluster run clusters, and every clip takes its nearest centroid; a ridge regression of each attribute
is fitted on the train labels, its strength chosen by the dev split's CCC (by leave-one-out error where the
corpus has no dev labels). The result is a `LatentSpace` of one "chunk" per utterance, so the map, the
clusters against emotion, the suspects, the exports and Compare runs read it as they read a network's.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.config import AVD
from core.errors import UserError
from core.model.clustering import PseudoLabeler, nearest_centroid
from core.model.metrics import ccc
from core.store.latent import LatentSpace

ALPHAS = tuple(10.0 ** np.arange(-2, 6))  # ridge strengths tried: from almost none to almost the mean alone
MIN_SCALE = 1e-8  # a dimension constant over the train split keeps unit scale (it standardises to 0)


@dataclass(frozen=True)
class Representation:
    """A fitted representation: what turns its vectors into the run's space, clusters and predictions."""
    features: str  # "egemaps", "logmel-stats" or "embeddings"
    columns: tuple[str, ...]  # the vectors' dimensions, named
    mean: np.ndarray  # (D,) the train split's
    scale: np.ndarray  # (D,) the train split's standard deviation (MIN_SCALE floor: 1)
    centroids: np.ndarray  # (K, D) in the standardised space
    coef: np.ndarray  # (A, D) ridge weights on standardised vectors
    intercept: np.ndarray  # (A,)
    attributes: tuple[str, ...]
    alphas: tuple[float, ...]  # (A,) the chosen ridge strengths
    seed: int = 0

    def standardise(self, vectors: np.ndarray) -> np.ndarray:
        return ((np.asarray(vectors, np.float64) - self.mean) / self.scale).astype(np.float32)

    def predict(self, z: np.ndarray) -> np.ndarray:
        """(N, A) attribute predictions on the label scale of standardised vectors."""
        return np.asarray(z, np.float64) @ self.coef.T + self.intercept


class RepresentationFitError(UserError, ValueError):
    """A corpus a representation cannot be fitted on: too few train clips or labels."""


def fit_representation(vectors: np.ndarray, corpus: pd.DataFrame, features: str, columns: list[str],
                       n_clusters: int, seed: int = 0) -> Representation:
    """Standardise, cluster and regress `vectors` ((N, D), `corpus`'s row order) on `corpus`'s splits.

    Raises:
        RepresentationFitError: no train clip, no train label, or fewer clips to cluster than clusters.
    """
    vectors = np.asarray(vectors, np.float64)
    split = corpus["split"].to_numpy()
    train = split == "train"
    if not train.any():
        raise RepresentationFitError("the corpus has no train split: a baseline is fitted on the train clips")
    mean, scale = vectors[train].mean(0), vectors[train].std(0)
    scale = np.where(scale > MIN_SCALE, scale, 1.0)
    z = (vectors - mean) / scale
    pool = train | (split == "unlabelled")
    if pool.sum() <= n_clusters:
        raise RepresentationFitError(f"K-means needs more train and unlabelled clips than clusters: {int(pool.sum())} "
                                     f"clips, K = {n_clusters}")
    centroids = PseudoLabeler(n_clusters, random_state=seed).fit(z[pool].astype(np.float32)).cluster_centers_
    attributes = tuple(a for a in AVD if a in corpus and corpus.loc[train, a].notna().sum() >= 2)
    if not attributes:
        raise RepresentationFitError("the corpus's train split has no labels to regress")
    fitted = [_ridge(z, corpus[a].to_numpy(float), train, split == "dev") for a in attributes]
    return Representation(features, tuple(columns), mean, scale, np.asarray(centroids, np.float32),
                          np.stack([f[0] for f in fitted]), np.array([f[1] for f in fitted]), attributes,
                          tuple(f[2] for f in fitted), seed)


def latent_space(files: pd.Index, vectors: np.ndarray, representation: Representation, source: str) -> LatentSpace:
    """The run's space over `files`: one chunk per utterance (its vector), the nearest centroid, the predictions."""
    z = representation.standardise(vectors)
    cluster = nearest_centroid(z, representation.centroids)
    share = np.zeros((len(z), len(representation.centroids)), np.float32)
    share[np.arange(len(z)), cluster] = 1.0
    predicted = representation.predict(z)
    return LatentSpace(files=pd.Index(files, name="file"), n_chunks=1,
                       chunk_embeddings={s: z.astype(np.float16) for s in ("cluster", "latent")},
                       embeddings={s: z for s in ("cluster", "latent")}, chunk_cluster=cluster, cluster=cluster,
                       cluster_share=share, centroids=representation.centroids, centroid_source=source,
                       predictions=pd.DataFrame(predicted, index=pd.Index(files, name="file"),
                                                columns=list(representation.attributes)),
                       chunk_predictions=predicted.astype(np.float32))


def _ridge(z: np.ndarray, y: np.ndarray, train: np.ndarray, dev: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(weights, intercept, alpha): ridge on the labelled train rows; alpha by dev CCC, else leave-one-out error."""
    fit_rows = train & ~np.isnan(y)
    x, target = z[fit_rows], y[fit_rows]
    centre = target.mean()
    gram, moment = x.T @ x, x.T @ (target - centre)
    eye = np.eye(z.shape[1])
    weights = {a: np.linalg.solve(gram + a * eye, moment) for a in ALPHAS}
    check = dev & ~np.isnan(y)
    if check.sum() >= 2 and np.ptp(y[check]) > 0:
        score = {a: ccc(y[check], z[check] @ w + centre) for a, w in weights.items()}
    else:  # leave-one-out squared error of ridge, from the hat matrix's diagonal (no refits)
        score = {}
        for a, w in weights.items():
            hat = np.einsum("ij,ji->i", x, np.linalg.solve(gram + a * eye, x.T))
            residual = (target - centre - x @ w) / np.maximum(1 - hat, 1e-9)
            score[a] = -float(np.mean(residual ** 2))
    best = max(ALPHAS, key=lambda a: (np.nan_to_num(score[a], nan=-np.inf), a))
    return weights[best], float(centre), float(best)
