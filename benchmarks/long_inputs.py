"""Long inputs (issue 33): `predict` over folders of 1 000 and 10 000 short clips (its CSV streamed, memory flat)
and a one-hour recording through `predict` and `locate` (decoded in blocks, peak RSS <= 2 GB), each in a process of
its own: `python -m core predict` as a user runs it, the locator in a fresh one (`with_peak_rss`). Untrained
networks (`benchmarks.inputs`): the cost of reading and predicting, not the quality.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.inputs import noise_clip, random_map_locator, untrained_bundle
from benchmarks.memory import with_peak_rss
from benchmarks.results import BenchResult
from core import RunInfo, RunStore
from core.config import RunConfig
from core.model.bundle import bundle_state

FOLDER_SIZES = (1_000, 10_000)
CLIP_S = 3.0  # a short clip; the network's cost does not depend on it (C chunks a clip, whatever its length)
PEAK_LIMIT_MB = 2048.0  # the bound for an hour-long recording
FLAT_WITHIN = 0.10  # 10 000 clips may take at most 10 % more peak memory than 1 000


def bench_long_inputs(work: Path, sizes: tuple[int, ...] = FOLDER_SIZES) -> list[BenchResult]:
    """Every row of this benchmark; each measurement runs in a process of its own (the CLI's, or `with_peak_rss`).

    Args:
        work: a scratch folder (the clips are hard links to one file, so 10 000 take no space).
        sizes: folder sizes to predict over (the first and the last are compared for flat memory).
    """
    runs = _bench_run(work / "long-runs")
    results = []
    for n in sizes:
        folder = _clip_folder(work / f"clips-{n}", n)
        results.append(_predict_cli(runs, folder, work / f"predicted-{n}.csv", f"{n:,} {CLIP_S:g}-s clips"))
    if len(sizes) > 1 and all(r.peak_rss_mb for r in results):
        growth = results[-1].peak_rss_mb / results[0].peak_rss_mb - 1
        results.append(BenchResult(f"predict: peak RSS at {sizes[-1]:,} clips against {sizes[0]:,}", 100 * growth, "%",
                                   f"<= +{FLAT_WITHIN:.0%} (memory flat)", f"{results[0].peak_rss_mb:.0f} -> "
                                   f"{results[-1].peak_rss_mb:.0f} MB", met=growth <= FLAT_WITHIN))
    hour = long_wav(work / "one hour.wav")
    hour_rows = [_predict_cli(runs, hour, work / "predicted-hour.csv", "a one-hour 16-kHz recording"),
                 *with_peak_rss(_locate_hour, work, hour)]
    return results + [dataclasses.replace(r, target=f"peak RSS <= {PEAK_LIMIT_MB:.0f} MB",
                                          met=r.peak_rss_mb is not None and r.peak_rss_mb <= PEAK_LIMIT_MB)
                      for r in hour_rows]


def long_wav(path: Path, minutes: int = 60, sampling_rate: int = 16_000) -> Path:
    """A 16-bit mono recording of `minutes` (an hour: 115 MB at 16 kHz), written a minute at a time: a warbling tone."""
    t = np.arange(60 * sampling_rate) / sampling_rate
    minute = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    with sf.SoundFile(path, "w", sampling_rate, 1, "PCM_16") as out:
        for _ in range(minutes):
            out.write(minute)
    return path


def _bench_run(root: Path):
    """An untrained run with the default recipe's joint network, saved as `python -m core predict` finds it."""
    cfg = RunConfig(name="bench")
    bundle = untrained_bundle({"joint": cfg.model}, cfg)
    RunStore(root).save_complete(RunInfo(kind="bench", name="bench", config=cfg, run_id="bench"), bundle_state(bundle))
    return root


def _clip_folder(folder: Path, n: int) -> Path:
    """`n` clips: hard links to one noise clip (copies where the file system has no links)."""
    folder.mkdir(parents=True)
    first = noise_clip(folder / "clip00000.wav", np.random.default_rng(0), CLIP_S)
    for i in range(1, n):
        try:
            os.link(first, folder / f"clip{i:05d}.wav")
        except OSError:
            shutil.copyfile(first, folder / f"clip{i:05d}.wav")
    return folder


def _predict_cli(runs: Path, inputs: Path, out: Path, what: str) -> BenchResult:
    """`python -m core predict INPUTS --out OUT` in a process of its own, as a user runs it: wall time from start to
    the last row written, and the process's peak RSS (from wait4)."""
    t0 = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "core", "--runs-dir", str(runs), "predict", str(inputs),
                                "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)  # its progress bar: not the benchmark's output
    seconds = time.perf_counter() - t0
    code = process.returncode = os.waitstatus_to_exitcode(status)
    with open(out) as table:
        n_rows = sum(1 for _ in table) - 1
    return BenchResult(f"predict {what} (CLI, CSV streamed)", seconds, "s", "none set",
                       f"{n_rows / seconds:.2f} clips/s, model loading included; {n_rows} rows; exit code {code}",
                       peak_rss_mb=usage.ru_maxrss / 1024)


def _locate_hour(work: Path, hour: Path, n_corpus: int = 20_000) -> BenchResult:
    """`Locator.locate_files` (what `python -m core locate` and the Locate page call) of the hour, in a map of
    `n_corpus` random utterances, as `benchmarks.latency.bench_locate` builds it."""
    locator = random_map_locator(work / "long-locate", n_corpus)
    t0 = time.perf_counter()
    located = locator.locate_files([hour])
    seconds = time.perf_counter() - t0
    return BenchResult(f"locate a one-hour 16-kHz recording in a {n_corpus:,}-utterance map", seconds, "s", "none set",
                       f"{len(located.table)} located, errors {located.errors or 'none'}; device {locator.predictor.device}")
