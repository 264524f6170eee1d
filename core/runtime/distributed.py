"""The same method on many processes (SPEC 2.8): torch.distributed, launched by torchrun.

`World` is what a process knows of the others: its rank, their number, its device, and the few
collectives the method needs (gather rows, sum, barrier, broadcast). A process started without
torchrun is a world of one, where every collective is the identity, so one code path serves both.

BatchNorm across ranks (issue 11):
- micro-batches (`train.micro_batch_chunks` an integer): each rank normalises its own micro-batches, which
  are the one-process run's micro-batches (ranks take whole micro-batches of each global batch). The
  running statistics are then replayed: every rank gathers every micro-batch's mean and variance and
  applies the one-process run's sequential momentum updates in global order (`BatchNormReplay`), so all
  ranks hold the statistics one process would, within float rounding.
- the whole batch (`None`, the paper presets): `GlobalBatchNorm2d` normalises over all ranks' chunks,
  with sums all-reduced (autograd flows through them); `nn.SyncBatchNorm` does the same on GPUs.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from core.errors import UserError
from core.runtime.device import resolve_device

# How long a rank waits for the others at a collective: long enough for rank 0 to pack the features of a
# 240-hour corpus (~2.1 M chunks; packing streams ~1 GB/min from the shards) while the others wait.
PROCESS_GROUP_TIMEOUT = timedelta(hours=3)


class DistributedError(UserError, RuntimeError):
    """A distributed launch that cannot work (no CUDA for NCCL, no rendezvous, ranks that disagree)."""


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    device: torch.device = field(default_factory=lambda: resolve_device("auto"))
    backend: str | None = None  # "gloo" or "nccl"; None for a world of one
    local_rank: int = 0  # on this machine

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes the run store and prints."""
        return self.rank == 0

    def shard(self, n: int) -> range:
        """This rank's contiguous share of `range(n)`: the first `n % size` ranks get one more."""
        per, extra = divmod(n, self.size)
        start = self.rank * per + min(self.rank, extra)
        return range(start, start + per + (self.rank < extra))

    def gather_rows(self, local: np.ndarray) -> np.ndarray:
        """The rows of every rank, concatenated in rank order (shards from `shard` give the global order)."""
        if self.size == 1:
            return local
        counts = [int(c) for c in self.sum_each(np.eye(self.size, dtype=np.int64)[self.rank] * len(local))]
        padded = torch.zeros((max(counts), *local.shape[1:]), dtype=torch.from_numpy(local[:0]).dtype)
        padded[: len(local)] = torch.from_numpy(np.ascontiguousarray(local))
        parts = [torch.empty_like(padded, device=self.device) for _ in range(self.size)]
        dist.all_gather(parts, padded.to(self.device))
        return np.concatenate([p[:c].cpu().numpy() for p, c in zip(parts, counts)])

    def sum_each(self, values: np.ndarray) -> np.ndarray:
        """Element-wise sum of an array over ranks (float64 or int64)."""
        if self.size == 1:
            return values
        tensor = torch.from_numpy(np.ascontiguousarray(values)).to(self.device)
        dist.all_reduce(tensor)
        return tensor.cpu().numpy()

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every rank's `obj` (picklable), in rank order."""
        if self.size == 1:
            return [obj]
        out = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (any picklable value)."""
        if self.size == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def check_same(self, value: str, what: str) -> None:
        """Raise DistributedError on every rank when the ranks hold different `value`s (e.g. config hashes)."""
        if self.size == 1:
            return
        values = self.gather_objects(value)
        if len(set(values)) > 1:
            ranks = [r for r, v in enumerate(values) if v != values[0]]
            raise DistributedError(f"the ranks disagree on {what}: ranks {ranks} differ from rank 0; "
                                   "start every rank with the same command and files")


def init_world(device: str = "auto", backend: str = "auto") -> World:
    """The world this process belongs to: torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
    ...) with `backend`, else a world of one on `device`.

    Args:
        backend: "auto" (NCCL when CUDA is available, else gloo), "gloo" or "nccl".

    Raises:
        DistributedError: NCCL without CUDA, or a rendezvous that cannot be reached.
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if backend not in ("auto", "gloo", "nccl"):
        raise DistributedError(f"backend must be one of ['auto', 'gloo', 'nccl'], got {backend!r}")
    if size <= 1:
        return World(device=resolve_device(device))
    cuda = torch.cuda.is_available() and device != "cpu"
    if backend == "nccl" and not cuda:
        raise DistributedError("the NCCL backend needs CUDA GPUs and none is usable here: use --dist-backend gloo")
    backend = ("nccl" if cuda else "gloo") if backend == "auto" else backend
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local_rank)
    try:
        dist.init_process_group(backend, timeout=PROCESS_GROUP_TIMEOUT)
    except (ValueError, RuntimeError) as err:  # e.g. MASTER_ADDR missing, or the rendezvous host unreachable
        raise DistributedError(f"cannot join the distributed job (WORLD_SIZE={size}): {str(err).splitlines()[0]}") from err
    return World(dist.get_rank(), dist.get_world_size(), torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu"),
                 backend, local_rank)


def close_world(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def data_parallel(model: nn.Module, world: World) -> nn.Module:
    """`model` wrapped for DDP's gradient averaging on several ranks (built anew for every stage: the fresh
    head and the frozen regressor change which parameters train); `model` itself on one. BatchNorm
    buffers are not broadcast: `BatchNormReplay` or `GlobalBatchNorm2d` keeps them equal on every rank."""
    if world.size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(model, device_ids=[world.device] if world.device.type == "cuda" else None,
                                   broadcast_buffers=False)


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the chunks of every rank: per-channel sums all-reduced (differentiably), so N ranks
    normalise a global batch as one process does. Works with gloo on CPU, where `nn.SyncBatchNorm` does not."""

    process_group = None  # set by `synchronise_batchnorm`; None: the default group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce
        dtype, x = x.dtype, x.float()  # statistics in float32 under bf16 autocast too
        channels = x.shape[1]
        local = torch.cat([x.sum((0, 2, 3)), (x * x).sum((0, 2, 3)), x.new_full((1,), x.numel() / channels)])
        # (2C + 1,) sums over every rank's chunks; its backward sums the gradients too. A group of its own:
        # these run inside the autograd graph, beside DDP's gradient all-reduces on the default group
        total = all_reduce(local, group=self.process_group)
        n = total[-1]
        mean = total[:channels] / n
        var = total[channels: 2 * channels] / n - mean * mean  # biased, as BatchNorm normalises
        with torch.no_grad():  # running statistics as nn.BatchNorm2d updates them (unbiased variance)
            self.num_batches_tracked += 1
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
            self.running_var.mul_(1 - self.momentum).add_(self.momentum * var * n / (n - 1))
        scale = self.weight * torch.rsqrt(var + self.eps)
        return (x * scale[None, :, None, None] + (self.bias - mean * scale)[None, :, None, None]).to(dtype)


def synchronise_batchnorm(model: nn.Module, world: World) -> nn.Module:
    """Make every BatchNorm of `model` normalise over all ranks (in place; returns it)."""
    if world.size == 1:
        return model
    group = dist.new_group()  # every rank calls this, in the same order: at model creation
    if world.device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model, process_group=group)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.BatchNorm2d:
                replacement = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum).to(child.weight.device)
                replacement.load_state_dict(child.state_dict())
                replacement.process_group = group
                setattr(parent, name, replacement)
    return model


class BatchNormReplay:
    """Running statistics of N ranks' micro-batches as one process would have them: record each training
    forward's batch mean and variance per BatchNorm layer, then replay all ranks' records in global order."""

    def __init__(self, model: nn.Module, world: World):
        self.world = world
        # plain BatchNorm only: GlobalBatchNorm2d and SyncBatchNorm already update from the global batch
        self.layers = [m for m in model.modules() if type(m) is nn.BatchNorm2d] if world.size > 1 else []
        self.records: list[list[torch.Tensor]] = [[] for _ in self.layers]
        self.active = True

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Forwards inside are not recorded (graph-free passes whose BatchNorm updates are undone)."""
        self.active, before = False, self.active
        try:
            yield
        finally:
            self.active = before

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """Record the forwards inside (the gradient pass of one step); on exit, replay every rank's."""
        if not self.layers:
            yield
            return
        start = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in self.layers]
        hooks = [m.register_forward_hook(self._hook(i)) for i, m in enumerate(self.layers)]
        try:
            yield
        finally:
            for hook in hooks:
                hook.remove()
        self._replay(start)

    def _hook(self, i: int):
        def record(module, inputs, output):
            if module.training and self.active:
                x = inputs[0].detach()
                n = x.numel() / x.shape[1]
                self.records[i].append(torch.cat([x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=n > 1)]).double().cpu())
        return record

    def _replay(self, start) -> None:
        for i, (layer, (mean, var, tracked)) in enumerate(zip(self.layers, start)):
            local = torch.stack(self.records[i]).numpy() if self.records[i] else np.zeros((0, 2 * layer.num_features))
            stats = self.world.gather_rows(local)  # (K, 2C): every micro-batch of the step, in global order
            m, c = layer.momentum, layer.num_features
            mean, var = mean.double().cpu(), var.double().cpu()
            for row in torch.from_numpy(stats):
                mean, var = (1 - m) * mean + m * row[:c], (1 - m) * var + m * row[c:]
            with torch.no_grad():
                layer.running_mean.copy_(mean.to(layer.running_mean))
                layer.running_var.copy_(var.to(layer.running_var))
                layer.num_batches_tracked.copy_(tracked + len(stats))
            self.records[i] = []
