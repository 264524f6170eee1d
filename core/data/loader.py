"""The data path: model inputs gathered ahead of the network, so a GPU never waits for the feature store.

A batch's input is one fancy-index gather of (B, m) frame rows from the memory-mapped corpus array
(`core.data.dataset`), then the per-bin normalisation. `prefetched_inputs` runs the gathers of the next few
batches in background threads while the network works on the current one:

- threads, not processes: the gather is a numpy copy that releases the GIL (page faults of the memory map
  included), so threads share the one memory map without reopening it or shipping tensors between processes;
- with a CUDA device each batch is gathered into pinned host memory, copied to the GPU asynchronously on
  a stream of its own (one batch ahead, overlapping the compute of the current batch) and normalised there;
- on a CPU the worker normalises too, so the main thread receives finished inputs.

The inputs, and their order, are exactly those of `load_chunks` batch by batch: the results do not depend on
the number of workers or on the device's data path.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterable, Iterator

import numpy as np
import torch

from core.data.dataset import ChunkSet, Normaliser, gather_frames

GATHER_WORKERS = 2  # threads gathering ahead: the gather runs at ~130 000 chunks/s per thread from page cache
BATCHES_AHEAD = 4  # batches gathered (and, on a GPU, held in pinned memory) ahead of the network


def prefetched_inputs(chunk_set: ChunkSet, batches: Iterable[np.ndarray], normaliser: Normaliser,
                      workers: int = GATHER_WORKERS, ahead: int = BATCHES_AHEAD) -> Iterator[torch.Tensor]:
    """The model input of each chunk-index array of `batches`, in order: (B, 1, m, F) float32, channels-last,
    on the normaliser's device; gathered by `workers` background threads up to `ahead` batches in advance."""
    cuda = normaliser.device.type == "cuda"
    pending: deque[Future] = deque()
    batches = iter(batches)
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="gather") as pool:
        def submit() -> None:
            index = next(batches, None)
            if index is not None:
                pending.append(pool.submit(_gather_pinned if cuda else _gather_normalised, chunk_set, index, normaliser))

        for _ in range(max(1, ahead)):
            submit()
        if not cuda:
            while pending:
                inputs = pending.popleft().result()
                submit()
                yield inputs
            return
        copies = _CudaCopies(normaliser)
        if pending:
            copies.start(pending.popleft().result())
        while copies.in_flight is not None:
            submit()
            upcoming = pending.popleft().result() if pending else None
            inputs = copies.finish()
            if upcoming is not None:  # its copy overlaps the compute of `inputs`
                copies.start(upcoming)
            yield inputs


def _gather_normalised(chunk_set: ChunkSet, index: np.ndarray, normaliser: Normaliser) -> torch.Tensor:
    return normaliser(torch.from_numpy(gather_frames(chunk_set, index)))


def _gather_pinned(chunk_set: ChunkSet, index: np.ndarray, normaliser: Normaliser) -> torch.Tensor:
    pinned = torch.empty((len(index), chunk_set.chunk_frames, chunk_set.frames.shape[1]), dtype=torch.float32,
                         pin_memory=True)
    gather_frames(chunk_set, index, out=pinned.numpy())
    return pinned


class _CudaCopies:
    """Host-to-device copies on a stream of their own, one batch ahead of the compute stream."""

    def __init__(self, normaliser: Normaliser):
        self.normaliser = normaliser
        self.stream = torch.cuda.Stream(normaliser.device)
        self.in_flight: torch.Tensor | None = None

    def start(self, pinned: torch.Tensor) -> None:
        self.stream.wait_stream(torch.cuda.current_stream(self.normaliser.device))  # the memory may be reused
        with torch.cuda.stream(self.stream):
            self.in_flight = pinned.to(self.normaliser.device, non_blocking=True)  # the pinned block is kept
                                                                                  # until the copy is done

    def finish(self) -> torch.Tensor:
        """The batch in flight, normalised on the compute stream once its copy is done."""
        current = torch.cuda.current_stream(self.normaliser.device)
        current.wait_stream(self.stream)
        frames, self.in_flight = self.in_flight, None
        frames.record_stream(current)  # allocated on the copy stream, used and freed on the compute stream
        return self.normaliser(frames)
