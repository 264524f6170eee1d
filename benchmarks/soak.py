"""A day of uptime, compressed (issue 33, item 4): one server kept busy for `minutes`, its memory, open file
descriptors and threads read from /proc.

Sessions open and close in turn, each a new browser context: it loads the map of a synthetic run
(`benchmarks.synthetic_run`), recolours it twice, box-selects, and locates a clip of its own on Locate clips; the
first also starts a training from the Runs page. Every `interval_s`, and after each session closes, the server
process's RSS, file descriptors (/proc/PID/fd) and threads (/proc/PID/status) are read, with its tree's RSS. Growth
is judged from the first session closed after the warm-up (the first 20 % of the time, longer where the training's
job or Streamlit's keep-alive of closed sessions needs it: `soak_rows`) to the last one; then the server idles for
`settle_s` and is read once more. Descriptors and threads are judged with no closed session held: after the warm-up
and at the end, the server idles until they expire and one more session drops them (`_purged`). Each session's
steps are `benchmarks.app_session`'s.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.app_session import (COLOURS, UPLOADER, SessionLog, add_test_predictions, goto, new_page, open_map,
                                    start_training, training_corpus, training_state, upload, upload_clips)
from benchmarks.browser import MAP, browser_unavailable, launch_chromium
from benchmarks.map import _box_select, _recolour
from benchmarks.memory import TreePeakRss, _status_kb
from benchmarks.results import NO_TARGET, BenchResult
from benchmarks.server import streamlit_server, tail, wait_until_healthy
from benchmarks.synthetic_run import build_synthetic_run

WARM_UP_SHARE = 0.2  # the first 20 % of the time fills the caches: growth is counted after it
GROWTH_PCT = 10.0  # issue 33: server memory at most 10 % above its size after the warm-up
FD_SLACK, THREAD_SLACK = 8, 4  # the session that dropped the others is itself held (its websocket, its script thread)
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
                start, closed, trained_s, purged = sampler.mark(), [], None, []
                while time.perf_counter() - sampler.t0 < minutes * 60:
                    logs.append(_session(browser, url, built.run_id, len(logs), clips, manifest if not logs else None,
                                         timeout_s))
                    closed.append(sampler.mark())
                    if trained_s is None and training_state(built.runs_dir, built.run_id) == "trained and mapped":
                        trained_s = closed[-1].t_s
                    if not purged and closed[-1].t_s >= max(WARM_UP_SHARE * minutes * 60, trained_s or np.inf):
                        purged.append(_purged(browser, url, sampler, timeout_s, SESSION_TTL_S + 10))
                time.sleep(settle_s)
                idle = sampler.mark()
                purged.append(_purged(browser, url, sampler, timeout_s))
            finally:
                sampler.stop()
        except RuntimeError as err:
            raise RuntimeError(f"{err}\n{tail(log)}") from err
        finally:
            browser.close()
    return soak_rows(prefix, sampler.samples, start, closed, idle, logs, settle_s, trained_s,
                     tuple(purged) if len(purged) == 2 else None)


def _purged(browser, url: str, sampler: ProcSampler, timeout_s: float, idle_s: float = 0.0) -> ProcSample:
    """What the server holds for itself: after `idle_s` (the closed sessions expire), one session opens the map and
    closes, which makes Streamlit drop the expired ones; /proc is read 5 s later."""
    time.sleep(idle_s)
    page = new_page(browser, timeout_s)
    try:
        page.goto(url)
        page.locator(MAP).wait_for()
    finally:
        page.context.close()
    time.sleep(5.0)
    return sampler.mark()


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
              logs: list[SessionLog], settle_s: float, trained_s: float | None,
              purged: tuple[ProcSample, ProcSample] | None = None) -> list[BenchResult]:
    """The soak's rows from what /proc showed: `start` (the server up), `closed` (after each session closed), `idle`
    (after `settle_s` idle) and every sample; `logs`: the sessions' steps; `trained_s`: when the training's job had
    trained and mapped its run (None: not by the end). The warm-up lasts the first 20 % of the time, or longer where
    needed: until the job's map is fitted (in the server: UMAP's code compiled, a fit; a step of its own, not a leak),
    and until the sessions the server holds are as many as they will be (it keeps each closed one for `SESSION_TTL_S`).
    `purged`: (after the warm-up, at the end) with no closed session held (`_purged`): where given, memory, descriptors
    and threads are judged from them, since what the sessions held take depends on how fast the last ones went."""
    load_s = closed[-1].t_s if closed else 0.0
    warm_up_s = max(WARM_UP_SHARE * load_s, trained_s or 0.0, closed[0].t_s + SESSION_TTL_S if closed else 0.0)
    warm = next((s for s in closed if s.t_s >= warm_up_s), closed[-1] if closed else start)
    end = closed[-1] if closed else start
    during = [s for s in samples if s.t_s <= load_s] or [start, *closed]
    when = (f"from the server's start ({start.t_s:.0f} s) / after the warm-up (session closed at {warm.t_s:.0f} s) / "
            f"the end of the load ({end.t_s:.0f} s) / {settle_s:.0f} s idle after it")
    before, after = purged or (warm, end)
    dropped = (f"; with the closed sessions dropped ({before.t_s:.0f} s / {after.t_s:.0f} s): judged from these"
               if purged else "")
    growth = 100 * (after.rss_mb - before.rss_mb) / before.rss_mb
    rows = [BenchResult(f"{prefix}: server memory growth after the warm-up", growth, "%", f"<= {GROWTH_PCT:g} %", (
        f"server RSS {start.rss_mb:.0f} / {warm.rss_mb:.0f} / {end.rss_mb:.0f} / {idle.rss_mb:.0f} MB {when}"
        + (f"; {before.rss_mb:.0f} / {after.rss_mb:.0f} MB{dropped}" if purged else "") + f"; most "
        f"{max(s.rss_mb for s in during):.0f} MB; its process tree {warm.tree_mb:.0f} / {end.tree_mb:.0f} MB after the "
        f"warm-up / at the end, most {max(s.tree_mb for s in during):.0f} MB, {idle.processes} process(es) when idle"),
        met=growth <= GROWTH_PCT)]
    for what, unit, slack, read in (("open file descriptors", "fds", FD_SLACK, lambda s: s.fds),
                                    ("threads", "threads", THREAD_SLACK, lambda s: s.threads)):
        detail = f"{read(start)} / {read(warm)} / {read(end)} / {read(idle)} {when}; most {max(read(s) for s in during)}"
        if purged:
            detail += f"; {read(before)} / {read(after)}{dropped}"
        rows.append(BenchResult(f"{prefix}: server {what} at the end", read(after), unit,
                                f"<= {read(before)} after the warm-up + {slack}", detail,
                                met=read(after) <= read(before) + slack))
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
