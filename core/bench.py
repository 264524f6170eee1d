"""Benchmarks that print the figures the issues set targets for (never timed unit tests).

Each benchmark works in a temporary folder on generated data and returns `BenchResult`s; every row
carries the target the issues set (or says that none was set) and, where it is a number, whether it
was met. Networks run on `resolve_device("auto")`, so the same table can be made on a GPU.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from core.config import ModelConfig, RunConfig
from core.model import EmotionCNN, resolve_device
from core.manifest import load_manifest
from core.store import FeatureStore, ModelBundle, Normalisation, RunStore


FLOP_PER_CHUNK = 0.875e9  # forward + backward of one 62 x 128 chunk through the published network
AUTHORS_EPOCH_S = 172.0  # the authors' code, SPEC 2.7 setting, on this machine kind
NO_TARGET = "none set"
CHROMIUM = Path("/usr/bin/chromium")  # Debian's build; a downloaded browser is never used
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",  # headless, offline, quiet
                 "--disable-background-networking", "--disable-component-update", "--disable-sync")
REPO = Path(__file__).resolve().parents[1]  # `streamlit run app` runs from here


@dataclass(frozen=True)
class BenchResult:
    name: str
    value: float | None  # None: the benchmark did not run here (`detail` says why)
    unit: str
    target: str
    detail: str = ""
    peak_rss_mb: float | None = None  # of the process (tree) that ran it, when it ran in one of its own
    met: bool | None = None  # None where the target is not a number


def sgemm_gflops(device: str = "auto", n: int | None = None, repeats: int = 10) -> float:
    """float32 matrix-multiply rate on `device` (with torch's threads on CPU): the training yardstick."""
    device = resolve_device(device)
    cuda = device.type == "cuda"
    n = n or (8192 if cuda else 2048)  # large enough to keep the device busy for the timed call
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    times = []
    for i in range(repeats + 3):  # 3 warm-up calls
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / float(np.median(times)) / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_training(work: Path, n_labelled: int = 200, n_unlabelled: int = 200, epochs: int = 1) -> list[BenchResult]:
    """SPEC 2.7's setting: an arousal model (paper preset), 200 labelled + 200 unlabelled utterances,
    11 chunks each, batches of 64 utterances; one epoch by default."""
    from core.config import paper
    from core.synthetic import make_demo_corpus
    from core.train import train
    manifest = make_demo_corpus(work / "train-corpus", n_train=n_labelled, n_dev=40, n_test=40, n_unlabelled=n_unlabelled)
    cfg = paper("arousal")
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=epochs, freeze_regressor=False))
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
        BenchResult("training epoch (200 + 200 utterances x 11 chunks)", epoch_s, "s",
                    f"<= 1.6 x step time; 3x faster than the authors' {AUTHORS_EPOCH_S:.0f} s; peak < 1.5 GB",
                    f"{step_ratio:.2f} x step time; embed {seconds['embed'] / epochs:.1f} s, "
                    f"k-means {seconds['kmeans'] / epochs:.1f} s, validate {seconds['validate'] / epochs:.1f} s; "
                    f"{AUTHORS_EPOCH_S / epoch_s:.1f}x faster than the authors' {AUTHORS_EPOCH_S:.0f} s; device {device}",
                    met=step_ratio <= 1.6 and epoch_s <= AUTHORS_EPOCH_S / 3),
    ]


def bench_demo_training(manifest: Path, work: Path) -> BenchResult:
    """The `demo` preset on the demo corpus from an empty feature cache: what a fresh app start trains."""
    from core.config import demo
    from core.train import train
    cfg = demo()
    t0 = time.perf_counter()
    result = train(cfg, load_manifest(manifest), RunStore(work / "demo-runs"), work / "demo-cache")
    seconds = time.perf_counter() - t0
    return BenchResult(f"demo preset, {cfg.train.epochs} epochs incl. feature extraction", seconds, "s", "<= 4 min",
                       f"{len(result.history)} epochs; device {resolve_device(cfg.train.device)}", met=seconds <= 240)


def _sum_dicts(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: sum(r.get(k, 0.0) for r in rows) for k in rows[0]}


def bench_demo_corpus(work: Path, seed: int = 0) -> BenchResult:
    """The built-in demo corpus, written to `work/demo`."""
    from core.synthetic import make_demo_corpus
    t0 = time.perf_counter()
    manifest = make_demo_corpus(work / "demo", seed=seed)
    seconds = time.perf_counter() - t0
    n = len(load_manifest(manifest))
    return BenchResult("demo corpus generation", seconds, "s", NO_TARGET, f"{n} clips")


def bench_feature_extraction(manifest: Path, work: Path, workers: int) -> BenchResult:
    from core.extraction import extract_features
    cfg = RunConfig()
    table = load_manifest(manifest)
    store = FeatureStore(work / f"cache-{workers}", cfg.audio, cfg.features, cfg.chunks)
    _, stats = extract_features(table, store, cfg.audio, cfg.features, cfg.chunks, workers=workers)
    return BenchResult(f"feature extraction, {workers} worker(s)", stats.real_time_factor, "x real time",
                       NO_TARGET, f"{stats.n_extracted} files, {stats.audio_seconds:.0f} s audio in {stats.seconds:.1f} s "
                       f"({stats.audio_seconds / stats.seconds:.0f}x faster than real time, incl. start-up)")


def bench_predict_latency(work: Path, n_networks: int = 3, repeats: int = 20) -> BenchResult:
    """One 5-s clip, all three attributes with three per-attribute networks (the published setup)."""
    from core.inference import Predictor
    cfg = RunConfig()
    names = ("arousal", "dominance", "valence")[:n_networks]
    bundle = _untrained_bundle({a: ModelConfig(attributes=(a,)) for a in names}, cfg)
    clip = _noise_clip(work / "clip5s.wav", np.random.default_rng(0))
    predictor = Predictor(bundle, device="auto")
    seconds = _warm_median_s(lambda: predictor.predict_files([clip]), repeats)
    return BenchResult("predict one 5-s clip (A+V+D, 3 networks), warm", seconds, "s", "<= 0.2 s (the authors' pipeline)",
                       f"median of {repeats}; device {predictor.device}", met=seconds <= 0.2)


def bench_locate(work: Path, n_corpus: int = 20_000, repeats: int = 20) -> BenchResult:
    """Locate one 5-s clip (decode, features, network, cluster, k-NN placement, neighbours) in a map of
    `n_corpus` utterances; an untrained joint network and random embeddings: the cost is the same."""
    import pandas as pd
    from core.explore import Exploration, Locator
    from core.latent import LatentSpace
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
    clip = _noise_clip(work / "locate5s.wav", rng)
    seconds = _warm_median_s(lambda: locator.locate_files([clip]), repeats)
    return BenchResult(f"locate one 5-s clip in a {n_corpus:,}-utterance map, warm", seconds, "s", "<= 0.3 s",
                       f"median of {repeats}: audio, features, network, cluster, k-NN placement, neighbours; "
                       f"device {locator.predictor.device}", met=seconds <= 0.3)


def _noise_clip(path: Path, rng: np.random.Generator, seconds: float = 5.0) -> Path:
    """A 16-kHz noise clip: latency does not depend on what the audio says."""
    sf.write(path, 0.3 * rng.standard_normal(int(seconds * 16_000)).astype(np.float32), 16_000)
    return path


def _warm_median_s(call, repeats: int) -> float:
    """Median wall time of `call()` over `repeats` calls, after one warm-up (oneDNN primitives, mel basis)."""
    call()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


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
    seconds = time.perf_counter() - t0
    return BenchResult(f"UMAP map of {n_points:,} embeddings (fit {min(n_points, sample_size):,}, place the rest)",
                       seconds, "s", "minutes, not hours", "256-d, 30 clusters; includes numba JIT", met=seconds < 3600)


APP_FIRST = "app cold start to the first map, first visit (embeds the corpus, fits UMAP)"
APP_CACHED = "app cold start to the first map, run cached (server restarted)"
APP_CACHED_AIM_S = 15.0  # our aim, not the issues': they set no figure (9.6 s was reported when closing them)


def browser_unavailable() -> str | None:
    """Why the app benchmark cannot drive a browser here, or None when it can."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not installed"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright not installed"
    return None


def bench_app_cold_start(data_dir: Path, cfg: RunConfig | None = None, timeout_s: float = 600) -> list[BenchResult]:
    """`streamlit run app` until headless chromium shows the first map, twice: on the first visit to a
    stored run (the app embeds the corpus and fits its UMAP map) and after a server restart (both cached).

    The run is an untrained network of `cfg` (default: the `demo` preset's) saved as a completed run; the
    app explores such runs over `data_dir/demo` (the demo corpus, made by `bench_demo_corpus`), so the
    work is the demo run's. Peak RSS is the server process tree's (the browser is not counted).

    Returns:
        Two results (s); both "skipped: <why>" without /usr/bin/chromium or playwright.
    Raises:
        RuntimeError: the server exited or the map did not appear within `timeout_s`.
    """
    from core.config import demo
    targets = {APP_FIRST: NO_TARGET, APP_CACHED: f"<= {APP_CACHED_AIM_S:.0f} s (our aim; the issues set none)"}
    if reason := browser_unavailable():
        return [BenchResult(name, None, "s", target, f"skipped: {reason}") for name, target in targets.items()]
    if not (data_dir / "demo" / "manifest.csv").exists():
        raise FileNotFoundError(f"no demo corpus in {data_dir / 'demo'}: make one first (core.synthetic.make_demo_corpus)")
    cfg = cfg or demo()
    runs = data_dir / "app-runs"
    bundle = _untrained_bundle({"joint": cfg.model}, cfg)
    RunStore(runs).save_complete("bench-app", {"kind": "bench", "name": "bench", "config": cfg.to_dict()}, bundle)
    env = {**os.environ, "SER_DATA_DIR": str(data_dir), "SER_RUNS_DIR": str(runs)}
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS))
        try:
            starts = [_first_map(browser, env, data_dir / f"streamlit-{i}.log", timeout_s) for i in (1, 2)]
        finally:
            browser.close()
    return [BenchResult(name, seconds, "s", targets[name], f"server answering after {ready:.1f} s; headless chromium; "
                        f"run {cfg.name}, untrained", peak, met=None if name == APP_FIRST else seconds <= APP_CACHED_AIM_S)
            for name, (seconds, ready, peak) in zip(targets, starts)]


def _first_map(browser, env: dict[str, str], log: Path, timeout_s: float) -> tuple[float, float, float | None]:
    """Start the server, open the app in a fresh browser context and wait for the map.

    Returns (seconds to the visible map, seconds until the server answered, peak RSS in MB of the server tree).
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        t0 = time.perf_counter()
        server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app", "--server.port", str(port),
                                   "--server.address", "127.0.0.1", "--server.headless", "true",
                                   "--browser.gatherUsageStats", "false"],
                                  cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        memory = _TreePeakRss(server.pid)
        try:
            ready = _wait_until_healthy(url, server, t0 + timeout_s, log) - t0
            context = browser.new_context(viewport={"width": 1400, "height": 1000})  # no browser cache either
            try:
                page = context.new_page()
                page.goto(url)
                remaining_ms = max(1.0, t0 + timeout_s - time.perf_counter()) * 1000
                try:
                    page.locator(".js-plotly-plot").first.wait_for(state="visible", timeout=remaining_ms)
                except PlaywrightTimeout:
                    raise RuntimeError(f"no map within {timeout_s:.0f} s of the server start:\n{_tail(log)}") from None
                seconds = time.perf_counter() - t0
            finally:
                context.close()
        finally:
            peak = memory.stop()
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    return seconds, ready, peak


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_healthy(url: str, server: subprocess.Popen, deadline: float, log: Path) -> float:
    """perf_counter() time at which streamlit's health check first answered."""
    while time.perf_counter() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {server.returncode}:\n{_tail(log)}")
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return time.perf_counter()
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"streamlit did not answer within the time limit:\n{_tail(log)}")


def _tail(log: Path, n_chars: int = 2000) -> str:
    return log.read_text(errors="replace")[-n_chars:]


class _TreePeakRss:
    """Samples the peak RSS (VmHWM) of a process and its descendants from /proc until `stop()`.

    Each process's own peak is kept after it exits; their sum bounds the tree's peak from above (the
    server dominates it: extraction runs in the server process for a corpus of this size). Linux only;
    elsewhere `stop()` returns None.
    """

    def __init__(self, pid: int, interval_s: float = 0.1):
        self.pid, self.interval_s = pid, interval_s
        self.peaks_kb: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join()
        self._sample()  # the processes are still alive: read their final peaks
        return sum(self.peaks_kb.values()) / 1024 if self.peaks_kb else None

    def _poll(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

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


def _vm_hwm_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


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
    gpu = ""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        gpu = f"; GPU peak {torch.cuda.max_memory_allocated() / 2 ** 20:.0f} MB"
    return [dataclasses.replace(r, peak_rss_mb=peak, detail=r.detail + gpu) for r in results]


def run_all(work: Path | None = None, training: bool = True, projection: bool = True,
            app: bool = True) -> list[BenchResult]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(work or tmp)
        results = _with_peak_rss(bench_demo_corpus, work)
        manifest = work / "demo" / "manifest.csv"
        results += _with_peak_rss(bench_feature_extraction, manifest, work, 1)
        results += _with_peak_rss(bench_feature_extraction, manifest, work, 2)
        results += _with_peak_rss(bench_predict_latency, work)
        results += _with_peak_rss(bench_locate, work)
        if app:  # measures its own server's memory, so not in a process of its own
            try:
                results += bench_app_cold_start(work)
            except RuntimeError as err:  # a broken app start must not cost the rest of the table
                results.append(BenchResult(APP_FIRST, None, "s", NO_TARGET, f"failed: {str(err).splitlines()[0]}"))
        if projection:
            for n in (10_000, 50_000, 150_000):
                results += _with_peak_rss(bench_projection, n)
        if training:
            results += _with_peak_rss(bench_demo_training, manifest, work)
            results += _with_peak_rss(bench_training, work)
    return results


def machine() -> dict[str, str | int]:
    """What the figures were measured on."""
    device = resolve_device("auto")
    return {"processor": platform.processor() or platform.machine(), "cpu_cores": os.cpu_count() or 0,
            "torch_threads": torch.get_num_threads(), "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch": torch.__version__}


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
