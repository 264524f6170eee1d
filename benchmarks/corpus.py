"""The data the other benchmarks run on: the demo corpus, and its feature extraction."""
from __future__ import annotations

import time
from pathlib import Path

from core import FeatureStore, extract_features
from core.config import RunConfig
from core.data.corpus_formats import load_manifest
from benchmarks.results import NO_TARGET, BenchResult


def bench_demo_corpus(work: Path, seed: int = 0) -> BenchResult:
    """The built-in demo corpus, written to `work/demo`."""
    from core.data.synthetic import make_demo_corpus
    t0 = time.perf_counter()
    manifest = make_demo_corpus(work / "demo", seed=seed)
    seconds = time.perf_counter() - t0
    n = len(load_manifest(manifest))
    return BenchResult("demo corpus generation", seconds, "s", NO_TARGET, f"{n} clips")


def bench_feature_extraction(manifest: Path, work: Path, workers: int) -> BenchResult:
    """Log-mel features of every clip of `manifest` into an empty cache, with `workers` processes."""
    cfg = RunConfig()
    table = load_manifest(manifest)
    store = FeatureStore(work / f"cache-{workers}", cfg.audio, cfg.features, cfg.chunks)
    stats = extract_features(table, store, cfg.audio, cfg.features, cfg.chunks, workers=workers).stats
    return BenchResult(f"feature extraction, {workers} worker(s)", stats.real_time_factor, "x real time",
                       NO_TARGET, f"{stats.n_extracted} files, {stats.audio_seconds:.0f} s audio in {stats.seconds:.1f} s "
                       f"({stats.audio_seconds / stats.seconds:.0f}x faster than real time, incl. start-up)")
