"""Embedding throughput of the one forward path (`core.model.forward.embed_chunks`), with and without glibc's
malloc options (`core.runtime.process.keep_freed_memory`), which every entry point applies and training once
alone did (293 chunks/s exploring a corpus, 620 inside training)."""
from __future__ import annotations

import multiprocessing
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.memory import with_peak_rss
from benchmarks.results import BenchResult


def bench_embedding(work: Path, n_chunks: int = 5_000, repeats: int = 3) -> list[BenchResult]:
    """`embed_chunks` of the published network (untrained, eval mode, channels-last) over `n_chunks` random
    62 x 128 chunks, in a process of its own that applies `keep_freed_memory()` as the entry points do,
    and for comparison in one that keeps glibc's defaults. `work` is unused: the chunks are in memory."""
    applied = with_peak_rss(_embedding_rate, n_chunks, repeats, "keep_freed_memory() applied, as the entry points do",
                            "≥ the training loop's embedding rate")
    return applied + [_without_malloc_options(_embedding_rate, n_chunks, repeats,
                                              "glibc's default malloc options (not applied)", "baseline")]


def _without_malloc_options(fn, *args) -> BenchResult:
    """`fn(*args)` in a fresh process that never calls `keep_freed_memory()` (`with_peak_rss`'s child does)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def _embedding_rate(n_chunks: int, repeats: int, malloc: str, target: str) -> BenchResult:
    """Median chunks/s of `repeats` passes after one warm-up pass (oneDNN primitives, the heap's first growth)."""
    import torch
    from core.config import ModelConfig
    from core.data.dataset import ChunkSet, Normaliser
    from core.model.forward import EMBED_BATCH_CHUNKS, embed_chunks
    from core.model.network import EmotionCNN
    from core.runtime.device import resolve_device
    device = resolve_device("auto")
    torch.manual_seed(0)  # the same weights every run: comparable timings
    model = EmotionCNN(ModelConfig()).eval().to(device, memory_format=torch.channels_last)
    chunks = np.random.default_rng(0).standard_normal((n_chunks, 1, 62, 128), dtype=np.float32)
    chunk_set = ChunkSet.from_chunks(list(chunks))  # one chunk per clip: (1, 62, 128) each
    normaliser = Normaliser.from_statistics(np.zeros(128), np.ones(128), 3.0, device)
    embed_chunks(model, ChunkSet.from_chunks(list(chunks[:4 * EMBED_BATCH_CHUNKS])), normaliser)
    faults0, rates = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, []
    for _ in range(repeats):
        t0 = time.perf_counter()
        embed_chunks(model, chunk_set, normaliser)
        rates.append(n_chunks / (time.perf_counter() - t0))
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0) / (repeats * n_chunks)
    rate = float(np.median(rates))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return BenchResult(f"embedding {n_chunks:,} chunks (embed_chunks, published network), {malloc}", rate, "chunks/s",
                       target, f"median of {repeats} passes ({min(rates):.0f}-{max(rates):.0f}); batches of "
                       f"{EMBED_BATCH_CHUNKS}; {faults:.1f} minor page faults per chunk; device {device}; "
                       f"{torch.get_num_threads()} threads", peak_rss_mb=peak)
