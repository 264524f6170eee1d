"""One benchmark figure (`BenchResult`) and the markdown table and JSON the results are reported as."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from benchmarks.machine import machine

NO_TARGET = "none set"


@dataclass(frozen=True)
class BenchResult:
    name: str
    value: float | None  # None: the benchmark did not run here (`detail` says why)
    unit: str
    target: str
    detail: str = ""
    peak_rss_mb: float | None = None  # of the process (tree) that ran it, when it ran in one of its own
    met: bool | None = None  # None where the target is not a number


def format_table(results: list[BenchResult], info: dict | None = None) -> str:
    """The results as a markdown table under a line naming the machine and device."""
    info = info or machine()
    lines = [f"machine: {info['processor']}, {info['cpu_cores']} cores, torch {info['torch']} with "
             f"{info['torch_threads']} threads; device {info['device']} ({info['device_name']})", "",
             "| benchmark | measured | target | peak RSS | detail |", "|---|---|---|---|---|"]
    for r in results:
        measured = "skipped" if r.value is None else f"{r.value:.4g} {r.unit}"
        verdict = {True: ": met", False: ": **not met**", None: ""}[r.met]
        peak = f"{r.peak_rss_mb:.0f} MB" if r.peak_rss_mb else "-"
        lines.append(f"| {r.name} | {measured} | {r.target}{verdict} | {peak} | {r.detail} |")
    return "\n".join(lines)


def as_json(results: list[BenchResult], info: dict | None = None) -> dict:
    """{"machine": what it ran on, "results": one dict per row}."""
    return {"machine": info or machine(), "results": [asdict(r) for r in results]}


def warm_median_s(call, repeats: int) -> float:
    """Median wall time of `call()` over `repeats` calls, after one warm-up (oneDNN primitives, mel basis)."""
    call()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def epochs_seconds(run) -> float:
    """The wall time of a stored run's epochs (`core.store.run_store.Run`): their stages (embed, K-means, train,
    validate) summed, not extraction or the test pass."""
    return float(sum(sum(epoch.values()) for epoch in run.history()["seconds"]))
