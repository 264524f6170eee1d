"""AppTest of the review page (issue 31): suspects reviewed one at a time in rank order, each action in the corpus's
curation log at once; the log survives a restart and a second tab; a damaged log, a value off the scale and an edit
of a clip no longer in the corpus are messages, and nothing else is lost."""
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from core.curate.edits import Curation, CurationError, curation, set_label
from core.explore.exploration import explore
from core.explore.suspects import run_suspects
from core.store.edits_store import FOLDER, CorpusEdits, Edit
from core.store.run_store import RunStore
from tests.conftest import REPO

APP = str(REPO / "app" / "streamlit_app.py")
PAGE = "app_pages/review.py"


@pytest.fixture(scope="module")
def explored(app_data):
    """The exploration the app opens (the newest run, over its own corpus)."""
    return explore(RunStore(app_data / "runs").list()[0], cache_root=app_data / "cache")


@pytest.fixture
def order(explored) -> list[str]:
    """The arousal labels' files, most suspicious first."""
    ranking = run_suspects(explored)
    return list(ranking[ranking["attribute"] == "arousal"].sort_values("rank").index)


@pytest.fixture
def log(app_store, explored):
    """The corpus's curation log, none before and after each test (the trained store is shared by the session)."""
    shutil.rmtree(app_store / "runs" / FOLDER, ignore_errors=True)
    yield CorpusEdits(explored.fingerprint, app_store / "runs")
    shutil.rmtree(app_store / "runs" / FOLDER, ignore_errors=True)


def _review() -> AppTest:
    """A new browser session on the review page."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def _shown(at: AppTest) -> str:
    """The file of the clip the page asks about (its heading: "Suspect 3 of 40: audio/x.wav")."""
    assert not at.exception, at.exception
    return at.subheader[0].value.rsplit(": ", 1)[-1]


def _other_value(explored, file: str) -> float:
    """A label on the corpus's scale far from `file`'s arousal label."""
    scale, old = explored.run.config.labels, float(explored.corpus.at[file, "arousal"])
    return scale.maximum if old < (scale.minimum + scale.maximum) / 2 else scale.minimum


def test_review_keeps_sets_marks_unusable_and_undoes(log, explored, order):
    at = _review()
    assert at.title[0].value == "Review labels" and at.selectbox(key="review.attribute").value == "arousal"
    assert _shown(at) == order[0] and at.subheader[0].value.startswith(f"Suspect 1 of {len(order)}")
    assert at.button(key="review.undo").disabled  # nothing to undo yet
    at.button(key="review.keep").click().run()
    assert _shown(at) == order[1] and f"Kept the arousal label of {order[0]}" in at.success[0].value
    old, new = float(explored.corpus.at[order[1], "arousal"]), _other_value(explored, order[1])
    at.number_input(key="review.value").set_value(new)
    at.button(key="review.set").click().run()
    assert _shown(at) == order[2] and f"to {new:.2f}" in at.success[0].value
    at.selectbox(key="review.reason").select("not speech")
    at.button(key="review.unusable").click().run()
    assert _shown(at) == order[3]
    edits = log.read()
    assert [(e.kind, e.file, e.key, e.old, e.new) for e in edits] == [
        ("reviewed", order[0], "arousal", False, True),
        ("label", order[1], "arousal", pytest.approx(old), new), ("reviewed", order[1], "arousal", False, True),
        ("unusable", order[2], "", None, "not speech")]
    assert len({e.action for e in edits}) == 3  # one action per click: an undo takes back the label and its review
    at.button(key="review.undo").click().run()
    assert f"Undone: marked {order[2]} unusable (not speech)" in at.info[0].value
    assert _shown(at) == order[2]  # back in the queue, at its rank
    last = log.read()[-1]
    assert len(log.read()) == 5 and (last.kind, last.file, last.old, last.new) == ("unusable", order[2], "not speech", None)
    state = curation(log.read())
    assert state.labels == {(order[1], "arousal"): new} and not state.unusable


def test_review_edits_survive_a_restart(log, explored, order):
    first = _review()
    first.button(key="review.keep").click().run()
    new = _other_value(explored, order[1])
    first.number_input(key="review.value").set_value(new)
    first.button(key="review.set").click().run()
    again = _review()  # a new session, as after a server restart: what it knows is the log on disk
    assert _shown(again) == order[2] and again.button(key="review.undo").disabled
    done = again.dataframe[0].value
    assert list(done.index) == order[:2] and done.at[order[1], "label now"] == new
    assert done.at[order[0], "label now"] == pytest.approx(float(explored.corpus.at[order[0], "arousal"]))


def test_two_tabs_reviewing_at_once_lose_nothing(log, order):
    one, two = _review(), _review()
    assert _shown(one) == _shown(two) == order[0]
    two.button(key="review.skip").click().run()  # a skip is the tab's own: not logged
    assert _shown(two) == order[1] and log.read() == []
    one.button(key="review.keep").click().run()
    two.button(key="review.keep").click().run()  # tab two's page was drawn before tab one wrote
    assert [(e.file, e.new) for e in log.read()] == [(order[0], True), (order[1], True)]
    assert _shown(one.run()) == _shown(two) == order[2]
    two.button(key="review.undo").click().run()  # Undo takes back tab two's action, not tab one's
    assert curation(log.read()).reviewed == {(order[0], "arousal")}
    assert _shown(one.run()) == order[1]


def test_skipped_clips_come_back_when_the_queue_is_empty(log, order):
    at = _review()
    at.session_state["review.skipped"] = {"arousal": order[1:]}
    at.button(key="review.skip").click().run()  # the last clip of the queue
    assert not at.exception and not at.subheader
    assert at.success[0].value == f"No arousal label left to review: {len(order)} skipped in this tab."
    at.button(key="review.unskip").click().run()
    assert _shown(at) == order[0] and log.read() == []


def test_a_damaged_log_is_a_message_and_the_suspects_still_show(log, order):
    at = _review()
    log.folder.mkdir(parents=True, exist_ok=True)
    log.path.write_text("{not json")  # damaged after the page was drawn: the click finds it
    at.button(key="review.keep").click().run()
    assert not at.exception, at.exception
    assert str(log.path) in at.error[0].value and log.path.read_text() == "{not json"  # said, never overwritten
    again = _review()
    assert any("edits log does not read" in e.value for e in again.error)
    assert _shown(again) == order[0]  # the suspects still show ...
    assert all(again.button(key=k).disabled for k in ("review.keep", "review.set", "review.unusable", "review.undo"))


def test_edits_of_clips_no_longer_in_the_corpus_are_named(log, order):
    log.append([Edit("reviewed", "gone/clip.wav", "arousal", False, True, "a1")])
    at = _review()
    assert _shown(at) == order[0] and any("gone/clip.wav" in w.value and "no longer in this corpus" in w.value
                                          for w in at.warning)


def test_set_label_outside_the_scale_or_corpus_names_it(explored, order):
    corpus, scale = explored.corpus, explored.run.config.labels
    with pytest.raises(CurationError, match=rf"9.0 is outside the corpus's arousal scale \[{scale.minimum:g}, "
                                            rf"{scale.maximum:g}\]"):
        set_label(corpus, Curation(), order[0], "arousal", 9.0, scale)
    with pytest.raises(CurationError, match="not in this corpus"):
        set_label(corpus, Curation(), "gone/clip.wav", "arousal", 3.0, scale)
    assert set_label(corpus, Curation(), order[0], "arousal", scale.maximum, scale)[0].new == scale.maximum


def test_review_page_over_the_imported_published_models(official_app_store):
    """An imported model has one network (and latent space) per attribute and is explored over the demo corpus."""
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.switch_page(PAGE).run()
    assert at.selectbox(key="review.attribute").options and _shown(at).endswith(".wav")
    assert at.subheader[0].value.startswith("Suspect 1 of ")
