"""The joint stage's semi-supervised objective (SPEC 2.4 step 2): CE(pseudo-label) + (1 - CCC) over a batch.

The CCC couples every chunk of a batch, so a batch that does not fit in one forward pass needs care:
`joint_backward` accumulates the exact batch-level gradient over micro-batches.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from core.dataset import ChunkSet, Normaliser, load_chunks
from core.metrics import ccc_loss
from core.model import EmotionCNN


@dataclass(frozen=True)
class JointLoss:
    """The joint loss of one batch (its gradient is accumulated in the parameters)."""
    cross_entropy: float  # mean over the batch's chunks
    ccc_loss: float  # mean over attributes of 1 - CCC over the whole batch


def split_batch(index: np.ndarray, size: int | None) -> list[np.ndarray]:
    """`index` in consecutive pieces of `size` (None: one piece)."""
    size = size or len(index)
    return [index[i: i + size] for i in range(0, len(index), size)]


def joint_backward(model: EmotionCNN, chunk_set: ChunkSet, batch: np.ndarray, labels: torch.Tensor,
                   normaliser: Normaliser, micro_batch_chunks: int | None) -> JointLoss:
    """Accumulate the gradient of CE + (1 - CCC) over one batch of chunks, and return the loss.

    The CCC couples every chunk of the batch. In one forward pass (`micro_batch_chunks` None: the
    published BatchNorm behaviour, statistics over the whole batch) it is differentiated directly. With
    micro-batches its gradient w.r.t. the predictions comes from a first, graph-free pass with the same
    dropout masks and BatchNorm state as the second, so the gradient is that of the batch-level CCC.

    Args:
        batch: (B,) chunk indices; labels: (n_chunks,) pseudo-labels on the device.
    """
    targets = chunk_set.chunk_targets(batch).to(normaliser.device)  # (B, A): chunks inherit their utterance's labels
    micros = split_batch(batch, micro_batch_chunks)
    if len(micros) == 1:
        out = model(load_chunks(chunk_set, batch, normaliser))
        ce = F.cross_entropy(out.cluster_logits, labels[batch])
        ccc_term = ccc_loss(out.attributes, targets)
        (ce + ccc_term).backward()
        return JointLoss(ce.item(), ccc_term.item())
    ccc_grad, ccc_value = _batch_ccc_gradient(model, chunk_set, micros, targets, normaliser)
    ce_total, offset = 0.0, 0
    for micro in micros:
        out = model(load_chunks(chunk_set, micro, normaliser))
        ce = F.cross_entropy(out.cluster_logits, labels[micro], reduction="sum") / len(batch)
        surrogate = (out.attributes * ccc_grad[offset: offset + len(micro)]).sum()  # its gradient: the exact one
        (ce + surrogate).backward()
        ce_total, offset = ce_total + ce.item(), offset + len(micro)
    return JointLoss(ce_total, ccc_value)


def _batch_ccc_gradient(model, chunk_set, micros, targets, normaliser) -> tuple[torch.Tensor, float]:
    """d(1 - CCC)/d(predictions) for the whole batch, (B, A), and the loss; RNG and BatchNorm state untouched."""
    cuda = normaliser.device.type == "cuda"
    rng_state = torch.cuda.get_rng_state(normaliser.device) if cuda else torch.get_rng_state()
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    with torch.no_grad():
        predictions = torch.cat([model(load_chunks(chunk_set, m, normaliser)).attributes for m in micros])
    if cuda:  # same dropout masks in pass two ...
        torch.cuda.set_rng_state(rng_state, normaliser.device)
    else:
        torch.set_rng_state(rng_state)
    with torch.no_grad():
        for name, b in model.named_buffers():  # ... and the same BatchNorm running statistics to start from
            b.copy_(buffers[name])
    predictions.requires_grad_(True)
    loss = ccc_loss(predictions, targets)
    (grad,) = torch.autograd.grad(loss, predictions)
    return grad, loss.item()
