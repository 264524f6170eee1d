"""Chunks for training and embedding: the corpus's features, chunked, and the one way they become model input.

No per-chunk Python work and no file reads in the loop: a batch is one fancy-index gather of
(B, m) frame rows from the (memory-mapped) corpus array, normalised as one tensor by `Normaliser`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from core.audio.features import chunk_starts, normalise
from core.config import ChunkConfig
from core.store.feature_store import FeatureSet


@dataclass(frozen=True)
class Normaliser:
    """Per-mel-bin z-score with training statistics, NaN -> 0, clipped (SPEC 2.1), on the model's device.

    The arithmetic runs in float64, as the authors' pipeline did with its float64 `.mat` terms (the
    parity tests are bit-identical that way), and the result is float32.
    """
    mean: torch.Tensor  # (F,) float64 on the device
    std: torch.Tensor  # (F,) float64
    clip: float

    @classmethod
    def from_statistics(cls, mean: np.ndarray, std: np.ndarray, clip: float, device: torch.device) -> "Normaliser":
        return cls(torch.as_tensor(np.asarray(mean, np.float64), device=device),
                   torch.as_tensor(np.asarray(std, np.float64), device=device), clip)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def __call__(self, chunks: torch.Tensor) -> torch.Tensor:
        """(B, m, F) un-normalised float32 chunks -> (B, 1, m, F) float32 model input, channels-last."""
        z = normalise(chunks.to(self.device).double(), self.mean, self.std, self.clip).float()
        return z.unsqueeze(1).contiguous(memory_format=torch.channels_last)  # ~2x faster convolutions on CPU


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

    @classmethod
    def from_chunks(cls, chunks: list[np.ndarray]) -> "ChunkSet":
        """The chunk set of clips already cut into chunks (new audio: `core.audio.frontend` with `as_chunks`).

        Args:
            chunks: one (C, m, F) float32 array per clip, C and m the same for all.
        """
        n_chunks, chunk_frames, n_mels = chunks[0].shape
        frames = np.concatenate(chunks).reshape(-1, n_mels)  # (N*C*m, F): chunk j is rows [j*m, (j+1)*m)
        n = len(chunks)
        return cls(frames, np.arange(n * n_chunks) * chunk_frames, np.repeat(np.arange(n), n_chunks),
                   pd.RangeIndex(n), None, n_chunks, chunk_frames)


def make_chunk_set(features: FeatureSet, files: pd.Index, chunks: ChunkConfig,
                   targets: np.ndarray | None = None) -> ChunkSet:
    """Chunk the utterances `files` of `features` (dynamic chunk splitting, SPEC 2.2)."""
    rows = features.files.get_indexer(files)
    assert (rows >= 0).all(), "every file must have features"
    starts = features.offsets[rows, None] + chunk_starts(features.stored_frames[rows], chunks)  # (N, C)
    return ChunkSet(features.frames, starts.reshape(-1), np.repeat(np.arange(len(rows)), chunks.n_chunks),
                    pd.Index(files), targets, chunks.n_chunks, chunks.chunk_frames)


def load_chunks(chunk_set: ChunkSet, index: np.ndarray, normaliser: Normaliser) -> torch.Tensor:
    """Gather and normalise chunks for the CNN: (B, 1, m, F) float32, channels-last, on the normaliser's device."""
    return normaliser(torch.from_numpy(gather_frames(chunk_set, index)))


def gather_frames(chunk_set: ChunkSet, index: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(B, m, F) float32 un-normalised frames of chunks `index`: one gather from the memory map (into `out`)."""
    frames = (chunk_set.starts[index][:, None] + np.arange(chunk_set.chunk_frames)).reshape(-1)  # (B*m,)
    n_mels = chunk_set.frames.shape[1]
    if out is None:
        out = np.empty((len(index), chunk_set.chunk_frames, n_mels), np.float32)
    np.take(chunk_set.frames, frames, axis=0, out=out.reshape(len(frames), n_mels))  # releases the GIL
    return out


def utterance_mean(chunk_values: np.ndarray, n_chunks: int) -> np.ndarray:
    """The utterance-level value of chunk-level values (SPEC 2.2): the mean of each utterance's C chunks.

    Args:
        chunk_values: (N*C, X), utterance-major (chunk j of utterance i at row i*C + j).

    Returns:
        (N, X) in the input's dtype (float32 chunk outputs average in float32, as the authors' pipeline).
    """
    return chunk_values.reshape(-1, n_chunks, chunk_values.shape[-1]).mean(1)


@dataclass(frozen=True)
class FeatureStatistics:
    mean: np.ndarray  # (F,) float64
    std: np.ndarray  # (F,) float64


def feature_statistics(features: FeatureSet, files: pd.Index, block_frames: int = 1 << 20) -> FeatureStatistics:
    """Per-mel-bin mean and std over all real (unpadded) frames of `files`, streamed in float64."""
    rows = features.files.get_indexer(files)
    total = np.zeros(features.frames.shape[1])
    squares = np.zeros_like(total)
    count, pending = 0, []
    for r in [*rows, None]:
        if r is not None:
            pending.append((features.offsets[r], features.n_frames[r]))
        if pending and (r is None or sum(n for _, n in pending) >= block_frames):
            # float64 straight from the memory map, squared in place: one block-sized array (1 GB), not three
            block = np.concatenate([features.frames[o: o + n] for o, n in pending], dtype=np.float64)
            total += block.sum(0)
            squares += np.square(block, out=block).sum(0)
            count += len(block)
            pending, block = [], None  # freed before the next block is read: never two at once
    mean = total / max(count, 1)
    return FeatureStatistics(mean, np.sqrt(np.maximum(squares / max(count, 1) - mean ** 2, 0.0)))


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
