"""One joint-stage batch on a torchrun world (or on one process): writes the gradient every rank ends with.

Run by tests/test_distributed.py: `torchrun --nproc_per_node=N tests/distributed_step.py OUT MICRO` and, for
the reference, `python tests/distributed_step.py OUT MICRO`. MICRO is `train.micro_batch_chunks` or "none".
"""
import sys

import numpy as np
import torch

from core.config import tiny
from core.data.dataset import Normaliser
from core.model.network import EmotionCNN, dropout_mask
from core.model.objective import BatchStep, joint_backward, local_batches
from core.runtime.distributed import BatchNormReplay, close_world, data_parallel, init_world, synchronise_batchnorm
from tests.helpers import random_chunk_set


def main(out: str, micro: str) -> None:
    world = init_world(device="cpu", backend="gloo")
    micro_batch_chunks = None if micro == "none" else int(micro)
    cfg = tiny().model
    torch.manual_seed(0)
    model = EmotionCNN(cfg).train().to(memory_format=torch.channels_last)
    if micro_batch_chunks is None:
        synchronise_batchnorm(model, world)
    chunks = random_chunk_set(12, 2)
    batch = np.random.default_rng(1).permutation(len(chunks))[:22]  # 22 of 24 chunks: uneven slices
    labels = torch.from_numpy(np.arange(len(chunks)) % cfg.n_clusters)
    normaliser = Normaliser.from_statistics(np.zeros(128), np.ones(128), 3.0, world.device)
    step = BatchStep(model, data_parallel(model, world), chunks, labels, normaliser, micro_batch_chunks, world,
                     BatchNormReplay(model, world))
    masks = dropout_mask(len(batch), cfg.latent_dim, cfg.dropout, torch.Generator().manual_seed(2))
    (local,) = local_batches(step, [batch])
    loss = joint_backward(step, local, masks)
    if world.is_main:
        grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
        buffers = {name: b for name, b in model.named_buffers()}
        torch.save({"grads": grads, "buffers": buffers, "loss": [loss.cross_entropy, loss.ccc_loss]}, out)
    world.barrier()  # every rank past its last collective before any tears gloo down (a rank once aborted at exit)
    close_world(world)


if __name__ == "__main__":
    main(*sys.argv[1:])
