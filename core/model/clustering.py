"""K-means pseudo-labels for the DeepCluster stages (SPEC 2.4), scikit-learn style.

The published code runs faiss k-means (20 iterations, random initial centroids drawn from the data,
a new seed every epoch) on the raw cluster-branch vectors; PCA-whitening + L2 (DeepCluster) is optional.
"""
from __future__ import annotations

import importlib.util

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted


class PseudoLabeler(ClusterMixin, BaseEstimator):
    """K-means on (N, D) vectors; `labels_` are the pseudo-labels, `cluster_centers_` live in input space.

    Args:
        n_clusters: K.
        n_iterations: Lloyd iterations (all of them are run: tolerance 0, as faiss does).
        pca_dim: PCA-whiten to this many dimensions and L2-normalise before K-means; None = raw vectors.
        backend: "sklearn", "faiss" or "auto" (faiss when installed).
        random_state: seed or np.random.Generator-compatible state for the initial centroids.
    """

    def __init__(self, n_clusters: int = 10, *, n_iterations: int = 20, pca_dim: int | None = None,
                 backend: str = "auto", random_state=None):
        self.n_clusters = n_clusters
        self.n_iterations = n_iterations
        self.pca_dim = pca_dim
        self.backend = backend
        self.random_state = random_state

    def fit(self, X: np.ndarray, y=None) -> "PseudoLabeler":
        X = np.ascontiguousarray(X, dtype=np.float32)
        if self.n_clusters < 2:
            raise ValueError(f"n_clusters must be >= 2, got {self.n_clusters}")
        if len(X) <= self.n_clusters:
            raise ValueError(f"K-means needs more vectors than clusters: {len(X)} vectors, n_clusters={self.n_clusters}")
        if self.backend not in ("auto", "sklearn", "faiss"):
            raise ValueError(f"backend must be one of ['auto', 'sklearn', 'faiss'], got {self.backend!r}")
        rng = check_random_state(self.random_state)
        self.pca_ = None
        Z = X
        if self.pca_dim is not None:
            self.pca_ = PCA(n_components=min(self.pca_dim, X.shape[1], len(X)), whiten=True,
                            random_state=rng.randint(2**31 - 1)).fit(X)
            Z = _l2(self.pca_.transform(X).astype(np.float32))
        use_faiss = self.backend == "faiss" or (self.backend == "auto" and importlib.util.find_spec("faiss"))
        seed = int(rng.randint(2**31 - 1))
        labels, centers, inertia = (_faiss_kmeans if use_faiss else _sklearn_kmeans)(Z, self.n_clusters, self.n_iterations, seed)
        self.labels_ = labels.astype(np.int64)
        self.inertia_ = float(inertia)
        if self.pca_ is not None:  # centroids in the *input* space: new vectors need no PCA (nearest mean)
            centers = np.stack([X[self.labels_ == k].mean(0) if np.any(self.labels_ == k) else X.mean(0)
                                for k in range(self.n_clusters)])
        self.cluster_centers_ = centers
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Nearest centroid (squared Euclidean) in input space."""
        check_is_fitted(self, "cluster_centers_")
        return nearest_centroid(X, self.cluster_centers_)

    def cluster_sizes(self) -> np.ndarray:
        check_is_fitted(self, "labels_")
        return np.bincount(self.labels_, minlength=self.n_clusters)


def nearest_centroid(X: np.ndarray, centroids: np.ndarray, block: int = 65_536) -> np.ndarray:
    """Index of the nearest centroid (squared Euclidean) for each row of X, (N,) int64; blocked for memory."""
    C = np.asarray(centroids, dtype=np.float32)
    c2 = (C ** 2).sum(1)[None]
    out = np.empty(len(X), np.int64)
    for start in range(0, len(X), block):
        x = np.asarray(X[start: start + block], dtype=np.float32)
        out[start: start + len(x)] = ((x ** 2).sum(1)[:, None] - 2 * x @ C.T + c2).argmin(1)
    return out


def _l2(Z: np.ndarray) -> np.ndarray:
    return Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)


def _sklearn_kmeans(X, n_clusters, n_iterations, seed):
    # init="random": K data points as initial centroids, one initialisation, no tolerance: faiss's scheme
    km = KMeans(n_clusters, init="random", n_init=1, max_iter=n_iterations, tol=0.0, algorithm="lloyd",
                random_state=seed).fit(X)
    return km.labels_, km.cluster_centers_.astype(np.float32), km.inertia_


def _faiss_kmeans(X, n_clusters, n_iterations, seed):
    import faiss
    km = faiss.Kmeans(X.shape[1], n_clusters, niter=n_iterations, seed=seed, max_points_per_centroid=10_000_000)
    km.train(X)
    distances, labels = km.index.search(X, 1)
    return labels[:, 0], km.centroids, float(distances.sum())
