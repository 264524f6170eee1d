"""End to end in a real browser: `streamlit run app` on 127.0.0.1, driven by Debian's chromium via playwright.

Needs /usr/bin/chromium (`.ci/run` installs it); skipped without it, a failure when SER_REQUIRE_BROWSER=1.
"""
import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.browser import CHROMIUM, CHROMIUM_ARGS, MAP
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
def serve_app(data: Path, processes: list | None = None, runs: Path | None = None):
    """`streamlit run app` on a free 127.0.0.1 port over the data folder `data` and the run store `runs` (default:
    `data`/runs); yields its URL (and appends the server's Popen to `processes`, for a test that kills it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SER_DATA_DIR": str(data), "SER_RUNS_DIR": str(runs or data / "runs")}
    process = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app", "--server.port", str(port),
                                "--server.address", "127.0.0.1", "--server.headless", "true"],
                               cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    if processes is not None:
        processes.append(process)
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


def _wait_for(condition, timeout_s: float = 60.0) -> None:
    """Poll `condition` (the map lives in a component's shadow root: locators reach it, page scripts do not)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the map did not get there in time"
        time.sleep(0.2)


def _box_select(page, canvas, tries: int = 2) -> None:
    """Drag a box over the whole map once the app is idle, until the statistics of the selection show.

    A drag while the page reruns (the settings changed just before) can land on a map being redrawn, or
    where the map was before the layout moved: the drag starts from the map's box as it is now."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    for attempt in range(tries):
        _wait_for(lambda: not page.locator('[data-testid="stStatusWidget"]').count())
        box = canvas.bounding_box()
        page.mouse.move(box["x"] + 5, box["y"] + 40)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] - 5, box["y"] + box["height"] - 5, steps=4)
        page.mouse.up()
        try:
            page.get_by_text("Selection:").first.wait_for(timeout=30_000)
            return
        except PlaywrightTimeout:
            if attempt == tries - 1:
                raise


# how many points the map draws under its legend and under its buttons, in the view it shows
POINTS_COVERED = """el => { const m = el.__map, v = m.view, g = m.legend, bar = m.bar.offsetTop + m.bar.offsetHeight;
  let legend = 0, buttons = 0;
  for (let i = 0; i < m.n; i++) {
    const px = ((m.x[i] - v.cx) / v.hw + 1) * m.canvas.width / 2, py = (1 - (m.y[i] - v.cy) / v.hh) * m.canvas.height / 2;
    if (px >= g.offsetLeft && px <= g.offsetLeft + g.offsetWidth && py >= g.offsetTop && py <= g.offsetTop + g.offsetHeight) legend++;
    if (py <= bar) buttons++;
  }
  return [legend, buttons]; }"""
# the bottom of the map's buttons, the stars' centres (pixels from the map's top) and the marker labels' boxes
MARKERS = """el => { const m = el.__map, v = m.view;
  return {bar: m.bar.offsetTop + m.bar.offsetHeight, boxes: m.markerBoxes,
          stars: m.markers.map(mk => (1 - (mk.y - v.cy) / v.hh) * m.canvas.height / 2)}; }"""
TOPMOST_FILE = """el => { const m = el.__map; let top = 0;
  for (let i = 1; i < m.n; i++) if (m.y[i] > m.y[top]) top = i;
  return m.table.getChild("h0").get(top); }"""


def test_browser_map_colour_locate_and_download(served_app, browser_page, tmp_path):
    page = browser_page
    external = []  # the app asks no other host for anything (no font server, no CDN)
    page.on("request", lambda request: None if request.url.startswith(("http://127.0.0.1", "data:", "blob:"))
            else external.append(request.url))
    started = time.perf_counter()
    page.goto(served_app)
    page.locator(MAP).wait_for(timeout=180_000)
    first_map_s = time.perf_counter() - started
    # issue 30: the fitted view draws no point under the legend or the buttons
    _wait_for(lambda: page.locator(".latent-map").get_attribute("data-drawn") not in (None, "0"))
    assert page.locator(".latent-map").evaluate(POINTS_COVERED) == [0, 0]

    # zoom in with the wheel, recolour by arousal: the view survives the recolour, the legend becomes a colour bar
    canvas = page.locator(".latent-map canvas").first
    box = canvas.bounding_box()
    status = page.locator(".latent-map span").filter(has_text="points in view")
    whole = status.inner_text()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -600)
    page.wait_for_function("t => !document.body.innerText.includes(t)", arg=whole, timeout=10_000)  # fewer in view
    zoomed = status.inner_text()
    page.locator("[data-testid='stSelectbox']").filter(has_text="Colour by").click()
    page.get_by_role("option", name="arousal true", exact=True).click()
    page.locator(".latent-map .legend-title").filter(has_text=re.compile("^arousal true$")).wait_for(timeout=60_000)
    assert status.inner_text() == zoomed
    page.locator(".latent-map").get_by_role("button", name="Reset view").click()
    assert page.locator(".latent-map").evaluate(POINTS_COVERED) == [0, 0]  # beside or under the colour bar too

    # density contours; with fewer points allowed than the view holds, the density instead, points on zoom
    latent_map = page.locator(".latent-map")
    page.get_by_text("Density contours").click()
    _wait_for(lambda: int(latent_map.get_attribute("data-contours") or 0) > 0)
    assert "contours enclose 30, 60, 90 % of them" in status.inner_text()
    budget = page.get_by_role("spinbutton", name="Points drawn up to")
    budget.fill("20")
    budget.press("Enter")
    _wait_for(lambda: latent_map.get_attribute("data-drawn") == "density")
    assert "density shown, zoom in to see points" in status.inner_text()
    for _ in range(12):  # the wheel zooms in until the view holds at most 20 points: they are drawn again
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.wheel(0, -400)
        if latent_map.get_attribute("data-drawn") != "density":
            break
    assert 0 <= int(latent_map.get_attribute("data-drawn")) <= 20
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-density.png"), full_page=True)
    budget.fill("200000")
    budget.press("Enter")
    page.get_by_text("Density contours").click()
    _wait_for(lambda: latent_map.get_attribute("data-contours") == "0")
    latent_map.get_by_role("button", name="Reset view").click()

    # a box selection: the statistics of the selection against all points
    _box_select(page, canvas)

    # a search with no match is a message; an unknown name typed in the inspector too
    search = page.get_by_role("textbox", name="Search")
    search.fill("no-such-speaker")
    search.press("Enter")
    page.get_by_text("No file or speaker contains 'no-such-speaker'").wait_for(timeout=60_000)
    search.fill("")
    search.press("Enter")
    inspect = page.get_by_role("textbox", name="Inspect a clip")
    inspect.fill("nowhere.wav")
    inspect.press("Enter")
    page.get_by_text("No utterance named 'nowhere.wav'").wait_for(timeout=60_000)  # a message, not a traceback
    key = inspect.get_attribute("placeholder").rsplit("e.g. ", 1)[1]  # a stored key, "audio/demo_0003.wav"
    inspect.fill(key.rsplit("/", 1)[1])  # its file name alone opens it (issue 29)
    inspect.press("Enter")
    page.get_by_role("heading", name=f"Clip {key}").wait_for(timeout=60_000)
    # issue 30: the stars of a clip at the map's top edge, and their labels, stay below the map's buttons
    stars = lambda: page.locator(".latent-map").evaluate("el => el.__map.markers.length")  # noqa: E731
    inspect.fill("")
    inspect.press("Enter")
    _wait_for(lambda: stars() == 0)
    top = page.locator(".latent-map").evaluate(TOPMOST_FILE)
    inspect.fill(top)
    inspect.press("Enter")
    page.get_by_role("heading", name=f"Clip {top}").wait_for(timeout=60_000)
    _wait_for(lambda: stars() > 0)
    markers = page.locator(".latent-map").evaluate(MARKERS)
    assert all(y - 10 >= markers["bar"] for y in markers["stars"]), markers  # a star reaches 10 px above its centre
    assert all(b["y"] >= markers["bar"] for b in markers["boxes"]), markers
    inspect.fill("")
    inspect.press("Enter")

    # click a point: the clip inspector opens on it (audio, spectrogram, chunk timeline, chunks, neighbours)
    x, y = page.locator(".latent-map").evaluate(
        "el => { const m = el.__map, v = m.view; return [((m.x[0] - v.cx) / v.hw + 1) * m.canvas.width / 2, "
        "(1 - (m.y[0] - v.cy) / v.hh) * m.canvas.height / 2]; }")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()  # messages above the map moved it, and the page scrolled
    tip = page.locator(".latent-map > div").filter(has_text="file: ")  # hover: the point's fields, text and numbers
    for dx in (0, 1):  # a second move: the first may come before the map has its mouse listeners
        page.mouse.move(box["x"] + x + dx, box["y"] + y)
        page.wait_for_timeout(300)
    tip.wait_for(timeout=10_000)
    hovered = tip.inner_text()
    assert re.search(r"^cluster: \d+$", hovered, re.M), hovered
    assert re.search(r"^split: (train|dev|test\d?|unlabelled)$", hovered, re.M), hovered
    assert re.search(r"^arousal predicted: -?\d+\.\d\d$", hovered, re.M), hovered
    page.mouse.click(box["x"] + x, box["y"] + y)
    page.get_by_role("heading", name="Clip ").first.wait_for(timeout=60_000)
    assert inspect.input_value() in page.get_by_role("heading", name="Clip ").first.inner_text()
    assert f"file: {inspect.input_value()}" in hovered  # the point hovered is the clip the click opened
    page.get_by_text("Play a chunk").wait_for(timeout=60_000)
    assert page.get_by_text("Nearest corpus clips").count() == 1
    _play_chunk(page, 1)  # the second chunk: exactly its span (issue 29: whole seconds around it were played)
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
    page.get_by_role("heading", name="my clip.wav").first.wait_for(timeout=60_000)  # the good ones: located, with chunks
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="Download the table (CSV)").click()
    located = pd.read_csv(download.value.path())
    assert sorted(located["file"]) == ["my clip.wav", "my clip.wav (2)"]  # told apart, not a traceback
    assert located["out_of_distribution"].dtype == bool and (located["nearest_distance"] > 0).all()
    page.locator("[data-testid='stAudio']").first.wait_for(timeout=30_000)  # the upload itself is playable
    # the located clips' labels and their chunks' are written where they cover no other (issue 29: two uploads
    # landing close together wrote their names over each other)
    page.locator(".latent-map").first.screenshot(path=str(ARTIFACTS / "browser-locate-map.png"))
    boxes = page.locator(".latent-map").first.evaluate("m => m.__map.markerBoxes")
    assert any(b["label"].startswith("1 · my clip.wav") for b in boxes), boxes
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"] or a["y"] + a["h"] <= b["y"] \
                or b["y"] + b["h"] <= a["y"], (a, b)
    _play_chunk(page, 1)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-locate.png"), full_page=True)

    page.get_by_role("link", name="Export").click()
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="cluster_emotion.csv").click()
    table = Path(download.value.path()).read_text()
    assert table.startswith("source,cluster,size,share")
    page.screenshot(path=str(ARTIFACTS / "browser-export.png"), full_page=True)
    page.get_by_role("link", name="Clusters × emotion").click()  # the other pages, pictured for the record
    page.get_by_role("heading", name="Prototype clips (nearest to each centroid)").wait_for(timeout=120_000)
    page.screenshot(path=str(ARTIFACTS / "browser-clusters.png"), full_page=True)
    page.get_by_role("link", name="Runs", exact=True).click()
    page.get_by_role("heading", name="Train a new run").wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "browser-runs.png"), full_page=True)

    # compare with the ablation partner: a box on the first map greys the other map's unselected utterances
    page.get_by_role("link", name="Compare runs").click()
    page.get_by_text("Contingency").wait_for(timeout=120_000)
    first_map = page.locator(".latent-map").first
    first_map.locator("canvas").first.scroll_into_view_if_needed()
    box = first_map.locator("canvas").first.bounding_box()
    page.mouse.move(box["x"] + 5, box["y"] + 40)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] - 5, steps=4)
    page.mouse.up()
    page.get_by_text("utterances selected on the other map").wait_for(timeout=60_000)
    for latent in page.locator(".latent-map").all():  # the clusters' words lie whole inside their map, off its legend
        outer, legend = latent.bounding_box(), latent.locator(".legend-title").locator("..").bounding_box()
        for label in latent.locator(".cluster-label").all():
            inner = label.bounding_box()
            assert inner["y"] >= legend["y"] + legend["height"] or inner["x"] + inner["width"] <= legend["x"] \
                or inner["y"] + inner["height"] <= legend["y"], label.inner_text()
            for start, size in (("x", "width"), ("y", "height")):
                assert outer[start] <= inner[start] <= inner[start] + inner[size] <= outer[start] + outer[size] + 1, \
                    label.inner_text()
    page.screenshot(path=str(ARTIFACTS / "browser-compare.png"), full_page=True)
    assert not external, external
    print(f"first map after {first_map_s:.1f} s")


# app/scatter.js mounted on its own, as Streamlit mounts it, over a grid of points filling the unit square: every
# part of the fitted view holds points, so any that the legend or the buttons cover are counted
MOUNT = """async ([source, legend, markers, kind]) => {
  const module = await import(URL.createObjectURL(new Blob([source], {type: "text/javascript"})));
  const n = 40, xs = [], ys = [];
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) { xs.push(i / (n - 1)); ys.push(j / (n - 1)); }
  const columns = {x: Float32Array.from(xs), y: Float32Array.from(ys), rgba: new Uint32Array(n * n).fill(0xff808080),
                   state: new Uint8Array(n * n).fill(1)};
  const points = {getChild: (name) => ({toArray: () => columns[name], get: (i) => columns[name][i]})};
  let host = document.getElementById("host");
  if (!host) { host = document.createElement("div"); host.id = "host"; host.style.width = "900px"; document.body.appendChild(host); }
  module.default({parentElement: host, setStateValue: () => {}, setTriggerValue: () => {}, data: {
    points, key: "grid", hover: [], legend, max_points: 1e6, height: 420, kind, size: 4, opacity: 0.8, density: false,
    contours: false, markers, labels: []}});
}"""
CLUSTERS = {"title": "cluster", "items": [[f"{k}", "#1f77b4"] for k in range(12)], "stops": [], "low": "", "high": "",
            "notes": []}
COLOUR_BAR = {"title": "arousal predicted", "items": [["outside the filters or the selection", "#bebebe"]],
              "stops": ["#440154", "#fde725"], "low": "1", "high": "7", "notes": ["3 outside 1–7, drawn at the ends"]}


def test_browser_map_keeps_points_off_its_legend_and_stars_below_its_buttons(chromium):
    """Issue 30: the live map drew points under its legend, and the stars of a clip at the map's top edge (and their
    labels) over its buttons. The fitted view leaves room for both: a tall legend beside it, a short one above it."""
    page = chromium.new_page(viewport={"width": 1000, "height": 700})
    source = (REPO / "app" / "scatter.js").read_text()
    stars = [{"x": 0.5, "y": 1.0, "label": "chunk 0 ▶", "colour": "#ff7f0e"}, {"x": 1.0, "y": 1.0, "label": "chunk 1"}]
    for legend, kind in ((CLUSTERS, "live"), (COLOUR_BAR, "corpus")):
        page.evaluate(MOUNT, [source, legend, stars, kind])
        latent_map = page.locator(".latent-map")
        _wait_for(lambda: latent_map.get_attribute("data-drawn") == str(40 * 40))
        assert latent_map.evaluate(POINTS_COVERED) == [0, 0], legend["title"]
        markers = latent_map.evaluate(MARKERS)
        assert all(y - 10 >= markers["bar"] for y in markers["stars"]), markers  # a star reaches 10 px above its centre
        assert len(markers["boxes"]) == 2, markers  # both labelled, each whole on the map and below the buttons
        assert all(b["y"] >= markers["bar"] and b["x"] >= 0 and b["x"] + b["w"] <= 900 for b in markers["boxes"]), markers
        if legend is COLOUR_BAR:
            assert latent_map.locator(".legend-note").inner_text() == "3 outside 1–7, drawn at the ends"
    page.close()


def _play_chunk(page, n: int) -> None:
    """Choose the n-th chunk span to play: the player (the page's second) plays from start to end exactly the
    span its label gives ("chunk 1: 0.32-1.31 s, cluster 2")."""
    audio = page.locator("[data-testid='stAudio']").nth(1)
    audio.wait_for(timeout=30_000)
    choices = page.locator("[data-testid='stRadio']").filter(has_text="Play a chunk").locator("[data-testid='stRadioOption']")
    before, choice = audio.get_attribute("src"), choices.nth(n)
    choice.click()
    _wait_for(lambda: audio.get_attribute("src") != before)
    start, end = map(float, re.search(r"(\d+\.\d+)-(\d+\.\d+) s", choice.inner_text()).groups())
    _wait_for(lambda: audio.evaluate("a => a.readyState >= 1"), timeout_s=30)
    played = audio.evaluate("a => new Promise(done => { a.muted = true; a.currentTime = 0; "
                            "a.addEventListener('ended', () => done([a.currentTime, a.duration]), {once: true}); a.play(); })")
    assert played[0] == pytest.approx(end - start, abs=0.01) and played[1] == pytest.approx(end - start, abs=0.01), \
        (choice.inner_text(), played)


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
    page.locator(MAP).wait_for(timeout=60_000)
