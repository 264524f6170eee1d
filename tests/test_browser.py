"""End to end in a real browser: `streamlit run app` on 127.0.0.1, driven by Debian's chromium via playwright.

Needs /usr/bin/chromium (`.ci/run` installs it); skipped without it, a failure when SER_REQUIRE_BROWSER=1.
"""
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.browser import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import REPO
from tests.helpers import sine, write_wav
from tests.matrix import write_failure_matrix

ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture
def chromium():
    """Headless Debian chromium (never a downloaded browser)."""
    if not CHROMIUM.exists():
        if os.environ.get("SER_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} not found (SER_REQUIRE_BROWSER=1)")
        pytest.skip(f"{CHROMIUM} not installed")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS))
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium):
    return chromium.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)


@contextlib.contextmanager
def serve_app(data: Path):
    """`streamlit run app` on a free 127.0.0.1 port over the data folder `data`; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SER_DATA_DIR": str(data), "SER_RUNS_DIR": str(data / "runs")}
    process = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app", "--server.port", str(port),
                                "--server.address", "127.0.0.1", "--server.headless", "true"],
                               cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("streamlit did not start within 60 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture
def served_app(app_data):
    with serve_app(app_data) as url:
        yield url


def test_browser_map_colour_locate_and_download(served_app, browser_page, tmp_path):
    page = browser_page
    started = time.perf_counter()
    page.goto(served_app)
    page.locator(".js-plotly-plot").first.wait_for(timeout=180_000)
    first_map_s = time.perf_counter() - started

    page.get_by_text("Colour by").wait_for()  # switch the colour to arousal
    page.locator("[data-testid='stSelectbox']").filter(has_text="Colour by").click()
    page.get_by_role("option", name="arousal", exact=True).click()
    page.locator(".colorbar").first.wait_for(timeout=60_000)  # a continuous scale replaced the cluster legend

    # the clip inspector: audio, spectrogram, chunk timeline, a chunk to play, the nearest corpus clips
    inspect = page.get_by_role("textbox", name="Inspect a clip")
    inspect.fill("nowhere.wav")
    inspect.press("Enter")
    page.get_by_text("No utterance named 'nowhere.wav'").wait_for(timeout=60_000)  # a message, not a traceback
    first = page.evaluate("() => document.querySelector('.js-plotly-plot')._fullData[0].customdata[0][0]")
    inspect.fill(first)
    inspect.press("Enter")
    page.get_by_text("Play a chunk").wait_for(timeout=60_000)
    assert page.get_by_text("Nearest corpus clips").count() == 1
    page.locator("[data-testid='stRadio'] label").nth(1).click()  # play the second chunk
    page.locator("[data-testid='stAudio']").nth(1).wait_for(timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-inspector.png"), full_page=True)

    page.get_by_role("link", name="Locate clips").click()
    clip = write_wav(tmp_path / "my clip.wav", sine(2.5, frequency_hz=180))
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio at all")
    other = write_wav(tmp_path / "elsewhere.wav", sine(2.0, frequency_hz=400))
    uploads = [{"name": "my clip.wav", "mimeType": "audio/wav", "buffer": p.read_bytes()} for p in (clip, other)]
    uploads.append({"name": "notes.wav", "mimeType": "audio/wav", "buffer": bad.read_bytes()})
    page.locator("[data-testid='stFileUploader'] input[type=file]").set_input_files(uploads)  # two of one name
    page.get_by_text("notes.wav: not a recognised audio file").wait_for(timeout=120_000)  # the bad one: an error
    page.get_by_text("located clips").first.wait_for(timeout=60_000)  # the good ones: markers on the map
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="Download the table (CSV)").click()
    located = pd.read_csv(download.value.path())
    assert sorted(located["file"]) == ["my clip.wav", "my clip.wav (2)"]  # told apart, not a traceback
    assert located["out_of_distribution"].dtype == bool and (located["nearest_distance"] > 0).all()
    page.locator("[data-testid='stAudio']").first.wait_for(timeout=30_000)  # the upload itself is playable
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-locate.png"), full_page=True)

    page.get_by_role("link", name="Export").click()
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="cluster_emotion.csv").click()
    table = Path(download.value.path()).read_text()
    assert table.startswith("source,cluster,size,share")
    print(f"first map after {first_map_s:.1f} s")


def test_browser_upload_of_the_failure_matrix(served_app, browser_page, one_hour_wav, tmp_path):
    """Every awkward upload at once, the hour-long one among them: each bad file gets its error, every
    other one is located, and the session carries on."""
    bad, good = write_failure_matrix(tmp_path / "inputs", one_hour_wav)
    bad["silent.wav"] = "silent: every sample is zero"  # the app refuses to place silence
    good.remove("silent.wav")
    page = browser_page
    page.goto(f"{served_app}/locate")
    uploader = page.locator("[data-testid='stFileUploader'] input[type=file]")
    uploader.wait_for(state="attached", timeout=180_000)
    started = time.perf_counter()
    uploader.set_input_files(sorted(str(p) for p in (tmp_path / "inputs").iterdir()))
    for name, fragment in bad.items():
        error = page.locator("[data-testid='stAlert']").filter(has_text=f"{name}: ")
        error.first.wait_for(timeout=300_000)
        assert fragment in error.first.inner_text()
    with page.expect_download(timeout=120_000) as download:
        page.get_by_role("button", name="Download the table (CSV)").click()
    located = pd.read_csv(download.value.path())
    print(f"{len(good) + len(bad)} uploads handled in {time.perf_counter() - started:.1f} s")
    assert sorted(located["file"]) == good
    assert np.isfinite(located[["arousal", "valence", "dominance", "x", "y"]].to_numpy()).all()
    page.get_by_role("link", name="Latent map").click()  # the session survived
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
