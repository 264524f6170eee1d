"""The training objectives of one global batch (SPEC 2.4): cross-entropy on the pseudo-labels (both stages)
and + (1 - CCC) over the whole batch (the joint stage), on one process or many (SPEC 2.8).

A batch is cut into pieces: micro-batches of `train.micro_batch_chunks` chunks, or the whole batch
(None). With several ranks each takes a contiguous run of whole pieces, so its pieces are the one-process
run's micro-batches, and the loss is weighted by the global batch's size. The CCC couples every chunk of
the batch: its gradient w.r.t. the predictions is computed over all ranks' predictions (gathered), then
each piece is back-propagated with that gradient, so the result is the exact batch-level gradient.
Dropout masks belong to global chunk positions (drawn once per batch from the shared seed), so a chunk
gets the same mask whichever rank and micro-batch it lands in. A rank's chunks of a batch are gathered once
(`local_batches`, ahead of the network by `core.data.loader`), and every pass over the batch slices them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.data.dataset import ChunkSet, Normaliser, load_chunks
from core.data.loader import prefetched_inputs
from core.model.metrics import ccc_loss
from core.model.network import EmotionCNN, autocast
from core.runtime.distributed import BatchNormReplay, World


@dataclass(frozen=True)
class JointLoss:
    """The loss of one global batch (its gradient is accumulated in the parameters)."""
    cross_entropy: float  # mean over the batch's chunks
    ccc_loss: float  # mean over attributes of 1 - CCC over the whole batch


@dataclass(frozen=True)
class BatchStep:
    """What computing one batch on this rank needs; the same for every batch of a stage."""
    model: EmotionCNN  # the network (graph-free passes)
    trainer: nn.Module  # the network as trained: DDP-wrapped on several ranks, else `model` itself
    chunk_set: ChunkSet
    labels: torch.Tensor  # (n_chunks,) pseudo-labels on the device
    normaliser: Normaliser
    micro_batch_chunks: int | None  # None: the whole batch in one piece
    world: World
    batchnorm: BatchNormReplay
    precision: str = "fp32"  # "bf16": forward passes under autocast (`train.precision`)
    ce_weight: float = 1.0  # w of the joint stage's w * CE + (1 - CCC) (`train.joint_ce_weight`)
    ccc_unbiased: bool = False  # the CCC's variances over n - 1, as the released code (`train.ccc_unbiased`)


@dataclass(frozen=True)
class LocalBatch:
    """One global batch as this rank sees it."""
    index: np.ndarray  # (B,) the global batch's chunk indices
    pieces: list[tuple[int, np.ndarray]]  # this rank's pieces: (offset in the batch, chunk indices)
    inputs: torch.Tensor  # model input of this rank's pieces, concatenated in order, on the device


def local_batches(step: BatchStep, batches: Iterable[np.ndarray]) -> Iterator[LocalBatch]:
    """Each global batch with this rank's model inputs, gathered ahead of the network (`core.data.loader`)."""
    batches = list(batches)
    pieces = [local_pieces(batch, step.micro_batch_chunks, step.world) for batch in batches]
    own = (np.concatenate([index for _, index in p]) if p else np.zeros(0, np.int64) for p in pieces)
    for batch, p, inputs in zip(batches, pieces, prefetched_inputs(step.chunk_set, own, step.normaliser)):
        yield LocalBatch(batch, p, inputs)


def split_batch(index: np.ndarray, size: int | None) -> list[np.ndarray]:
    """`index` in consecutive pieces of `size` (None: one piece)."""
    size = size or len(index)
    return [index[i: i + size] for i in range(0, len(index), size)]


def local_pieces(batch: np.ndarray, micro_batch_chunks: int | None, world: World) -> list[tuple[int, np.ndarray]]:
    """This rank's pieces of a global batch, as (offset in the batch, chunk indices), in batch order."""
    if micro_batch_chunks is None:  # the whole batch: an even share of its chunks
        share = world.shard(len(batch))
        return [(share.start, batch[share.start: share.stop])] if len(share) else []
    pieces = [(i, batch[i: i + micro_batch_chunks]) for i in range(0, len(batch), micro_batch_chunks)]
    return [pieces[k] for k in world.shard(len(pieces))]


def cluster_backward(step: BatchStep, batch: LocalBatch, masks: torch.Tensor | None) -> float:
    """Accumulate the gradient of the batch's cross-entropy (the unlabelled stage); returns its mean."""
    ce_total, n = 0.0, len(batch.index)
    with step.batchnorm.recording():
        for (offset, index), weight, out in _gradient_pass(step, batch, masks):
            ce = F.cross_entropy(out.cluster_logits.float(), step.labels[index], reduction="sum") / n
            _backward(step, ce * weight)
            ce_total += ce.item() * weight
    return float(step.world.sum_each(np.array([ce_total]))[0])


def joint_backward(step: BatchStep, batch: LocalBatch, masks: torch.Tensor | None) -> JointLoss:
    """Accumulate the gradient of w * CE + (1 - CCC) over the batch (the joint stage), and return both terms
    (the cross-entropy unweighted)."""
    ce_total, done, first, n = 0.0, 0, None, len(batch.index)
    with step.batchnorm.recording():
        if _n_pieces(batch.index, step.micro_batch_chunks) <= step.world.size:  # at most one piece per rank, on
            first = _forward_last(step, batch, masks)              # every rank: its graph gives the predictions
            predictions = first.attributes.detach() if batch.pieces else first.attributes[:0].detach()
        else:  # the batch-level CCC needs every prediction before any backward: a graph-free pass
            with step.batchnorm.paused():
                predictions = _graph_free_predictions(step, batch, masks)
        ccc_value, ccc_grad = _batch_ccc_gradient(step, batch, predictions)  # (B_local, A): this rank's rows
        for (offset, index), weight, out in _gradient_pass(step, batch, masks, first):
            ce = F.cross_entropy(out.cluster_logits.float(), step.labels[index], reduction="sum") / n
            grad = ccc_grad[done: done + len(index)] if weight else torch.zeros_like(out.attributes, dtype=torch.float32)
            surrogate = (out.attributes.float() * grad).sum()  # its gradient w.r.t. the parameters: the exact one
            _backward(step, (step.ce_weight * ce + surrogate) * weight)
            ce_total, done = ce_total + ce.item() * weight, done + len(index)
    return JointLoss(float(step.world.sum_each(np.array([ce_total]))[0]), ccc_value)


def _n_pieces(batch: np.ndarray, micro_batch_chunks: int | None) -> int:
    return 1 if micro_batch_chunks is None else -(-len(batch) // micro_batch_chunks)


def _gradient_pass(step: BatchStep, batch: LocalBatch, masks, first=None):
    """Yield ((offset, index), weight, outputs with graph) over this rank's pieces for the caller to
    back-propagate. Only the last piece goes through DDP, whose backward then averages the gradients
    accumulated over all pieces (the others run on the bare network: DDP's `no_sync`, and every rank makes
    one DDP call per batch). `first`: the last piece's outputs, when the caller has them already."""
    for piece in batch.pieces[:-1]:
        yield piece, 1, _forward(step.model, step, batch, piece, masks)
    out = first if first is not None else _forward_last(step, batch, masks)
    yield (batch.pieces[-1] if batch.pieces else _idle_piece(step, batch)), (1 if batch.pieces else 0), out


def _forward_last(step: BatchStep, batch: LocalBatch, masks):
    """The last piece through DDP. A rank without a piece (a short last batch) still takes part, at weight 0:
    with one chunk whose BatchNorm update is not recorded (the replay then overwrites it), or with none
    where BatchNorm spans the ranks (`GlobalBatchNorm2d` counts its zero chunks)."""
    if batch.pieces:
        return _forward(step.trainer, step, batch, batch.pieces[-1], masks)
    with step.batchnorm.paused():
        return _forward(step.trainer, step, batch, _idle_piece(step, batch), masks)


def _idle_piece(step: BatchStep, batch: LocalBatch) -> tuple[int, np.ndarray]:
    return 0, batch.index[: 0 if step.micro_batch_chunks is None else 1]


def _forward(network: nn.Module, step: BatchStep, batch: LocalBatch, piece: tuple[int, np.ndarray], masks):
    """The outputs of one piece: its slice of the rank's gathered inputs (the idle piece is loaded apart)."""
    offset, index = piece
    if batch.pieces:
        start = offset - batch.pieces[0][0]  # the rank's pieces are contiguous in the batch
        inputs = batch.inputs[start: start + len(index)]
    else:
        inputs = load_chunks(step.chunk_set, index, step.normaliser)
    mask = masks[offset: offset + len(index)].to(step.normaliser.device) if masks is not None else None
    with autocast(step.normaliser.device, step.precision):
        return network(inputs, mask)


def _backward(step: BatchStep, loss: torch.Tensor) -> None:
    # DDP averages gradients over ranks; each rank's loss is its share of the global batch's, so scale back
    (loss * step.world.size).backward()


def _graph_free_predictions(step: BatchStep, batch: LocalBatch, masks) -> torch.Tensor:
    """(B_local, A) predictions of this rank's pieces, with the dropout masks and BatchNorm state of the
    gradient pass that follows (running statistics restored)."""
    saved = _buffers(step.model)
    with torch.no_grad():
        out = [_forward(step.model, step, batch, piece, masks).attributes.float() for piece in batch.pieces]
    _restore_buffers(step.model, saved)
    width = len(step.model.cfg.attributes)
    return torch.cat(out) if out else torch.zeros((0, width), device=step.normaliser.device)


def _batch_ccc_gradient(step: BatchStep, batch: LocalBatch, local: torch.Tensor) -> tuple[float, torch.Tensor]:
    """1 - CCC over the global batch (all ranks' predictions gathered) and its gradient for this rank's rows."""
    everything = torch.from_numpy(step.world.gather_rows(local.float().cpu().numpy())).to(local.device)  # (B, A)
    everything.requires_grad_(True)
    loss = ccc_loss(everything, step.chunk_set.chunk_targets(batch.index).to(local.device), step.ccc_unbiased)
    (grad,) = torch.autograd.grad(loss, everything)
    start = batch.pieces[0][0] if batch.pieces else 0
    return loss.item(), grad[start: start + len(local)]


def _buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: b.clone() for name, b in model.named_buffers()}


def _restore_buffers(model: nn.Module, saved: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, b in model.named_buffers():
            b.copy_(saved[name])
