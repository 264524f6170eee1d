"""A day of uptime, compressed (issue 33, item 4): one server kept busy for `minutes`, its memory, open file
descriptors and threads read from /proc.

Sessions open and close in turn, each a new browser context: it loads the map of a synthetic run
(`benchmarks.synthetic_run`), recolours it twice, box-selects, and locates a clip of its own on Locate clips; the
first also starts a training from the Runs page. Every `interval_s`, and after each session closes, the server
process's RSS, file descriptors (/proc/PID/fd) and threads (/proc/PID/status) are read, with its tree's RSS. Growth
is judged from the first session closed after the warm-up (the first 20 % of the time, longer where the training's
job or Streamlit's keep-alive of closed sessions needs it: `soak_rows`) to the last one; then the server idles for
`settle_s` and is read once more.

Below the soak: the steps of one app session in a browser (open the map, locate a clip, start a training), which
`benchmarks.sessions` also runs, several sessions at once.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.browser import MAP, browser_unavailable, launch_chromium
from benchmarks.map import _box_select, _recolour
from benchmarks.memory import TreePeakRss, _status_kb
from benchmarks.results import NO_TARGET, BenchResult
from benchmarks.server import streamlit_server, tail, wait_until_healthy
from benchmarks.synthetic_run import build_synthetic_run
from core.config import AVD

ACTIONS = ("page load", "recolour", "box selection", "locate a clip")
COLOURS = ("arousal predicted", "valence predicted", "dominance predicted", "arousal true", "valence true", "dominance true")
PRESET = "demo"  # the Runs page offers default, paper and demo: demo trains in minutes
VIEWPORT = {"width": 1400, "height": 1000}
STATUS, EXCEPTION = "[data-testid='stStatusWidget']", "[data-testid='stException']"
UPLOADER, UPLOADED = "[data-testid='stFileUploader']", "[data-testid='stFileChipName']"  # the uploads' names
LOCATED = "el => (el.__map.markers || []).filter(m => m.colour === '#000000').length"  # located clips' markers
WARM_UP_SHARE = 0.2  # the first 20 % of the time fills the caches: growth is counted after it
GROWTH_PCT = 10.0  # issue 33: server memory at most 10 % above its size after the warm-up
FD_SLACK, THREAD_SLACK = 8, 4  # a session or two still held when counted (its websocket, its script thread)
# Streamlit's server.disconnectedSessionTTL: a closed session is kept this long, and then until a session next
# connects (its store drops expired sessions when it is used): an idle server keeps them, ~3 descriptors each
SESSION_TTL_S = 120


@dataclass(frozen=True)
class ProcSample:
    """The server as /proc showed it."""
    t_s: float  # since the load began
    rss_mb: float  # the server process's resident memory
    tree_mb: float  # its process tree's (a training's process included)
    fds: int  # the server process's open file descriptors
    threads: int
    processes: int  # in its tree


class ProcSampler(TreePeakRss):
    """`TreePeakRss` that also keeps a `ProcSample` every `interval_s`, and one on each `mark()`."""

    def __init__(self, pid: int, interval_s: float):
        self.t0, self.samples = time.perf_counter(), []
        super().__init__(pid, interval_s)

    def mark(self) -> ProcSample:
        sample = self.read()
        self.samples.append(sample)
        return sample

    def read(self) -> ProcSample:
        tree = self._tree()
        rss_kb = [_status_kb(pid, "VmRSS:") or 0 for pid in tree]
        try:
            fds = len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:  # the server has gone
            fds = 0
        return ProcSample(time.perf_counter() - self.t0, rss_kb[0] / 1024, sum(rss_kb) / 1024, fds,
                          _status_kb(self.pid, "Threads:") or 0, len(tree))

    def _sample(self) -> None:
        super()._sample()
        self.samples.append(self.read())


def bench_soak(work: Path, minutes: float = 30.0, n_points: int = 20_000, interval_s: float = 5.0,
               settle_s: float = SESSION_TTL_S + 30, timeout_s: float = 300) -> list[BenchResult]:
    """Sessions in turn for `minutes`, then `settle_s` idle (module docstring).

    Returns:
        The server's memory growth after the warm-up (%), its file descriptors and threads at the end against after
        the warm-up, the sessions it served, and the app's errors. All "skipped: <why>" without chromium or playwright.
    Raises:
        RuntimeError: the server exited or did not answer within `timeout_s`.
    """
    prefix = f"soak, {minutes:g} min at {n_points:,} points"
    if reason := browser_unavailable():
        return [BenchResult(f"{prefix}: {what}", None, "", "", f"skipped: {reason}")
                for what in ("memory growth", "file descriptors", "threads", "sessions", "app errors")]
    folder = Path(work) / f"soak-{n_points}"
    built = build_synthetic_run(folder, n_points)
    add_test_predictions(built.runs_dir, built.run_id)
    manifest = training_corpus(folder / "training-corpus")
    clips = [data for _, data in upload_clips(manifest, 8, "soak")]
    env = {**os.environ, "SER_RUNS_DIR": str(built.runs_dir), "SER_DATA_DIR": str(folder)}
    log = folder / "streamlit.log"
    logs: list[SessionLog] = []
    from playwright.sync_api import sync_playwright
    t0 = time.perf_counter()
    with streamlit_server(env, log) as (server, url), sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            wait_until_healthy(url, server, t0 + timeout_s, log)
            sampler = ProcSampler(server.pid, interval_s)
            try:
                start, closed, trained_s = sampler.mark(), [], None
                while time.perf_counter() - sampler.t0 < minutes * 60:
                    logs.append(_session(browser, url, built.run_id, len(logs), clips, manifest if not logs else None,
                                         timeout_s))
                    closed.append(sampler.mark())
                    if trained_s is None and training_state(built.runs_dir, built.run_id) == "trained and mapped":
                        trained_s = closed[-1].t_s
                time.sleep(settle_s)
                idle = sampler.mark()
            finally:
                sampler.stop()
        except RuntimeError as err:
            raise RuntimeError(f"{err}\n{tail(log)}") from err
        finally:
            browser.close()
    return soak_rows(prefix, sampler.samples, start, closed, idle, logs, settle_s, trained_s)


def _session(browser, url: str, run_id: str, index: int, clips: list[bytes], manifest: Path | None,
             timeout_s: float) -> SessionLog:
    """One session from opening to closing (module docstring); what fails is in its log, the soak goes on."""
    log = SessionLog(f"session {index + 1}")
    page = new_page(browser, timeout_s)
    try:
        log.attempt(page, "page load", lambda: open_map(page, url, run_id, log))
        if manifest is not None:
            start_training(page, manifest, log)
            goto(page, "Latent map", page.locator(MAP), log)
        for colour in (COLOURS[(2 * index) % len(COLOURS)], COLOURS[(2 * index + 1) % len(COLOURS)]):
            log.attempt(page, "recolour", lambda: _recolour(page, colour))
        log.attempt(page, "box selection", lambda: _box_select(page))
        goto(page, "Locate clips", page.locator(UPLOADER), log)
        log.attempt(page, "locate a clip", lambda: upload(page, f"soak-{index + 1}.wav", clips[index % len(clips)],
                                                          log, timeout_s))
    except Exception as err:  # a session that breaks is reported; the next one opens as usual
        log.error(f"stopped: {str(err).splitlines()[0] if str(err) else type(err).__name__}")
    finally:
        page.context.close()
    return log


def soak_rows(prefix: str, samples: list[ProcSample], start: ProcSample, closed: list[ProcSample], idle: ProcSample,
              logs: list[SessionLog], settle_s: float, trained_s: float | None) -> list[BenchResult]:
    """The soak's rows from what /proc showed: `start` (the server up), `closed` (after each session closed), `idle`
    (after `settle_s` idle) and every sample; `logs`: the sessions' steps; `trained_s`: when the training's job had
    trained and mapped its run (None: not by the end). The warm-up lasts the first 20 % of the time, or longer where
    needed: until the job's map is fitted (in the server: UMAP's code compiled, a fit; a step of its own, not a leak),
    and until the sessions the server holds are as many as they will be (it keeps each closed one for `SESSION_TTL_S`)."""
    load_s = closed[-1].t_s if closed else 0.0
    warm_up_s = max(WARM_UP_SHARE * load_s, trained_s or 0.0, closed[0].t_s + SESSION_TTL_S if closed else 0.0)
    warm = next((s for s in closed if s.t_s >= warm_up_s), closed[-1] if closed else start)
    end = closed[-1] if closed else start
    during = [s for s in samples if s.t_s <= load_s] or [start, *closed]
    when = (f"from the server's start ({start.t_s:.0f} s) / after the warm-up (session closed at {warm.t_s:.0f} s) / "
            f"the end of the load ({end.t_s:.0f} s) / {settle_s:.0f} s idle after it")
    growth = 100 * (end.rss_mb - warm.rss_mb) / warm.rss_mb
    rows = [BenchResult(f"{prefix}: server memory growth after the warm-up", growth, "%", f"<= {GROWTH_PCT:g} %", (
        f"server RSS {start.rss_mb:.0f} / {warm.rss_mb:.0f} / {end.rss_mb:.0f} / {idle.rss_mb:.0f} MB {when}; most "
        f"{max(s.rss_mb for s in during):.0f} MB; its process tree {warm.tree_mb:.0f} / {end.tree_mb:.0f} MB after the "
        f"warm-up / at the end, most {max(s.tree_mb for s in during):.0f} MB, {idle.processes} process(es) when idle"),
        met=growth <= GROWTH_PCT)]
    for what, unit, slack, read in (("open file descriptors", "fds", FD_SLACK, lambda s: s.fds),
                                    ("threads", "threads", THREAD_SLACK, lambda s: s.threads)):
        rows.append(BenchResult(f"{prefix}: server {what} at the end", read(end), unit,
                                f"<= {read(warm)} after the warm-up + {slack}", (
                                    f"{read(start)} / {read(warm)} / {read(end)} / {read(idle)} {when}; most "
                                    f"{max(read(s) for s in during)}"), met=read(end) <= read(warm) + slack))
    steps = {action: [t for log in logs for t in log.seconds[action]] for action in logs[0].seconds} if logs else {}
    quarter = max(1, len(logs) // 4)
    drift = "; ".join(f"{action} median {_median(logs[:quarter], action):.2f} s in the first quarter of the sessions, "
                      f"{_median(logs[-quarter:], action):.2f} s in the last" for action in ("recolour", "box selection"))
    training = f"trained and mapped by {trained_s:.0f} s" if trained_s is not None else "not trained and mapped by the end"
    rows.append(BenchResult(f"{prefix}: sessions opened and closed", len(logs), "sessions", NO_TARGET, (
        "steps: " + ", ".join(f"{action} {len(times)}" for action, times in steps.items())
        + f"; {drift}; the training from the Runs page (started by the first session): {training}")))
    errors = [f"{log.name}: {error}" for log in logs for error in log.errors]
    rows.append(BenchResult(f"{prefix}: app errors and failed steps", len(errors), "errors", "0",
                            "; ".join(errors[:10]) + (f"; and {len(errors) - 10} more" if len(errors) > 10 else "")
                            or "none", met=not errors))
    return rows


def _median(logs: list[SessionLog], action: str) -> float:
    times = [t for log in logs for t in log.seconds[action]]
    return float(np.median(times)) if times else float("nan")


# The steps of one session in a browser, shared with `benchmarks.sessions`.


@dataclass
class SessionLog:
    """What one browser session did and saw."""
    name: str
    seconds: dict[str, list[float]] = field(default_factory=lambda: {action: [] for action in ACTIONS})
    errors: list[str] = field(default_factory=list)  # exceptions the app showed, steps that failed
    leaks: list[str] = field(default_factory=list)  # what the page showed that was not this session's own
    colour: str | None = None
    split: str | None = None
    selection: int | None = None  # utterances in its box selection
    uploads: list[str] = field(default_factory=list)
    first_locate_s: float | None = None  # its first upload (untimed: on a fresh server it loads the locator)
    checked: bool = False  # its isolation checks ran to the end

    def attempt(self, page, action: str, step) -> float | None:
        """`step()` (its seconds) recorded under `action`; a step that fails is counted and the session goes on."""
        try:
            seconds = step()
        except Exception as err:  # a timeout or an app exception: what the page shows is reported, not raised
            self.error(f"{action}: {shown_error(page) or str(err).splitlines()[0]}")
            recover(page)
            return None
        if error := shown_error(page):
            self.error(f"{action}: {error}")
        self.seconds[action].append(seconds)
        return seconds

    def error(self, text: str) -> None:
        if text not in self.errors[-1:]:  # an exception stays on the page until the next rerun: once
            self.errors.append(text)


def add_test_predictions(runs_dir: Path, run_id: str, seed: int = 0) -> None:
    """Store test predictions (labels plus noise) with the synthetic run, as a trained run stores its own: without
    them the Runs page predicts the test split on its first visit (385 s for 15 000 clips on 2 cores, one session)."""
    from core import RunStore
    store = RunStore(runs_dir)
    run = store.load(run_id)
    test = run.corpus().query("split == 'test'")
    rng, columns = np.random.default_rng(seed), test[["split", "speaker"]].copy()
    for attribute in AVD:
        columns[attribute] = test[attribute]
        columns[f"{attribute}_predicted"] = np.clip(test[attribute] + rng.normal(0, 0.8, len(test)), 1, 7)
    store.add_test_predictions(run, columns)


def training_corpus(root: Path) -> Path:
    """A small demo corpus (100 clips) that the Runs page trains on, and whose clips are uploaded."""
    from core.data.synthetic import make_demo_corpus
    return make_demo_corpus(root, n_train=40, n_dev=10, n_test=10, n_unlabelled=40)


def upload_clips(manifest: Path, n: int, prefix: str) -> list[tuple[str, bytes]]:
    """`n` clips of the corpus's speech as (name, wav bytes), named `prefix-<i>.wav`."""
    audio = sorted((manifest.parent / "audio").glob("*.wav"))
    return [(f"{prefix}-{i}.wav", audio[-1 - i % len(audio)].read_bytes()) for i in range(n)]


def training_state(runs_dir: Path, synthetic: str) -> str:
    """How far the training started from the Runs page got, from its run folder: its epochs, then its map (the
    job's last step, in the server)."""
    runs = [d for d in runs_dir.iterdir() if d.is_dir() and d.name != synthetic]
    if not runs:
        return "no run folder written"
    if any(runs[0].glob("analysis/*/projections/*.npy")):
        return "trained and mapped"
    epochs = len((runs[0] / "history.jsonl").read_text().splitlines()) if (runs[0] / "history.jsonl").exists() else 0
    return "trained, its map not fitted yet" if (runs[0] / "COMPLETE").exists() else f"{epochs} epochs done"


@contextlib.contextmanager
def browser_page(timeout_s: float):
    """A page in a context of its own, of a chromium of this thread's own playwright."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            yield new_page(browser, timeout_s)
        finally:
            browser.close()


def new_page(browser, timeout_s: float):
    """A page in a new browser context: a Streamlit session of its own."""
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.set_default_timeout(timeout_s * 1000)
    return page


def open_map(page, url: str, run_id: str, log: SessionLog) -> float:
    """Open the app until the map shows; seconds from the request. Then pick `run_id` in the sidebar if another
    run is picked (a run trained meanwhile is the newest: a new session starts on it)."""
    t = time.perf_counter()
    page.goto(url)
    wait_or_recover(page, page.locator(MAP), log, "page load")
    seconds = time.perf_counter() - t
    run = page.get_by_role("combobox", name="Run", exact=True)
    if run.input_value() != run_id:
        run.click()
        page.get_by_role("option", name=run_id, exact=True).click()
        wait_idle(page)
        page.locator(MAP).wait_for()
    return seconds


def goto(page, link: str, ready, log: SessionLog) -> None:
    """Follow the sidebar's `link` until `ready` shows."""
    page.get_by_role("link", name=link, exact=True).click()
    wait_or_recover(page, ready, log, link)


def wait_or_recover(page, ready, log: SessionLog, what: str, tries: int = 3) -> None:
    """Wait for `ready`; where the app shows an exception instead, report it and rerun the page (up to `tries`)."""
    for _ in range(tries):
        ready.or_(page.locator(EXCEPTION)).first.wait_for()
        if not page.locator(EXCEPTION).count():
            break
        log.error(f"{what}: {shown_error(page)}")
        page.wait_for_timeout(3000)
        rerun(page)
    ready.first.wait_for()


def upload(page, name: str, data: bytes, log: SessionLog, timeout_s: float) -> float:
    """Seconds from handing `name` to the Locate page's uploader until its marker is on the map (or its error)."""
    t = time.perf_counter()
    page.locator(f"{UPLOADER} input[type=file]").set_input_files([{"name": name, "mimeType": "audio/wav", "buffer": data}])
    log.uploads.append(name)
    located = lambda: page.locator(".latent-map").evaluate(LOCATED) >= len(log.uploads)  # noqa: E731
    poll(lambda: located() or page.get_by_text(f"{name}: ").count(), timeout_s)
    return time.perf_counter() - t


def start_training(page, manifest: Path, log: SessionLog) -> None:
    """Start a `PRESET` training of `manifest` from the Runs page's form, until the page names the job."""
    goto(page, "Runs", page.get_by_role("button", name="Train in the background"), log)
    page.get_by_label("Corpus (manifest CSV, MSP-Podcast folder or folder of clips)").fill(str(manifest))
    preset = page.get_by_role("combobox", name="Preset")
    preset.click()
    preset.press_sequentially(PRESET)
    preset.press("Enter")
    page.get_by_role("button", name="Train in the background").click()
    page.get_by_text(f"{PRESET} on {manifest}", exact=True).wait_for()


def rerun(page) -> None:
    """Rerun the page's script in its session (Streamlit's "r" shortcut), until it is idle again."""
    page.locator("body").press("r")
    with contextlib.suppress(Exception):  # a rerun quicker than the check leaves no running status to see
        page.locator(STATUS).wait_for(timeout=5000)
    wait_idle(page)


def wait_idle(page) -> None:
    """Until the app shows no running status (after a moment: a rerun just asked for shows it a little later)."""
    page.wait_for_timeout(300)
    page.locator(STATUS).wait_for(state="detached")


def shown_error(page) -> str | None:
    """The first line of the first exception the page shows, if any."""
    error = page.locator(EXCEPTION)
    return error.first.inner_text().strip().splitlines()[0] if error.count() else None


def recover(page) -> None:
    """After a failed step: close any open list; where an exception shows, rerun the page."""
    with contextlib.suppress(Exception):  # the page may be gone or still busy: the next step says so
        page.keyboard.press("Escape")
        if page.locator(EXCEPTION).count():
            rerun(page)
        wait_idle(page)


def poll(condition, timeout_s: float, interval_s: float = 0.1) -> None:
    """Until `condition()` holds (the map lives in a component's shadow root: page scripts cannot wait for it)."""
    deadline = time.perf_counter() + timeout_s
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"not there within {timeout_s:.0f} s")
        time.sleep(interval_s)
