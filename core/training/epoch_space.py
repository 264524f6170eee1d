"""The space an epoch clustered, reported while a run trains: a map of the latent space before the run is done.

Step 2 of every epoch (SPEC 2.4) embeds the labelled training chunks and clusters them; those vectors and
pseudo-labels are already in memory, so the training hands them on (`core.training.train.TrainProgress.space`) at no
cost in forward passes, and a watcher (the app) draws them while the joint stage trains. It is the network
as that epoch's K-means saw it, not the kept model: the run's own map (`core.explore.exploration`) comes when it completes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.config import AVD, UmapConfig
from core.data.dataset import ChunkSet, utterance_mean
from core.store.latent import cluster_shares

LIVE_UTTERANCES = 5_000  # at most this many utterances (a seeded sample): a glance, fitted anew every epoch


@dataclass(frozen=True)
class EpochSpace:
    """Labelled training utterances in one epoch's clustering space, with that epoch's pseudo-labels."""
    epoch: int  # 0-based
    files: pd.Index  # (N,) utterance ids: every labelled training utterance, or a sample of LIVE_UTTERANCES
    embeddings: np.ndarray  # (N, H) float32, the mean of each utterance's chunk vectors (the K-means space)
    cluster: np.ndarray  # (N,) the majority pseudo-label of each utterance's chunks
    n_clusters: int
    n_utterances: int  # labelled training utterances in all (more than N when sampled)


def epoch_space(epoch: int, chunk_set: ChunkSet, vectors: np.ndarray, pseudo_labels: np.ndarray, n_clusters: int,
                seed: int = 0, limit: int = LIVE_UTTERANCES) -> EpochSpace:
    """The `EpochSpace` of `chunk_set`'s utterances from the epoch's chunk vectors and pseudo-labels.

    Args:
        vectors: (N*C, H) the chunks' cluster-branch vectors, utterance-major (chunk j of utterance i at i*C + j).
        pseudo_labels: (N*C,) the epoch's K-means label of each chunk.
        seed: of the sample, when there are more than `limit` utterances (the same utterances every epoch).
    """
    n, c = len(chunk_set.files), chunk_set.n_chunks
    if len(vectors) != n * c or len(pseudo_labels) != n * c:
        raise ValueError(f"{n} utterances of {c} chunks need {n * c} vectors and labels, "
                         f"got {len(vectors)} and {len(pseudo_labels)}")
    keep = np.arange(n) if n <= limit else np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
    rows = (keep[:, None] * c + np.arange(c)).ravel()
    share = cluster_shares(np.asarray(pseudo_labels)[rows], c, n_clusters)
    return EpochSpace(epoch, chunk_set.files[keep], utterance_mean(np.asarray(vectors, np.float32)[rows], c),
                      share.argmax(1), n_clusters, n)


def epoch_map(space: EpochSpace, corpus: pd.DataFrame, cfg: UmapConfig = UmapConfig()) -> pd.DataFrame:
    """One row per utterance of `space` (index: file): x, y (UMAP of its embeddings), its pseudo-label
    `cluster`, and the corpus's speaker, emotion and attribute columns where it has them.

    Raises:
        ValueError: fewer than 3 utterances, or files the corpus does not hold.
    """
    from core.explore.projection import LatentProjector  # UMAP: imported by the first map only
    missing = space.files.difference(corpus.index)
    if len(missing):
        raise ValueError(f"{len(missing)} utterances of epoch {space.epoch + 1} are not in the corpus, e.g. {missing[0]!r}")
    coords = LatentProjector(cfg).fit(space.embeddings).coords_
    table = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1], "cluster": space.cluster},
                         index=pd.Index(space.files, name="file"))
    columns = [c for c in ("speaker", "emotion", *AVD) if c in corpus]
    return table.join(corpus.loc[space.files, columns])
