"""Chunks for training and embedding, gathered straight from the memory-mapped feature store.

No per-chunk Python work and no file reads in the loop: a batch is one fancy-index gather of
(B, m) frame rows from the corpus array, normalised as one tensor.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from core.config import ChunkConfig
from core.features import chunk_starts, normalise
from core.store import FeatureSet


@dataclass(frozen=True)
class ChunkSet:
    """The C chunks of each of N utterances; chunk j belongs to utterance `utterance[j]`."""
    frames: np.ndarray  # (total_frames, F) memory-mapped corpus features
    starts: np.ndarray  # (N*C,) global first frame of each chunk, utterance-major
    utterance: np.ndarray  # (N*C,) index into `files`
    files: pd.Index  # (N,) utterance ids
    targets: np.ndarray | None  # (N, A) z-normalised labels (NaN = missing), None when unlabelled
    n_chunks: int  # C
    chunk_frames: int  # m

    def __len__(self) -> int:
        return len(self.starts)

    def chunk_targets(self, index: np.ndarray) -> torch.Tensor:
        assert self.targets is not None, "an unlabelled chunk set has no targets"
        return torch.from_numpy(self.targets[self.utterance[index]]).float()  # (B, A)


def make_chunk_set(features: FeatureSet, files: pd.Index, chunks: ChunkConfig,
                   targets: np.ndarray | None = None) -> ChunkSet:
    """Chunk the utterances `files` of `features` (dynamic chunk splitting, SPEC 2.2)."""
    rows = features.files.get_indexer(files)
    assert (rows >= 0).all(), "every file must have features"
    starts = features.offsets[rows, None] + chunk_starts(features.stored_frames[rows], chunks)  # (N, C)
    return ChunkSet(features.frames, starts.reshape(-1), np.repeat(np.arange(len(rows)), chunks.n_chunks),
                    pd.Index(files), targets, chunks.n_chunks, chunks.chunk_frames)


def load_chunks(chunk_set: ChunkSet, index: np.ndarray, mean: torch.Tensor, std: torch.Tensor, clip: float,
                device: torch.device) -> torch.Tensor:
    """Gather, normalise and lay out chunks for the CNN: (B, 1, m, F) float32, channels-last."""
    frames = chunk_set.starts[index][:, None] + np.arange(chunk_set.chunk_frames)  # (B, m)
    x = torch.from_numpy(np.asarray(chunk_set.frames[frames.reshape(-1)])).view(len(index), 1, chunk_set.chunk_frames, -1)
    x = normalise(x.to(device), mean, std, clip)
    return x.contiguous(memory_format=torch.channels_last)


def feature_statistics(features: FeatureSet, files: pd.Index, block_frames: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
    """Per-mel-bin mean and std over all real (unpadded) frames of `files`, streamed in float64.

    Returns:
        mean, std: (F,) float64.
    """
    rows = features.files.get_indexer(files)
    total = np.zeros(features.frames.shape[1])
    squares = np.zeros_like(total)
    count, pending = 0, []
    for r in [*rows, None]:
        if r is not None:
            pending.append((features.offsets[r], features.n_frames[r]))
        if pending and (r is None or sum(n for _, n in pending) >= block_frames):
            block = np.concatenate([features.frames[o: o + n] for o, n in pending]).astype(np.float64)
            total += block.sum(0)
            squares += (block ** 2).sum(0)
            count += len(block)
            pending = []
    mean = total / max(count, 1)
    return mean, np.sqrt(np.maximum(squares / max(count, 1) - mean ** 2, 0.0))


def balanced_indices(pseudo_labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n chunk indices drawn uniformly across non-empty clusters (DeepCluster's UnifLabelSampler).

    Each cluster gets int(n / K') + 1 draws (K' = non-empty clusters), with replacement only where it
    is smaller than that; the draws are shuffled and cut to n.
    """
    clusters = [np.flatnonzero(pseudo_labels == k) for k in np.unique(pseudo_labels)]
    per_cluster = n // len(clusters) + 1
    draws = np.concatenate([rng.choice(members, per_cluster, replace=len(members) <= per_cluster)
                            for members in clusters])
    rng.shuffle(draws)
    return draws[:n]
