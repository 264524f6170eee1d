"""Options of this project's recipe that the paper does not have, off in the `paper` presets: chunk masking of
the training inputs (SpecAugment's time and frequency masks, Park et al. 2019; `default` uses it) and the
learning-rate schedule.

Masks are drawn per global chunk position of a batch from an explicit generator, like the dropout masks
(`core.model.network.dropout_mask`), so a chunk gets the same mask whichever rank or micro-batch it lands in.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from core.config import RunConfig, TrainConfig
from core.model.objective import LocalBatch


@dataclass(frozen=True)
class ChunkMasks:
    """One time run and one frequency run per chunk of a batch, each as (first, width); width 0 = none."""
    time: np.ndarray  # (B, 2) int64: first frame, number of frames
    freq: np.ndarray  # (B, 2) int64: first mel bin, number of bins


def draw_masks(n_chunks: int, chunk_frames: int, n_mels: int, cfg: TrainConfig, rng: np.random.Generator) -> ChunkMasks:
    """SpecAugment's draw: a width uniform in [0, max], then a start uniform over where it fits."""
    return ChunkMasks(_runs(n_chunks, chunk_frames, cfg.time_mask_frames, rng), _runs(n_chunks, n_mels, cfg.freq_mask_bins, rng))


def _runs(n: int, size: int, widest: int, rng: np.random.Generator) -> np.ndarray:
    width = rng.integers(0, widest + 1, n)
    return np.stack([(rng.random(n) * (size - width + 1)).astype(np.int64), width], axis=1)


def masked_batch(batch: LocalBatch, cfg: RunConfig, seed: list[int]) -> LocalBatch:
    """`batch` with its chunks' masks drawn from `seed` (the batch's), or itself where masking is off."""
    if not (cfg.train.time_mask_frames or cfg.train.freq_mask_bins) or not batch.pieces:
        return batch  # a rank without a piece takes part at weight 0: nothing to mask
    masks = draw_masks(len(batch.index), cfg.chunks.chunk_frames, cfg.features.n_mels, cfg.train,
                       np.random.default_rng(seed))
    rows = np.concatenate([np.arange(offset, offset + len(index)) for offset, index in batch.pieces])
    return dataclasses.replace(batch, inputs=apply_masks(batch.inputs, masks, rows))


def apply_masks(inputs: torch.Tensor, masks: ChunkMasks, rows: np.ndarray) -> torch.Tensor:
    """`inputs` (B_local, 1, m, F) with the masks of batch positions `rows` (B_local,) set to 0 (the mean of
    normalised features); a new tensor in the input's memory format."""
    time, freq = (torch.from_numpy(runs[rows]).to(inputs.device) for runs in (masks.time, masks.freq))
    frames = torch.arange(inputs.shape[2], device=inputs.device)
    bins = torch.arange(inputs.shape[3], device=inputs.device)
    in_time = (frames >= time[:, :1]) & (frames < time[:, :1] + time[:, 1:])  # (B, m)
    in_freq = (bins >= freq[:, :1]) & (bins < freq[:, :1] + freq[:, 1:])  # (B, F)
    masked = in_time[:, None, :, None] | in_freq[:, None, None, :]  # (B, 1, m, F)
    return inputs.masked_fill(masked, 0.0)


def lr_factor(cfg: TrainConfig, epoch: int) -> float:
    """The body optimisers' learning-rate multiplier in `epoch` (0-based): 1, or the cosine's value."""
    if cfg.lr_schedule == "constant":
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * epoch / cfg.epochs))


def set_learning_rates(optimisers: dict[str, torch.optim.Optimizer], cfg: TrainConfig, epoch: int) -> None:
    """Set the SGD and Adam rates of `epoch` (a resumed run gets them from the epoch, not its checkpoint)."""
    base = {"sgd": cfg.lr_sgd, "adam": cfg.lr_adam}
    for name, optimiser in optimisers.items():
        for group in optimiser.param_groups:
            group["lr"] = base[name] * lr_factor(cfg, epoch)
