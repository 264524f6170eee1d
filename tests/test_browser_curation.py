"""The curation workflow end to end in a real browser: review three suspects, tag a selection on the map, find it all
again after a server restart, export the corrected manifest, train `tiny` on it and compare the two runs.

Drives Debian's chromium through playwright, as `tests/test_browser.py` does (skipped without it).
"""
import contextlib
import os
import re
import shutil
import subprocess
import sys

from benchmarks.browser import MAP
from core.data.corpus_formats import load_manifest
from core.store.edits_store import FOLDER, LOG, CorpusEdits
from core.store.run_store import RunStore
from tests.conftest import REPO
# the fixtures `chromium` and `browser_page` are imported for pytest to find
from tests.test_browser import ARTIFACTS, _box_select, _wait_for, browser_page, chromium, serve_app  # noqa: F401

SUSPECT = re.compile(r"^Suspect \d+ of \d+: (.+)$")
TAG = "checked by ear"
NEW_LABEL = 6.5
LONG_MS = 180_000  # a first embedding, map or training on a 2-core CPU
SHORT_MS = 60_000  # a rerun


def test_browser_review_tag_restart_export_train_and_compare(browser_page, app_data, tmp_path):  # noqa: F811
    from playwright.sync_api import expect
    data = tmp_path / "data"  # a copy: the test writes edits and trains a run (its audio stays in app_data's demo/)
    shutil.copytree(app_data, data)
    earlier = [r.run_id for r in RunStore(data / "runs").list()]  # newest first: the one the app shows
    page = browser_page

    with serve_app(data) as url:
        page.goto(f"{url}/review")
        kept, relabelled, unusable = _review_three_suspects(page)
        page.get_by_role("link", name="Latent map").click()
        n_tagged = _tag_a_selection(page)

    folders = list((data / "runs" / FOLDER).glob("*/"))
    assert len(folders) == 1, folders  # one corpus, one log: the two runs share it
    edits = CorpusEdits(folders[0].name, data / "runs").read()
    assert (folders[0] / LOG).is_file()
    by_kind = {kind: [e for e in edits if e.kind == kind] for kind in ("reviewed", "label", "unusable", "tag")}
    assert [(e.file, e.key, e.new) for e in by_kind["reviewed"]] == [(kept, "arousal", True),
                                                                     (relabelled, "arousal", True)]
    [label] = by_kind["label"]
    assert (label.file, label.key, label.new) == (relabelled, "arousal", NEW_LABEL) and label.old != NEW_LABEL
    assert [(e.file, e.new) for e in by_kind["unusable"]] == [(unusable, "not speech")]
    assert len(by_kind["tag"]) == n_tagged and {(e.key, e.new) for e in by_kind["tag"]} == {(TAG, True)}

    manifest = tmp_path / "corrected" / "manifest.csv"
    with serve_app(data) as url:  # a new server (a new port): everything is read back from the log
        page.goto(f"{url}/review")
        heading = page.get_by_role("heading", name=SUSPECT)
        heading.wait_for(timeout=LONG_MS)
        assert SUSPECT.match(heading.inner_text()).group(1) not in (kept, relabelled, unusable)  # all three reviewed
        done = page.get_by_test_id("stExpander").filter(has_text="Reviewed or unusable (3)")
        done.get_by_text("Reviewed or unusable (3)").click()
        table = done.get_by_test_id("stDataFrame")
        table.wait_for(timeout=SHORT_MS)
        for file in (kept, relabelled, unusable):
            expect(table).to_contain_text(file, timeout=SHORT_MS)
        _idle(page)
        page.screenshot(path=str(_artifact("browser-curation-review.png")), full_page=True)

        page.get_by_role("link", name="Latent map").click()
        page.locator(MAP).wait_for(timeout=LONG_MS)
        page.get_by_test_id("stSelectbox").filter(has_text="Colour by").click()
        page.get_by_role("option", name="tag", exact=True).click()
        page.locator(".latent-map .legend-title").filter(has_text=re.compile("^tag$")).wait_for(timeout=SHORT_MS)
        tags = page.get_by_test_id("stExpander").filter(has_text="Tags")
        tags.get_by_text("Tags", exact=True).click()
        tags.get_by_text(f"In use: {TAG} ({n_tagged})").wait_for(timeout=SHORT_MS)

        page.get_by_role("link", name="Export").click()
        target = page.get_by_role("textbox", name="Write the manifest to (on the server)")
        target.fill(str(manifest))
        page.get_by_role("button", name="Write the corrected manifest").click()
        page.get_by_text(f"Wrote {manifest} (").wait_for(timeout=SHORT_MS)

        corpus = load_manifest(manifest)
        original = load_manifest(app_data / "demo" / "manifest.csv")
        assert len(corpus) == len(original) - 1  # the unusable clip left out
        assert (manifest.parent / "manifest.edits.csv").is_file()
        by_audio = corpus.set_index("path")  # keys are relative to the new folder: match clips by their audio file
        audio = original["path"]
        assert original.at[unusable, "path"] not in by_audio.index
        assert by_audio.at[audio[relabelled], "arousal"] == NEW_LABEL
        assert by_audio.at[audio[kept], "arousal"] == original.at[kept, "arousal"]

        env = {**os.environ, "SER_DATA_DIR": str(data), "SER_RUNS_DIR": str(data / "runs")}
        trained = subprocess.run([sys.executable, "-m", "core", "--runs-dir", str(data / "runs"), "train", "--corpus",
                                  str(manifest), "--preset", "tiny"], cwd=REPO, env=env, capture_output=True,
                                 text=True, timeout=300)
        assert trained.returncode == 0, trained.stdout + trained.stderr
        [new] = [r.run_id for r in RunStore(data / "runs").list() if r.run_id not in earlier]
        assert new.startswith("tiny-")

        page.goto(f"{url}/compare")  # a new session selects the newest run, the new one: compare the first with it
        page.get_by_test_id("stSelectbox").filter(has_text="Compare with").wait_for(timeout=LONG_MS)
        page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").filter(has_text="Run").click()
        page.get_by_role("option", name=earlier[0], exact=True).click()
        titles = page.get_by_test_id("stMarkdownContainer").locator("strong")  # the two maps' titles
        titles.filter(has_text=re.compile(f"^{earlier[0]}$")).wait_for(timeout=LONG_MS)
        _idle(page)
        page.get_by_test_id("stSelectbox").filter(has_text="Compare with").click()
        page.get_by_role("option", name=new, exact=True).click()
        titles.filter(has_text=re.compile(f"^{new}$")).wait_for(timeout=LONG_MS)
        common = page.get_by_test_id("stMetric").filter(has_text="common utterances").get_by_test_id("stMetricValue")
        expect(common).to_have_text(f"{len(corpus):,}", timeout=LONG_MS)  # matched by audio file, not by key
        nmi = page.get_by_test_id("stMetric").filter(has_text="NMI").get_by_test_id("stMetricValue").inner_text()
        assert 0 <= float(nmi) <= 1, nmi
        page.get_by_text("Contingency").wait_for(timeout=LONG_MS)
        _idle(page)
        page.screenshot(path=str(_artifact("browser-curation-compare.png")), full_page=True)


def _review_three_suspects(page) -> tuple[str, str, str]:
    """Keep the first suspect's arousal label (shortcut K), set the second's to `NEW_LABEL`, mark the third unusable;
    returns their files."""
    files = [_current_suspect(page, [])]
    page.evaluate("document.activeElement && document.activeElement.blur()")  # a shortcut acts outside an input
    page.keyboard.press("k")
    page.get_by_text(f"Kept the arousal label of {files[0]}", exact=True).wait_for(timeout=SHORT_MS)

    files.append(_current_suspect(page, files))
    value = page.get_by_role("spinbutton", name="New arousal label")
    value.fill(f"{NEW_LABEL}")
    value.press("Enter")  # the value reaches the server before the button that reads it: its rerun starts, then ends
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    with contextlib.suppress(PlaywrightTimeout):  # (a rerun quicker than the check leaves no status to see)
        page.locator('[data-testid="stStatusWidget"]').wait_for(timeout=5_000)
    _idle(page)
    page.locator(".st-key-review-set").get_by_role("button").click()
    page.get_by_text(re.compile(rf"^Set the arousal label of {re.escape(files[1])} from \d+\.\d\d to 6\.50$")) \
        .wait_for(timeout=SHORT_MS)

    files.append(_current_suspect(page, files))
    page.locator(".st-key-review-unusable").get_by_role("button").click()
    page.get_by_text(f"Marked {files[2]} unusable (not speech)", exact=True).wait_for(timeout=SHORT_MS)
    _current_suspect(page, files)  # a fourth
    return files[0], files[1], files[2]


def _current_suspect(page, done: list[str]) -> str:
    """The file of the suspect the review page shows once it shows none of `done` and has finished its rerun (the
    message of an action is drawn before the next suspect's heading)."""
    heading = page.get_by_role("heading", name=SUSPECT)
    heading.wait_for(timeout=LONG_MS)
    _wait_for(lambda: SUSPECT.match(heading.inner_text()).group(1) not in done, timeout_s=SHORT_MS / 1000)
    _idle(page)
    return SUSPECT.match(heading.inner_text()).group(1)


def _tag_a_selection(page) -> int:
    """Box-select the whole map and tag the selection `TAG`; returns how many clips it holds."""
    page.locator(MAP).wait_for(timeout=LONG_MS)
    _box_select(page, page.locator(".latent-map canvas").first)
    target = page.get_by_text(re.compile(r"^the selection \(\d+ clips\)$"))
    target.wait_for(timeout=SHORT_MS)  # the Tags expander opens on a selection, its target the selection
    n = int(re.search(r"\d+", target.inner_text()).group())
    assert n > 0
    text = page.get_by_role("textbox", name="Tag text")
    text.fill(TAG)
    text.press("Enter")
    _idle(page)
    page.get_by_role("button", name="Add tag").click()
    page.get_by_text(f"In use: {TAG} ({n})").wait_for(timeout=SHORT_MS)
    return n


def _idle(page) -> None:
    """Wait until the app has no rerun running."""
    _wait_for(lambda: not page.locator('[data-testid="stStatusWidget"]').count())


def _artifact(name: str):
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
