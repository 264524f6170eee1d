"""2-D / 3-D maps of the latent space: UMAP fitted once on a sample, every other point placed.

Placement (of the rest of a large corpus and of new clips) is a distance-weighted k-nearest-neighbour
average of the fitted points' map coordinates in embedding space: milliseconds per clip and always
inside the map (a convex combination of existing points), where `umap.transform` takes seconds per
call and can land points outside the fitted map (umap-learn issues #200, #506).
"""
from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

from core.config import UmapConfig


class LatentProjector:
    """Fit: UMAP on at most `cfg.sample_size` rows; transform: k-NN placement onto that map.

    Attributes (after fit): `sample_index_` (rows UMAP was fitted on), `embedding_` (their coordinates),
    `coords_` (coordinates of every fitted row: UMAP for the sample, placement for the rest).
    """

    def __init__(self, cfg: UmapConfig = UmapConfig()):
        self.cfg = cfg

    def fit(self, X: np.ndarray) -> "LatentProjector":
        X = np.asarray(X, dtype=np.float32)
        if len(X) < 3:
            raise ValueError(f"a map needs at least 3 points, got {len(X)}")
        rng = np.random.default_rng(self.cfg.random_state)
        sample = np.sort(rng.choice(len(X), self.cfg.sample_size, replace=False)) if len(X) > self.cfg.sample_size \
            else np.arange(len(X))
        import umap  # lazily: importing umap-learn compiles numba code (~20 s cold)
        reducer = umap.UMAP(n_components=self.cfg.n_components, n_neighbors=min(self.cfg.n_neighbors, len(sample) - 1),
                            min_dist=self.cfg.min_dist, metric=self.cfg.metric, random_state=self.cfg.random_state,
                            n_jobs=1,  # a seeded UMAP runs single-threaded anyway
                            init="spectral" if len(sample) > self.cfg.n_components + 1 else "random")
        self.sample_index_ = sample
        self.embedding_ = reducer.fit_transform(X[sample]).astype(np.float32)
        self._index(X[sample], self.embedding_)
        coords = np.empty((len(X), self.cfg.n_components), np.float32)
        coords[sample] = self.embedding_
        rest = np.setdiff1d(np.arange(len(X)), sample)
        if len(rest):
            coords[rest] = self.transform(X[rest])
        self.coords_ = coords
        return self

    @classmethod
    def from_map(cls, X: np.ndarray, coords: np.ndarray, cfg: UmapConfig = UmapConfig()) -> "LatentProjector":
        """A projector that places new points onto an existing map of the points X (no UMAP needed)."""
        projector = cls(cfg)
        projector.coords_ = np.asarray(coords, np.float32)
        projector._index(np.asarray(X, np.float32), projector.coords_)
        return projector

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Map coordinates of new rows, (n, n_components): inverse-distance-weighted k-NN average."""
        distances, neighbours = self.neighbours(X)
        weights = 1.0 / np.maximum(distances, 1e-6)
        weights /= weights.sum(1, keepdims=True)
        coords = np.einsum("nk,nkc->nc", weights, self._reference_coords[neighbours]).astype(np.float32)
        # a row (all but) equal to a reference point lands on it: a corpus clip located as an upload, whose
        # embedding matches its corpus point to float rounding, is drawn where that point is
        if distances.shape[1] > 1:
            same = distances[:, 0] <= 1e-3 * distances[:, 1]
            coords[same] = self._reference_coords[neighbours[same, 0]]
        return coords

    def neighbours(self, X: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Distances and indices (into the reference rows) of the k nearest reference points."""
        if not hasattr(self, "_knn"):
            raise ValueError("this LatentProjector is not fitted yet: call fit() or from_map()")
        return self._knn.kneighbors(np.asarray(X, np.float32), n_neighbors=min(k or self.cfg.placement_neighbors,
                                                                             len(self._reference_coords)))

    def _index(self, X: np.ndarray, coords: np.ndarray) -> None:
        self._knn = NearestNeighbors().fit(X)
        self._reference_coords = coords


def warm_up(cfg: UmapConfig = UmapConfig(), dims: int = 16) -> None:
    """Compile umap-learn's numba code in this process: fit a small random map with `cfg`'s settings.

    A process's first UMAP fit spends most of a minute compiling (umap-learn caches little of it on disk).
    The app runs this once per server, in a thread, while it generates the demo corpus on one core
    (`app.loaders.warm_map_code`), so the map after the training finds the code compiled. The sample is
    small enough for the exact neighbour search, as a demo-sized corpus's (umap-learn's approximate search
    starts at 4096 points), so that is the path compiled.
    """
    LatentProjector(cfg).fit(np.random.default_rng(0).normal(size=(300, dims)).astype(np.float32))
