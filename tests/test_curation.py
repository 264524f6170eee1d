"""A corpus's curation (issue 31): the edits log in the run store, the edits a reviewer's actions make, the state they
come to, the corrected corpus, and the bad input of each."""
import errno
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from core.config import LabelConfig
from core.curate.corrected import export_corpus
from core.curate.edits import (CurationError, annotations, corpus_log, curation, keep_label, mark_unusable, set_label,
                               stale_files, tag, undo)
from core.data.corpus_formats import load_manifest
from core.data.manifest import corpus_fingerprint
from core.data.synthetic import make_demo_corpus
from core.store.atomic import CorruptFileError
from core.store.edits_store import CorpusEdits, EditsNotSavedError
from tests.conftest import REPO

SCALE = LabelConfig()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> pd.DataFrame:
    folder = tmp_path_factory.mktemp("curation-corpus")
    return load_manifest(make_demo_corpus(folder / "demo", n_train=8, n_dev=2, n_test=2, n_unlabelled=3))


def _labelled(corpus, n):
    return list(corpus.index[corpus["split"] != "unlabelled"][:n])


def test_each_action_is_logged_with_its_old_and_new_value_and_undo_puts_them_back(corpus, tmp_path):
    log = corpus_log(corpus, tmp_path / "runs")
    first, second, third = _labelled(corpus, 3)
    old = corpus.at[second, "arousal"]
    edits = log.append(keep_label(corpus, curation(log.read()), first, "arousal"))
    edits = log.append(set_label(corpus, curation(edits), second, "arousal", 6.5, SCALE))
    edits = log.append(mark_unusable(corpus, curation(edits), [third], "not speech"))
    state = curation(edits)
    assert state.reviewed == {(first, "arousal"), (second, "arousal")}
    assert state.labels == {(second, "arousal"): 6.5} and state.label(corpus, second, "arousal") == 6.5
    assert state.unusable == {third: "not speech"}
    label = next(e for e in edits if e.kind == "label")
    assert (label.file, label.key, label.old, label.new) == (second, "arousal", pytest.approx(old), 6.5)
    assert all(e.time for e in edits) and log.path == tmp_path / "runs" / "corpora" / corpus_fingerprint(corpus)[:16] / "edits.json"

    edits = log.append(undo(edits, label.action))  # the label and its review, back as they were
    state = curation(edits)
    assert state.labels == {} and state.reviewed == {(first, "arousal")} and state.unusable == {third: "not speech"}
    assert len(edits) == 6 and CorpusEdits(corpus_fingerprint(corpus), tmp_path / "runs").read() == edits  # kept, re-read


def test_tags_on_a_selection_are_added_once_removed_and_shown_per_clip(corpus, tmp_path):
    log = corpus_log(corpus, tmp_path / "runs")
    files = list(corpus.index[:4])
    edits = log.append(tag(corpus, curation([]), files, "  laughter  "))
    assert [e.key for e in edits] == ["laughter"] * 4  # whitespace normalised
    assert tag(corpus, curation(edits), files[:2], "laughter") == []  # already tagged: nothing to add
    edits = log.append(tag(corpus, curation(edits), files[:1], "music"))
    edits = log.append(tag(corpus, curation(edits), files[1:2], "laughter", remove=True))
    table = annotations(curation(edits), corpus.index)
    assert table.loc[files[0], "tags"] == "laughter; music" and pd.isna(table.loc[files[1], "tags"])
    assert table["tags"].notna().sum() == 3 and table["unusable"].isna().all()
    assert curation(edits).all_tags() == ["laughter", "music"]


@pytest.mark.parametrize("make, message", [
    (lambda c, s, f: set_label(c, s, f, "arousal", 7.5, SCALE), "outside the corpus's arousal scale [1, 7]"),
    (lambda c, s, f: set_label(c, s, f, "arousal", float("nan"), SCALE), "outside"),
    (lambda c, s, f: set_label(c, s, "gone/clip.wav", "arousal", 3.0, SCALE), "not in this corpus"),
    (lambda c, s, f: set_label(c, s, c.index[c["split"] == "unlabelled"][0], "arousal", 3.0, SCALE), "is unlabelled"),
    (lambda c, s, f: set_label(c, s, f, "pitch", 3.0, SCALE), "not a label"),
    (lambda c, s, f: tag(c, s, [], "laughter"), "no clip is selected"),
    (lambda c, s, f: tag(c, s, [f], "   "), "a tag needs some text"),
    (lambda c, s, f: tag(c, s, [f], "x" * 61), "at most 60 characters"),
    (lambda c, s, f: mark_unusable(c, s, ["gone/clip.wav"], "not speech"), "not in this corpus"),
])
def test_an_edit_that_cannot_be_made_is_a_clear_error_and_changes_nothing(corpus, tmp_path, make, message):
    log = corpus_log(corpus, tmp_path / "runs")
    before = log.append(keep_label(corpus, curation([]), _labelled(corpus, 1)[0], "valence"))
    with pytest.raises(CurationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make(corpus, curation(before), _labelled(corpus, 1)[0])
    assert log.read() == before


APPEND_MANY = """
import sys
from pathlib import Path
from core.store.edits_store import CorpusEdits, Edit
log, worker = CorpusEdits("f" * 64, Path(sys.argv[1])), sys.argv[2]
for i in range(int(sys.argv[3])):
    log.append([Edit("tag", f"clip{i}.wav", f"worker {worker}", False, True, f"{worker}-{i}")])
"""


def test_two_writers_at_once_lose_no_edit(tmp_path):
    """Two tabs (or a tab and the CLI) appending at the same time, as two processes: every edit of both is in the log."""
    writers = [subprocess.Popen([sys.executable, "-c", APPEND_MANY, str(tmp_path), str(w), "40"], cwd=REPO,
                                stderr=subprocess.PIPE, text=True) for w in range(2)]
    for process in writers:
        assert process.wait(120) == 0, process.stderr.read()
    edits = CorpusEdits("f" * 64, tmp_path).read()
    assert len(edits) == 80 and {e.action for e in edits} == {f"{w}-{i}" for w in range(2) for i in range(40)}


def test_a_damaged_log_is_reported_by_name_and_never_overwritten(corpus, tmp_path):
    log = corpus_log(corpus, tmp_path / "runs")
    log.append(tag(corpus, curation([]), list(corpus.index[:2]), "laughter"))
    text = json.loads(log.path.read_text())
    text["edits"][0]["new"] = False  # changed by hand: its checksum no longer matches
    log.path.write_text(json.dumps(text))
    damaged = log.path.read_bytes()
    with pytest.raises(CorruptFileError, match="edits.json.*changed since it was written.*nothing was written over it"):
        log.read()
    with pytest.raises(CorruptFileError):
        log.append(tag(corpus, curation([]), list(corpus.index[2:3]), "music"))
    assert log.path.read_bytes() == damaged
    log.path.write_text('{"format": 1, "edits": [{"kind": "tag"}]}')
    with pytest.raises(CorruptFileError, match="edit 1 of 1 does not have the fields"):
        log.read()


@pytest.mark.parametrize("error", [errno.EROFS, errno.ENOSPC])
def test_a_read_only_or_full_store_says_nothing_was_saved(corpus, tmp_path, monkeypatch, error):
    """The write fails where the disk refuses it (a shim at the atomic-write layer: tests run as root, whom a
    read-only folder does not stop)."""
    log = corpus_log(corpus, tmp_path / "runs")
    edits = log.append(tag(corpus, curation([]), list(corpus.index[:1]), "laughter"))

    def refused(path, data, digest):
        raise OSError(error, os.strerror(error), str(path))

    monkeypatch.setattr("core.store.atomic.write_with_digest", refused)
    with pytest.raises(EditsNotSavedError, match=f"edits.json: the edits could not be saved \\({os.strerror(error)}\\).*unchanged"):
        log.append(tag(corpus, curation(edits), list(corpus.index[1:2]), "laughter"))
    assert log.read() == edits


@pytest.mark.parametrize("unusable", ["drop", "unlabelled"])
def test_the_corrected_manifest_reads_back_with_the_edits_applied(corpus, tmp_path, unusable):
    log = corpus_log(corpus, tmp_path / "runs")
    relabelled, bad = _labelled(corpus, 2)
    edits = log.append(set_label(corpus, curation([]), relabelled, "valence", 1.5, SCALE))
    edits = log.append(mark_unusable(corpus, curation(edits), [bad], "wrong segment"))
    out = tmp_path / "elsewhere" / "corrected.csv"
    done = export_corpus(corpus, edits, out, SCALE, unusable)
    fixed = load_manifest(out)  # what --corpus reads
    fixed.index = fixed["path"].map(dict(zip(corpus["path"], corpus.index)))  # keys: relative to the new folder
    assert fixed.at[relabelled, "valence"] == 1.5 and (done.n_relabelled, done.n_unusable) == (1, 1)
    if unusable == "drop":
        assert bad not in fixed.index and len(fixed) == len(corpus) - 1
    else:
        assert fixed.at[bad, "split"] == "unlabelled" and np.isnan(fixed.loc[bad, ["arousal", "valence"]].astype(float)).all()
    untouched = corpus.index.difference([relabelled, bad])
    pd.testing.assert_frame_equal(fixed.loc[untouched].drop(columns="path"), corpus.loc[untouched].drop(columns="path"),
                                  check_names=False)
    assert corpus_fingerprint(fixed) != corpus_fingerprint(corpus)  # training on it is a new run
    written = pd.read_csv(done.log)
    assert list(written["kind"]) == ["label", "reviewed", "unusable"] and written["applied"].all()


def test_edits_of_clips_no_longer_in_the_corpus_are_named_and_left_out(corpus, tmp_path):
    log = corpus_log(corpus, tmp_path / "runs")
    edits = log.append(tag(corpus, curation([]), list(corpus.index[:2]), "laughter"))
    smaller = corpus.drop(index=corpus.index[0])
    assert stale_files(curation(edits), smaller) == [corpus.index[0]]
    done = export_corpus(smaller, edits, tmp_path / "out.csv", SCALE)
    assert done.stale == [corpus.index[0]] and pd.read_csv(done.log)["applied"].tolist() == [False, True]
    with pytest.raises(Exception, match="expected a .csv file"):
        export_corpus(corpus, edits, tmp_path / "out.txt", SCALE)
