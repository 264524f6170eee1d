"""Benchmarks that print the figures the issues set targets for (never timed unit tests).

Each benchmark works in a temporary folder on generated data and returns a `BenchResult`.
"""
from __future__ import annotations

import platform
import resource
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from core.config import ModelConfig, RunConfig
from core.model import EmotionCNN
from core.manifest import load_manifest
from core.store import FeatureStore, ModelBundle, Normalisation


@dataclass(frozen=True)
class BenchResult:
    name: str
    value: float
    unit: str
    target: str
    detail: str = ""


def bench_demo_corpus(work: Path, seed: int = 0) -> tuple[BenchResult, Path]:
    from core.synthetic import make_demo_corpus
    t0 = time.perf_counter()
    manifest = make_demo_corpus(work / "demo", seed=seed)
    seconds = time.perf_counter() - t0
    n = len(load_manifest(manifest))
    return BenchResult("demo corpus generation", seconds, "s", "-", f"{n} clips"), manifest


def bench_feature_extraction(manifest: Path, work: Path, workers: int) -> BenchResult:
    from core.extraction import extract_features
    cfg = RunConfig()
    table = load_manifest(manifest)
    store = FeatureStore(work / f"cache-{workers}", cfg.audio, cfg.features, cfg.chunks)
    _, stats = extract_features(table, store, cfg.audio, cfg.features, cfg.chunks, workers=workers)
    return BenchResult(f"feature extraction, {workers} worker(s)", stats.real_time_factor, "x real time",
                       "-", f"{stats.n_extracted} files, {stats.audio_seconds:.0f} s audio in {stats.seconds:.1f} s "
                       f"({stats.audio_seconds / stats.seconds:.0f}x faster than real time, incl. start-up)")


def bench_predict_latency(work: Path, n_networks: int = 3, repeats: int = 20) -> BenchResult:
    """One 5-s clip, all three attributes with three per-attribute networks (the published setup)."""
    from core.inference import Predictor
    cfg = RunConfig()
    torch.manual_seed(0)
    names = ("arousal", "dominance", "valence")[:n_networks]
    bundle = ModelBundle({a: EmotionCNN(ModelConfig(attributes=(a,))).eval() for a in names},
                         Normalisation(np.ones(128), np.ones(128), {a: 4.0 for a in names}, {a: 1.0 for a in names}), cfg)
    rng = np.random.default_rng(0)
    clip = work / "clip5s.wav"
    sf.write(clip, 0.3 * rng.standard_normal(5 * 16_000).astype(np.float32), 16_000)
    predictor = Predictor(bundle, device="auto")
    predictor.predict_files([clip])  # warm-up: oneDNN primitives, mel basis
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        predictor.predict_files([clip])
        times.append(time.perf_counter() - t0)
    return BenchResult("predict one 5-s clip (A+V+D, 3 networks), warm", float(np.median(times)), "s",
                       "< 0.2 s (authors' pipeline)", f"median of {repeats}, device {predictor.device}")


def run_all(work: Path | None = None) -> list[BenchResult]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(work or tmp)
        demo, manifest = bench_demo_corpus(work)
        results = [demo, bench_feature_extraction(manifest, work, 1), bench_feature_extraction(manifest, work, 2),
                   bench_predict_latency(work)]
    return results


def format_table(results: list[BenchResult]) -> str:
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = [f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
             f"peak RSS {peak_mb:.0f} MB", "", "| benchmark | value | target | detail |", "|---|---|---|---|"]
    lines += [f"| {r.name} | {r.value:.4g} {r.unit} | {r.target} | {r.detail} |" for r in results]
    return "\n".join(lines)


def as_json(results: list[BenchResult]) -> list[dict]:
    return [asdict(r) for r in results]
