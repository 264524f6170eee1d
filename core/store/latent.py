"""The latent space of a run over a corpus: chunk and utterance embeddings, clusters, predictions.

Two 256-d spaces (SPEC 2.4): the cluster branch's pre-ReLU vectors (where K-means ran: the default
for the map, clusters and placement) and the shared latent block (offered as an alternative view).
The space and what reads it; `core.explore.embedding` computes it (with torch, which reading a cached space never imports).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


# Part of every cached latent space's key: a change to how embeddings, clusters or predictions are
# computed bumps it, so caches written before are recomputed, never mixed in. 2: one forward path
# (float64 normalisation everywhere, issue 10). 3: chunk predictions and chunk positions kept (the clip inspector),
# and the chunks' clusters no longer overwritten on disk by the cluster space's chunk embeddings (same file name).
LATENT_FORMAT_VERSION = 3


@dataclass(frozen=True)
class LatentSpace:
    """Embeddings, clusters and predictions of every utterance of a corpus under one network."""
    files: pd.Index  # (N,) utterance ids
    n_chunks: int  # C
    chunk_embeddings: dict[str, np.ndarray]  # space -> (N*C, 256) float16 (chunk j of utterance i at i*C + j)
    embeddings: dict[str, np.ndarray]  # space -> (N, 256) float32, the mean of the utterance's chunks
    chunk_cluster: np.ndarray  # (N*C,) nearest centroid in the cluster space
    cluster: np.ndarray  # (N,) the majority cluster of the utterance's chunks
    cluster_share: np.ndarray  # (N, K) share of the utterance's chunks in each cluster
    centroids: np.ndarray  # (K, H) cluster-space centroids
    centroid_source: str  # "training" (the run's own K-means) or "k-means on this corpus" (imported models)
    predictions: pd.DataFrame  # index `file`; de-normalised attribute predictions (chunk mean)
    chunk_predictions: np.ndarray | None = None  # (N*C, A) float32 de-normalised, columns as `predictions`
    chunk_start_frames: np.ndarray | None = None  # (N*C,) int32 first frame of each chunk within its utterance

    def chunk_rows(self, file) -> slice:
        """The rows of utterance `file`'s chunks in the chunk arrays."""
        i = self.files.get_loc(file)
        return slice(i * self.n_chunks, (i + 1) * self.n_chunks)


def chunk_timeline(latent: LatentSpace, file, frame_seconds: float, chunk_frames: int) -> pd.DataFrame:
    """One row per chunk of utterance `file`: `chunk`, `start_s`, `end_s`, `cluster` and its predicted
    attributes (de-normalised), in the order the network saw them (SPEC 2.2: chunks may overlap).

    Args:
        frame_seconds: seconds per feature frame (hop_length / sample_rate).
    """
    rows = latent.chunk_rows(file)
    table = pd.DataFrame({"chunk": np.arange(latent.n_chunks)})
    if latent.chunk_start_frames is not None:
        start = latent.chunk_start_frames[rows].astype(float) * frame_seconds
        table["start_s"], table["end_s"] = start, start + chunk_frames * frame_seconds
    table["cluster"] = latent.chunk_cluster[rows]
    if latent.chunk_predictions is not None:
        for j, attribute in enumerate(latent.predictions.columns):
            table[attribute] = latent.chunk_predictions[rows, j]
    return table


def cluster_shares(chunk_cluster: np.ndarray, n_chunks: int, n_clusters: int) -> np.ndarray:
    """(N, K) share of each utterance's C chunks in each cluster; its argmax is the utterance's cluster.

    Args:
        chunk_cluster: (N*C,) cluster of each chunk, utterance-major.
    """
    n = len(chunk_cluster) // n_chunks
    share = np.zeros((n, n_clusters), np.float32)
    np.add.at(share, (np.repeat(np.arange(n), n_chunks), chunk_cluster), 1.0 / n_chunks)
    return share
