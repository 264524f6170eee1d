"""The steps of one app session in a browser, which the soak (`benchmarks.soak`) and several sessions at once
(`benchmarks.sessions`) both run: open the map, recolour, locate a clip, start a training from the Runs page; what
each step took and what failed, in a `SessionLog`. Also the inputs they share: a synthetic run's test predictions,
a small training corpus and clips to upload.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.browser import MAP, launch_chromium
from core.config import AVD

ACTIONS = ("page load", "recolour", "box selection", "locate a clip")
COLOURS = ("arousal predicted", "valence predicted", "dominance predicted", "arousal true", "valence true", "dominance true")
PRESET = "demo"  # the Runs page offers default, paper and demo: demo trains in minutes
VIEWPORT = {"width": 1400, "height": 1000}
STATUS, EXCEPTION = "[data-testid='stStatusWidget']", "[data-testid='stException']"
UPLOADER, UPLOADED = "[data-testid='stFileUploader']", "[data-testid='stFileChipName']"  # the uploads' names
LOCATED = "el => (el.__map.markers || []).filter(m => m.colour === '#000000').length"  # located clips' markers


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
