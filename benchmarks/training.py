"""Training speed: the `demo` preset as a fresh app start trains it, and SPEC 2.7's epoch and step rate."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from core import RunStore
from core.data.corpus_formats import load_manifest
from core.runtime.device import resolve_device
from benchmarks.machine import sgemm_gflops
from benchmarks.results import BenchResult

FLOP_PER_CHUNK = 0.875e9  # forward + backward of one 62 x 128 chunk through the published network
AUTHORS_EPOCH_S = 172.0  # the authors' code, SPEC 2.7 setting, on this machine kind


def bench_training(work: Path, n_labelled: int = 200, n_unlabelled: int = 200, epochs: int = 1) -> list[BenchResult]:
    """SPEC 2.7's setting: an arousal model (paper preset with a trainable regressor and micro-batches of 32 chunks),
    200 labelled + 200 unlabelled utterances, 11 chunks each, batches of 64 utterances; one epoch by default."""
    from core.config import default, paper
    from core.data.synthetic import make_demo_corpus
    from core.training.train import train
    manifest = make_demo_corpus(work / "train-corpus", n_train=n_labelled, n_dev=40, n_test=40, n_unlabelled=n_unlabelled)
    cfg = paper("arousal")
    # Two fields changed, both named in the row: the regression branch trains (as the paper's text describes), and
    # BatchNorm sees the default preset's micro-batches of 32 chunks (the < 1.5 GB goal is that setting's); the paper
    # preset's whole-batch BatchNorm peaks at 11.4 GB RSS over one epoch (measured: `core.config.sections.TrainConfig`).
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=epochs, freeze_regressor=False,
                                                             micro_batch_chunks=default().train.micro_batch_chunks))
    setting = (f"SPEC 2.7 setting: paper-arousal with freeze_regressor=False and micro-batches of "
               f"{cfg.train.micro_batch_chunks} chunks; {n_labelled} + {n_unlabelled} utterances x {cfg.chunks.n_chunks} "
               f"chunks, batches of {cfg.train.batch_utterances}")
    device = resolve_device(cfg.train.device)
    sgemm = sgemm_gflops(str(device))
    result = train(cfg, load_manifest(manifest), RunStore(work / "runs"), work / "cache")
    seconds = _sum_dicts([h["seconds"] for h in result.history.to_dict("records")])
    chunks = int(result.history["trained_chunks"].sum())
    step_rate = chunks / seconds["train"]
    epoch_s = sum(seconds.values()) / epochs
    gflops = step_rate * FLOP_PER_CHUNK / 1e9
    step_ratio = epoch_s / (seconds["train"] / epochs)
    return [
        BenchResult("training step (fwd+bwd, channels-last)", step_rate, "chunks/s", ">= 60 % of sgemm",
                    f"{gflops:.0f} GFLOP/s = {100 * gflops / sgemm:.0f} % of sgemm {sgemm:.0f} GFLOP/s measured now "
                    f"(60 % = {0.6 * sgemm * 1e9 / FLOP_PER_CHUNK:.0f} chunks/s); device {device}",
                    met=gflops >= 0.6 * sgemm),
        BenchResult(f"training epoch, {setting}", epoch_s, "s",
                    f"<= 1.6 x step time; 3x faster than the authors' {AUTHORS_EPOCH_S:.0f} s; peak < 1.5 GB",
                    f"{step_ratio:.2f} x step time; embed {seconds['embed'] / epochs:.1f} s, "
                    f"k-means {seconds['kmeans'] / epochs:.1f} s, validate {seconds['validate'] / epochs:.1f} s; "
                    f"{AUTHORS_EPOCH_S / epoch_s:.1f}x faster than the authors' {AUTHORS_EPOCH_S:.0f} s; device {device}",
                    met=step_ratio <= 1.6 and epoch_s <= AUTHORS_EPOCH_S / 3),
    ]


def bench_demo_training(manifest: Path, work: Path) -> BenchResult:
    """The `demo` preset on the demo corpus from an empty feature cache: what a fresh app start trains."""
    from core.config import demo
    from core.training.train import train
    cfg = demo()
    t0 = time.perf_counter()
    result = train(cfg, load_manifest(manifest), RunStore(work / "demo-runs"), work / "demo-cache")
    seconds = time.perf_counter() - t0
    return BenchResult(f"demo preset, {cfg.train.epochs} epochs incl. feature extraction", seconds, "s", "<= 4 min",
                       f"{len(result.history)} epochs; device {resolve_device(cfg.train.device)}", met=seconds <= 240)


def _sum_dicts(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: sum(r.get(k, 0.0) for r in rows) for k in rows[0]}
