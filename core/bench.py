"""Benchmarks that print the figures the issues set targets for (never timed unit tests).

Each benchmark works in a temporary folder on generated data and returns a `BenchResult`.
"""
from __future__ import annotations

import dataclasses
import os
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


FLOP_PER_CHUNK = 0.875e9  # forward + backward of one 62 x 128 chunk through the published network


@dataclass(frozen=True)
class BenchResult:
    name: str
    value: float
    unit: str
    target: str
    detail: str = ""
    peak_rss_mb: float | None = None  # of the process that ran it, when it ran in one of its own


def sgemm_gflops(n: int = 2048, repeats: int = 10) -> float:
    """float32 matrix-multiply rate of this machine with torch's threads (the training yardstick)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / float(np.median(times)) / 1e9


def bench_training(work: Path, n_labelled: int = 200, n_unlabelled: int = 200, epochs: int = 1) -> list[BenchResult]:
    """SPEC 2.7's setting: an arousal model (paper preset), 200 labelled + 200 unlabelled utterances,
    11 chunks each, batches of 64 utterances; one epoch by default."""
    import dataclasses
    from core.config import paper
    from core.store import RunStore
    from core.synthetic import make_demo_corpus
    from core.train import train
    manifest = make_demo_corpus(work / "train-corpus", n_train=n_labelled, n_dev=40, n_test=40, n_unlabelled=n_unlabelled)
    cfg = paper("arousal")
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=epochs, freeze_regressor=False))
    sgemm = sgemm_gflops()
    result = train(cfg, load_manifest(manifest), RunStore(work / "runs"), work / "cache")
    seconds = _sum_dicts([h["seconds"] for h in result.history.to_dict("records")])
    chunks = int(result.history["trained_chunks"].sum())
    step_rate = chunks / seconds["train"]
    epoch_s = sum(seconds.values()) / epochs
    gflops = step_rate * FLOP_PER_CHUNK / 1e9
    return [
        BenchResult("training step (fwd+bwd, channels-last)", step_rate, "chunks/s", ">= 60 % of sgemm",
                    f"{gflops:.0f} GFLOP/s = {100 * gflops / sgemm:.0f} % of sgemm {sgemm:.0f} GFLOP/s measured now"),
        BenchResult("training epoch (200 + 200 utterances x 11 chunks)", epoch_s, "s",
                    "<= 1.6 x step time; authors' code 172 s",
                    f"{epoch_s / (seconds['train'] / epochs):.2f} x step time; embed {seconds['embed'] / epochs:.1f} s, "
                    f"k-means {seconds['kmeans'] / epochs:.1f} s, validate {seconds['validate'] / epochs:.1f} s; "
                    f"{172 / epoch_s:.1f}x faster than the authors' 172 s"),
    ]


def _sum_dicts(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: sum(r.get(k, 0.0) for r in rows) for k in rows[0]}


def bench_demo_corpus(work: Path, seed: int = 0) -> BenchResult:
    """The built-in demo corpus, written to `work/demo`."""
    from core.synthetic import make_demo_corpus
    t0 = time.perf_counter()
    manifest = make_demo_corpus(work / "demo", seed=seed)
    seconds = time.perf_counter() - t0
    n = len(load_manifest(manifest))
    return BenchResult("demo corpus generation", seconds, "s", "-", f"{n} clips")


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
    names = ("arousal", "dominance", "valence")[:n_networks]
    bundle = _untrained_bundle({a: ModelConfig(attributes=(a,)) for a in names}, cfg)
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


def bench_locate(work: Path, n_corpus: int = 20_000, repeats: int = 20) -> BenchResult:
    """Locate one 5-s clip (decode, features, network, cluster, k-NN placement, neighbours) in a map of
    `n_corpus` utterances; an untrained joint network and random embeddings: the cost is the same."""
    import pandas as pd
    from core.explore import Exploration, Locator
    from core.latent import LatentSpace
    from core.store import RunStore
    cfg = RunConfig(name="bench")
    bundle = _untrained_bundle({"joint": cfg.model}, cfg)
    run = RunStore(work / "locate-runs").save_complete("bench", {"kind": "bench", "config": cfg.to_dict()}, bundle)
    rng = np.random.default_rng(0)
    files = pd.Index([f"u{i}" for i in range(n_corpus)], name="file")
    embeddings = rng.normal(size=(n_corpus, 256)).astype(np.float32)
    latent = LatentSpace(files, 1, {}, {"cluster": embeddings, "latent": embeddings}, np.zeros(n_corpus, np.int64),
                         np.zeros(n_corpus, np.int64), np.ones((n_corpus, 1), np.float32), rng.normal(size=(10, 256)),
                         "bench", pd.DataFrame(index=files))
    exploration = Exploration(run, "joint", pd.DataFrame(index=files), latent, work)
    locator = Locator(exploration, rng.normal(size=(n_corpus, 2)).astype(np.float32))
    clip = work / "locate5s.wav"
    sf.write(clip, 0.3 * rng.standard_normal(5 * 16_000).astype(np.float32), 16_000)
    locator.locate_files([clip])  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        locator.locate_files([clip])
        times.append(time.perf_counter() - t0)
    return BenchResult(f"locate one 5-s clip in a {n_corpus:,}-utterance map, warm", float(np.median(times)), "s",
                       "<= 0.3 s", f"median of {repeats}: audio, features, network, cluster, k-NN placement, neighbours")


def bench_projection(n_points: int, sample_size: int = 50_000) -> BenchResult:
    """UMAP fit on at most `sample_size` of `n_points` synthetic 256-d embeddings + k-NN placement of the rest
    (includes umap-learn's one-off numba compilation when it is the first fit of the process)."""
    from core.config import UmapConfig
    from core.projection import LatentProjector
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, size=(30, 256))
    X = (centres[rng.integers(0, 30, n_points)] + rng.normal(size=(n_points, 256))).astype(np.float32)
    t0 = time.perf_counter()
    LatentProjector(UmapConfig(sample_size=sample_size)).fit(X)
    return BenchResult(f"UMAP map of {n_points:,} embeddings (fit {min(n_points, sample_size):,}, place the rest)",
                       time.perf_counter() - t0, "s", "minutes, not hours", "256-d, 30 clusters; includes numba JIT")


def _untrained_bundle(networks: dict[str, ModelConfig], cfg: RunConfig) -> ModelBundle:
    """Randomly initialised networks with neutral normalisation: the cost of inference, not its quality."""
    attributes = [a for model in networks.values() for a in model.attributes]
    torch.manual_seed(0)  # the same weights every run: comparable timings
    return ModelBundle({name: EmotionCNN(model).eval() for name, model in networks.items()},
                       Normalisation(np.ones(128), np.ones(128), {a: 4.0 for a in attributes},
                                     {a: 1.0 for a in attributes}), cfg)


def _with_peak_rss(fn, *args) -> list[BenchResult]:
    """Run a benchmark in a fresh process so that its peak memory is its own."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    # not multiprocessing.Pool: its daemonic workers cannot start the extraction's own workers
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_child, fn, *args).result()


def _child(fn, *args) -> list[BenchResult]:
    out = fn(*args)
    results = out if isinstance(out, list) else [out]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return [dataclasses.replace(r, peak_rss_mb=peak) for r in results]


def run_all(work: Path | None = None, training: bool = True, projection: bool = True) -> list[BenchResult]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(work or tmp)
        results = _with_peak_rss(bench_demo_corpus, work)
        manifest = work / "demo" / "manifest.csv"
        results += _with_peak_rss(bench_feature_extraction, manifest, work, 1)
        results += _with_peak_rss(bench_feature_extraction, manifest, work, 2)
        results += _with_peak_rss(bench_predict_latency, work)
        results += _with_peak_rss(bench_locate, work)
        if projection:
            for n in (10_000, 50_000, 150_000):
                results += _with_peak_rss(bench_projection, n)
        if training:
            results += _with_peak_rss(bench_training, work)
    return results


def format_table(results: list[BenchResult]) -> str:
    lines = [f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
             f"{torch.get_num_threads()}, device {'cuda' if torch.cuda.is_available() else 'cpu'}", "",
             "| benchmark | value | target | peak RSS | detail |", "|---|---|---|---|---|"]
    lines += [f"| {r.name} | {r.value:.4g} {r.unit} | {r.target} | "
              f"{f'{r.peak_rss_mb:.0f} MB' if r.peak_rss_mb else '-'} | {r.detail} |" for r in results]
    return "\n".join(lines)


def as_json(results: list[BenchResult]) -> list[dict]:
    return [asdict(r) for r in results]
