"""A representation run's stored state, and its latent space over a corpus (`core.explore.embedding` asks here for
the runs that have no network: their kinds are `KINDS`).

The run stores its fitted `Representation` as its model state (tensors and plain values, read back with
`weights_only`) and its own corpus's vectors (`vectors.npy`), so its space is rebuilt without audio. Over
another corpus a baseline computes the vectors from the audio; imported embeddings exist for their corpus only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from core.errors import UserError
from core.represent.fitting import Representation, latent_space
from core.represent.vectors import utterance_vectors
from core.store.latent import LatentSpace
from core.store.run_store import Run

KINDS = ("baseline", "embeddings")  # `RunInfo.kind` of the runs made of vectors, not trained networks
VECTORS = "vectors.npy"  # (N, D) float32: the run's own corpus's vectors, in its corpus.parquet's row order
_ARRAYS = ("mean", "scale", "centroids", "coef", "intercept")


class ForeignCorpusError(UserError, ValueError):
    """Imported embeddings asked for clips they do not cover (another corpus, a new clip)."""


def representation_state(representation: Representation) -> dict[str, Any]:
    """The model state of a representation run (`RunStore` saves it as `model.pt`)."""
    import torch  # as the run store does for every model state
    return {"representation": {**{name: torch.from_numpy(np.asarray(getattr(representation, name), np.float64))
                                  for name in _ARRAYS},
                               "features": representation.features, "columns": list(representation.columns),
                               "attributes": list(representation.attributes), "alphas": list(representation.alphas),
                               "seed": representation.seed}}


def load_representation(run: Run) -> Representation:
    state = run.load_model_state()["representation"]
    return Representation(state["features"], tuple(state["columns"]),
                          *[state[name].numpy() for name in _ARRAYS[:2]], state["centroids"].numpy().astype(np.float32),
                          state["coef"].numpy(), state["intercept"].numpy(), tuple(state["attributes"]),
                          tuple(state["alphas"]), int(state["seed"]))


def centroid_source(representation: Representation) -> str:
    return (f"K-means on the {representation.features} vectors (K = {len(representation.centroids)}, fitted on the "
            "train and unlabelled clips)")


def representation_latent(run: Run, corpus: pd.DataFrame, cache_root: Path,
                          progress: Callable[[str, int, int], None] | None = None) -> LatentSpace:
    """The space of a representation run over `corpus`: its stored vectors where they cover it, else (baselines)
    vectors computed from the audio.

    Raises:
        ForeignCorpusError: imported embeddings asked for clips they have no vector for.
    """
    representation = load_representation(run)
    own = run.corpus()
    stored = run.file(VECTORS)
    if own is not None and stored.exists() and corpus.index.isin(own.index).all():
        vectors = np.load(stored)[own.index.get_indexer(corpus.index)]
    elif run.info.kind == "embeddings":
        outside = corpus.index.difference(own.index if own is not None else [])
        raise ForeignCorpusError(f"run {run.run_id} holds imported embeddings of its own corpus only: {len(outside):,} "
                                 f"clips have none (e.g. {list(outside[:3])}); embeddings of new clips are computed "
                                 "where they were made, then imported with them")
    else:
        cfg = run.config
        report = progress or (lambda stage, done, total: None)
        vectors, _ = utterance_vectors(corpus, representation.features, cfg.audio, cfg.features, cfg.chunks, cache_root,
                                       lambda d, t: report(representation.features, d, t))
    return latent_space(corpus.index, vectors, representation, centroid_source(representation))
