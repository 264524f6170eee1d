"""The UMAP map of a large corpus: fit on a sample, k-NN placement of the rest."""
from __future__ import annotations

import time

import numpy as np

from benchmarks.results import BenchResult


def bench_projection(n_points: int, sample_size: int = 50_000) -> BenchResult:
    """UMAP fit on at most `sample_size` of `n_points` synthetic 256-d embeddings + k-NN placement of the rest
    (includes umap-learn's one-off numba compilation when it is the first fit of the process)."""
    from core.config import UmapConfig
    from core.explore.projection import LatentProjector
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, size=(30, 256))
    X = (centres[rng.integers(0, 30, n_points)] + rng.normal(size=(n_points, 256))).astype(np.float32)
    t0 = time.perf_counter()
    LatentProjector(UmapConfig(sample_size=sample_size)).fit(X)
    seconds = time.perf_counter() - t0
    return BenchResult(f"UMAP map of {n_points:,} embeddings (fit {min(n_points, sample_size):,}, place the rest)",
                       seconds, "s", "minutes, not hours", "256-d, 30 clusters; includes numba JIT", met=seconds < 3600)
