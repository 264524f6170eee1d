"""The joint objective over micro-batches and over the whole batch (issue 10, item 8)."""
import dataclasses

import numpy as np
import pytest
import torch

from core.config import paper, tiny
from core.data.dataset import ChunkSet, Normaliser, load_chunks
from core.model.metrics import ccc_loss
from core.model.network import EmotionCNN
from core.model.objective import BatchStep, joint_backward, local_batches
from core.runtime.distributed import BatchNormReplay, World
from tests.helpers import random_chunk_set


TINY = tiny().model  # a narrow network: the maths is the same, the test takes a second
_NORMALISER = Normaliser.from_statistics(np.zeros(128), np.ones(128), 3.0, torch.device("cpu"))


def _chunk_set(n_utterances: int = 6, n_chunks: int = 4) -> ChunkSet:
    chunk_set = random_chunk_set(n_utterances, n_chunks)
    chunk_set.targets[0, 1] = np.nan  # a missing label: left out of that attribute's CCC
    return chunk_set


def _gradients(model, chunk_set, micro_batch_chunks, ccc_unbiased=False):
    model.zero_grad(set_to_none=True)
    batch = np.arange(len(chunk_set))[::-1].copy()  # any order
    labels = torch.from_numpy(np.arange(len(chunk_set)) % model.n_clusters)
    step = BatchStep(model, model, chunk_set, labels, _NORMALISER, micro_batch_chunks, World(), BatchNormReplay(model, World()),
                     ccc_unbiased=ccc_unbiased)
    (local,) = local_batches(step, [batch])
    loss = joint_backward(step, local, None)
    return loss.cross_entropy, loss.ccc_loss, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("micro_batch_chunks", [1, 5, 8])
def test_joint_backward_micro_batches_give_the_full_batch_gradient(micro_batch_chunks):
    """With dropout off and BatchNorm in eval mode (the only setting where the two are the same maths),
    the two-pass micro-batch gradient equals one full-batch pass's, to 1e-5."""
    torch.manual_seed(0)
    model = EmotionCNN(TINY).eval()
    chunk_set = _chunk_set()
    ce_full, ccc_full, full = _gradients(model, chunk_set, None)
    ce_micro, ccc_micro, micro = _gradients(model, chunk_set, micro_batch_chunks)
    assert ce_micro == pytest.approx(ce_full, abs=1e-5) and ccc_micro == pytest.approx(ccc_full, abs=1e-5)
    assert set(micro) == set(full)
    scale = max(g.abs().max().item() for g in full.values())  # relative to the largest gradient: float32 sums
    for name in full:
        assert (micro[name] - full[name]).abs().max().item() <= 1e-5 * scale, name


def test_joint_backward_batchnorm_sees_the_whole_batch_or_micro_batches():
    """`train.micro_batch_chunks = None` (the paper presets): one forward pass, BatchNorm statistics over
    the whole batch, as the authors' code; an integer: micro-batches of that size (twice: two passes)."""
    torch.manual_seed(0)
    model = EmotionCNN(TINY).train()
    seen = []
    model.encoder[1].register_forward_hook(lambda module, inputs, output: seen.append(len(inputs[0])))
    chunk_set = _chunk_set()
    _gradients(model, chunk_set, None)
    assert seen == [24]
    seen.clear()
    _gradients(model, chunk_set, 10)
    assert seen == [10, 10, 4, 10, 10, 4]
    assert paper().train.micro_batch_chunks is None and paper("valence").train.micro_batch_chunks is None


@pytest.mark.parametrize("micro_batch_chunks", [None, 5])
def test_joint_backward_ccc_unbiased_takes_the_released_codes_variances(micro_batch_chunks):
    """`train.ccc_unbiased` (the paper presets): the batch's 1 - CCC with variances over n - 1, as the released
    `cc_coef`; off, population variances (issue 30)."""
    torch.manual_seed(0)
    model = EmotionCNN(TINY).eval()  # no dropout, BatchNorm's running statistics: the predictions are a plain pass
    chunk_set = _chunk_set()
    index = np.arange(len(chunk_set))
    with torch.no_grad():
        predictions = model(load_chunks(chunk_set, index, _NORMALISER)).attributes.double()  # (24, 3)
    # labels that follow the predictions (a CCC far from 0, where the variances' convention shows): utterance means
    utterance_z = predictions.numpy().reshape(6, 4, 3).mean(1)
    noise = 0.3 * utterance_z.std(0) * chunk_set.targets  # NaN stays NaN
    chunk_set = dataclasses.replace(chunk_set, targets=(utterance_z + noise).astype(np.float32))
    targets = chunk_set.chunk_targets(index).double()
    losses = {unbiased: _gradients(model, chunk_set, micro_batch_chunks, ccc_unbiased=unbiased)[1] for unbiased in (True, False)}
    for unbiased, loss in losses.items():
        assert loss == pytest.approx(ccc_loss(predictions, targets, unbiased=unbiased).item(), abs=1e-5)
    assert abs(losses[True] - losses[False]) > 1e-4  # 24 chunks: variances differ by 24/23
    assert paper().train.ccc_unbiased and not tiny().train.ccc_unbiased
