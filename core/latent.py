"""The latent space of a run over a corpus: chunk and utterance embeddings, clusters, predictions.

Two 256-d spaces (SPEC 2.4): the cluster branch's pre-ReLU vectors (where K-means ran: the default
for the map, clusters and placement) and the shared latent block (offered as an alternative view).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from core.clustering import PseudoLabeler, nearest_centroid
from core.dataset import ChunkSet, load_chunks
from core.model import EmotionCNN

@dataclass(frozen=True)
class ChunkOutputs:
    cluster_features: np.ndarray  # (n_chunks, H) float32, cluster branch before its ReLU
    latent: np.ndarray  # (n_chunks, D) float32, shared latent block (dropout off)
    attributes: np.ndarray  # (n_chunks, A) float32, z-normalised predictions


@torch.inference_mode()
def embed_chunks(model: EmotionCNN, chunk_set: ChunkSet, mean: torch.Tensor, std: torch.Tensor, clip: float,
                 batch_chunks: int = 64, progress=None) -> ChunkOutputs:
    """Eval-mode pass over every chunk of a chunk set (no dropout, BatchNorm running statistics).

    Args:
        mean, std: (F,) float32 feature statistics on the model's device.
        batch_chunks: chunks per forward pass (memory: ~8 MB per chunk for the first layers).
        progress: optional callback(done_batches, total_batches).
    """
    model.eval()
    outputs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    n_batches = math.ceil(len(chunk_set) / batch_chunks)
    for b, start in enumerate(range(0, len(chunk_set), batch_chunks)):
        index = np.arange(start, min(start + batch_chunks, len(chunk_set)))
        out = model(load_chunks(chunk_set, index, mean, std, clip, mean.device))
        outputs.append(tuple(t.float().cpu().numpy() for t in (out.cluster_features, out.embedding, out.attributes)))
        if progress:
            progress(b + 1, n_batches)
    if not outputs:
        width = (model.cfg.hidden_dim, model.cfg.latent_dim, len(model.cfg.attributes))
        return ChunkOutputs(*(np.zeros((0, w), np.float32) for w in width))
    return ChunkOutputs(*(np.concatenate(parts) for parts in zip(*outputs)))


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


def build_latent_space(files: pd.Index, outputs: ChunkOutputs, n_chunks: int, centroids: np.ndarray | None,
                       n_clusters: int, chunk_predictions: dict[str, np.ndarray], label_mean: dict[str, float],
                       label_std: dict[str, float], seed: int = 0) -> LatentSpace:
    """Aggregate chunk outputs to utterances and assign clusters.

    Args:
        outputs: chunk outputs of the network whose space is explored.
        chunk_predictions: attribute -> (N*C,) z-normalised chunk predictions (from every network).

    Clusters are the nearest of `centroids` (the run's final K-means) in the cluster space. Imported
    published models ship no centroids: then K-means with `n_clusters` (their head's size) runs over
    this corpus's chunks in that space, seeded, and `centroid_source` says so.
    """
    n = len(files)
    chunk = {"cluster": outputs.cluster_features, "latent": outputs.latent}
    source = "training"
    if centroids is None:
        labeler = PseudoLabeler(n_clusters, random_state=seed).fit(outputs.cluster_features)
        centroids, source = labeler.cluster_centers_, "k-means on this corpus"
    chunk_cluster = nearest_centroid(outputs.cluster_features, centroids)
    share = cluster_shares(chunk_cluster, n_chunks, len(centroids))
    predictions = pd.DataFrame(  # the chunk mean in z-space (float32, as published), then de-normalised
        {a: label_std[a] * z.reshape(n, n_chunks).mean(1).astype(np.float64) + label_mean[a]
         for a, z in chunk_predictions.items()}, index=pd.Index(files, name="file"))
    return LatentSpace(
        files=pd.Index(files, name="file"), n_chunks=n_chunks,
        chunk_embeddings={s: v.astype(np.float16) for s, v in chunk.items()},
        embeddings={s: v.reshape(n, n_chunks, -1).mean(1).astype(np.float32) for s, v in chunk.items()},
        chunk_cluster=chunk_cluster, cluster=share.argmax(1), cluster_share=share,
        centroids=np.asarray(centroids, np.float32), centroid_source=source, predictions=predictions)


def cluster_shares(chunk_cluster: np.ndarray, n_chunks: int, n_clusters: int) -> np.ndarray:
    """(N, K) share of each utterance's C chunks in each cluster; its argmax is the utterance's cluster.

    Args:
        chunk_cluster: (N*C,) cluster of each chunk, utterance-major.
    """
    n = len(chunk_cluster) // n_chunks
    share = np.zeros((n, n_clusters), np.float32)
    np.add.at(share, (np.repeat(np.arange(n), n_chunks), chunk_cluster), 1.0 / n_chunks)
    return share
