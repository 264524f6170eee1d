"""Peak memory of a benchmark: run in a fresh process of its own (`with_peak_rss`), or sampled over a
process tree from /proc (`TreePeakRss`, for the app's server and whatever it starts)."""
from __future__ import annotations

import dataclasses
import multiprocessing
import resource
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from core import keep_freed_memory
from benchmarks.results import BenchResult


def with_peak_rss(fn, *args) -> list[BenchResult]:
    """Run a benchmark in a fresh process so that its peak memory is its own."""
    # not multiprocessing.Pool: its daemonic workers cannot start the extraction's own workers
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_child, fn, *args).result()


def _child(fn, *args) -> list[BenchResult]:
    keep_freed_memory()  # once per process: the training loop's allocation churn (~1.5x faster CPU steps)
    out = fn(*args)
    results = out if isinstance(out, list) else [out]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu = ""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        gpu = f"; GPU peak {torch.cuda.max_memory_allocated() / 2 ** 20:.0f} MB"
    return [dataclasses.replace(r, peak_rss_mb=peak, detail=r.detail + gpu) for r in results]


class _Sampler:
    """A background thread that calls `_sample()` every `interval_s` (and once more at `stop()`)."""

    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def stop(self) -> float | None:
        """Stop sampling; the peak in MB (None where /proc could not be read)."""
        self._stop.set()
        self._thread.join()
        self._sample()  # what is still alive: its final value
        return self._peak_kb() / 1024 if self._peak_kb() else None

    def _poll(self) -> None:
        while True:
            self._sample()
            if self._stop.wait(self.interval_s):
                return

    def _sample(self) -> None:
        raise NotImplementedError

    def _peak_kb(self) -> int:
        raise NotImplementedError


class TreePeakRss(_Sampler):
    """Samples the peak RSS (VmHWM) of a process and its descendants from /proc until `stop()`.

    Each process's own peak is kept after it exits; their sum bounds the tree's peak from above (the
    server dominates it: extraction runs in the server process for a corpus of this size). Linux only;
    elsewhere `stop()` returns None.
    """

    def __init__(self, pid: int, interval_s: float = 0.1):
        self.pid = pid
        self.peaks_kb: dict[int, int] = {}
        super().__init__(interval_s)

    def _peak_kb(self) -> int:
        return sum(self.peaks_kb.values())

    def _sample(self) -> None:
        for pid in self._tree():
            if (kb := _vm_hwm_kb(pid)) is not None:
                self.peaks_kb[pid] = max(kb, self.peaks_kb.get(pid, 0))

    def _tree(self) -> list[int]:
        parents = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")"
                text = stat.read_text()
            except OSError:
                continue
            parents[int(stat.parent.name)] = int(text[text.rindex(")") + 2:].split()[1])
        tree, frontier = [self.pid], [self.pid]
        while frontier:
            frontier = [pid for pid, ppid in parents.items() if ppid in frontier]
            tree += frontier
        return tree


class PrivatePeak(_Sampler):
    """Samples this process's private memory (RssAnon: heap, tensors, arrays; not the pages of memory-mapped
    files, which are page cache the kernel takes back) every `interval_s` until `stop()`. Linux only."""

    def __init__(self, interval_s: float = 0.02):
        self.peak_kb = 0
        super().__init__(interval_s)

    def _peak_kb(self) -> int:
        return self.peak_kb

    def _sample(self) -> None:
        self.peak_kb = max(self.peak_kb, _status_kb("self", "RssAnon:") or 0)


def _vm_hwm_kb(pid: int) -> int | None:
    return _status_kb(pid, "VmHWM:")


def _status_kb(pid: int | str, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        pass
    return None
