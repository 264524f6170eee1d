"""What a user sees when the disk or an upload is refused (issue 33), in a real browser over `streamlit run app`: a
runs folder on a read-only file system explored all the same, a training on a full one ending in one message, and a
clip longer than Locate's limit. Each message is shot under test-artifacts/ (failure-*.png).

The file systems are real (a tmpfs: the `small_disk` fixture, skipped where this machine cannot mount one); the
shim variants of the same failures, in every environment, are in tests/test_full_disk.py.
"""
import shutil

import pytest

from benchmarks.browser import MAP
from benchmarks.long_inputs import long_wav
from core.store.run_store import RunStore
from tests.disks import as_root, fill
# the fixtures `chromium` and `browser_page` are imported for pytest to find
from tests.test_browser import ARTIFACTS, browser_page, chromium, serve_app  # noqa: F401

pytestmark = pytest.mark.slow  # a server and a browser each: ~20-60 s on 2 cores
ALERT = "[data-testid='stAlert']"


def _alert(page, text: str, timeout_s: float = 180):
    """The first message on the page that says `text` (waited for)."""
    alert = page.locator(ALERT).filter(has_text=text).first
    alert.wait_for(timeout=timeout_s * 1000)
    return alert


def _shoot(page, alert, name: str) -> None:
    """The page as the user sees it with `alert` scrolled into view (the app scrolls inside its own container)."""
    ARTIFACTS.mkdir(exist_ok=True)
    alert.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / name))


def test_a_read_only_runs_folder_is_explored_and_the_page_says_what_could_not_be_saved(app_data, small_disk,
                                                                                      browser_page):  # noqa: F811
    page = browser_page
    runs = small_disk / "runs"
    shutil.copytree(app_data / "runs", runs, ignore=shutil.ignore_patterns("analysis"))  # the map must be computed
    as_root("mount", "-o", "remount,ro", str(small_disk))
    with serve_app(app_data, runs=runs) as url:
        page.goto(url)
        page.locator(MAP).wait_for(timeout=300_000)  # explored all the same
        page.locator("body").press("r")  # a rerun: the page says what this server could not save
        alert = _alert(page, "The map is used from memory")
        said = alert.inner_text()
        assert f"{runs}/" in said and "the folder is read-only" in said
        assert "Traceback" not in page.content()
        _shoot(page, alert, "failure-read-only-runs.png")
    assert not list(runs.glob("*/analysis"))


def test_a_training_on_a_full_disk_ends_in_one_message_naming_the_path_and_the_room(app_data, small_disk,
                                                                                   browser_page):  # noqa: F811
    page = browser_page
    runs = small_disk / "runs"
    shutil.copytree(app_data / "runs", runs)  # with its map: the map page needs no room
    fill(small_disk)
    n_runs = len(RunStore(runs).list())
    with serve_app(app_data, runs=runs) as url:
        page.goto(url)
        page.locator(MAP).wait_for(timeout=180_000)
        page.get_by_role("link", name="Runs", exact=True).click()
        page.get_by_label("Corpus (manifest CSV, MSP-Podcast folder or folder of clips)").fill(
            str(app_data / "demo" / "manifest.csv"))
        page.get_by_role("button", name="Train in the background").click()
        alert = _alert(page, "the disk is full", timeout_s=300)
        said = alert.inner_text()
        assert f"cannot write {runs}/" in said and "free" in said and "Traceback" not in said, said
        _shoot(page, alert, "failure-full-disk-training.png")
        page.get_by_role("link", name="Latent map", exact=True).click()  # the session goes on
        page.locator(MAP).wait_for(timeout=60_000)
    assert len(RunStore(runs).list()) == n_runs  # nothing half-written is listed as a run


def test_a_clip_longer_than_locates_limit_is_refused_with_the_limit_and_the_cli_to_use(app_data, browser_page,  # noqa: F811
                                                                                       tmp_path):
    page = browser_page
    limit_s = RunStore(app_data / "runs").latest().config.audio.max_duration_s
    long = long_wav(tmp_path / "long talk.wav", int(limit_s // 60) + 1, 8_000)  # one minute over the limit
    with serve_app(app_data) as url:
        page.goto(f"{url}/locate")
        uploader = page.locator("[data-testid='stFileUploader'] input[type=file]")
        uploader.wait_for(state="attached", timeout=180_000)
        uploader.set_input_files(str(long))
        alert = _alert(page, "long talk.wav: ")
        said = alert.inner_text()
        assert f"longer than this run's limit of {limit_s / 60:g} min" in said and "python -m core locate" in said
        _shoot(page, alert, "failure-upload-too-long.png")
