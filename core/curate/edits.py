"""What a person changes in a corpus: edits made from a reviewer's actions, checked against the corpus, and the
state a log of them comes to.

A reviewer's action becomes edits (`core.store.edits_store.Edit`) that share an action id: setting a label is a
"label" edit and a "reviewed" one; keeping it is a "reviewed" edit; marking a clip unusable, or tagging a
selection, one edit per clip. Each edit records the value it replaces, so that `undo` can put it back. The state
(`Curation`) is the last value of each (kind, file, key), read by the map, the review queue and the export.
"""
from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from core.config import AVD, LabelConfig
from core.data.manifest import corpus_fingerprint
from core.errors import UserError
from core.explore.colourings import VALUE_SEPARATOR  # between a clip's tags in the map's and the exports' tables
from core.store.edits_store import CorpusEdits, Edit

MAX_TAG = 60  # characters: a tag names a group, it is not a note


class CurationError(UserError, ValueError):
    """An edit that cannot be made: a value outside the corpus's scale, a clip not in the corpus, an empty selection."""


@dataclass(frozen=True)
class Curation:
    """The state a log of edits comes to: the latest value of every field an edit touched."""
    labels: dict[tuple[str, str], float] = field(default_factory=dict)  # (file, attribute) -> the edited label
    reviewed: frozenset[tuple[str, str]] = frozenset()  # (file, attribute) a person kept or set
    unusable: dict[str, str] = field(default_factory=dict)  # file -> why it is unusable
    tags: dict[str, frozenset[str]] = field(default_factory=dict)  # file -> its tags (only files with some)

    def label(self, corpus: pd.DataFrame, file: str, attribute: str) -> float:
        """The label of `file` now: edited, else the corpus's."""
        return self.labels.get((file, attribute), float(corpus.at[file, attribute]))

    @property
    def files(self) -> set[str]:
        return ({f for f, _ in self.labels} | {f for f, _ in self.reviewed} | set(self.unusable) | set(self.tags))

    def all_tags(self) -> list[str]:
        return sorted(set().union(*self.tags.values())) if self.tags else []


def corpus_log(corpus: pd.DataFrame, runs_root: Path | None = None) -> CorpusEdits:
    """The curation log of `corpus` in the run store under `runs_root` (default: the default runs folder)."""
    return CorpusEdits(corpus_fingerprint(corpus), runs_root)


def curation(edits: list[Edit]) -> Curation:
    """The state after `edits`, applied in order."""
    latest: dict[tuple[str, str, str], object] = {}
    first: dict[tuple[str, str, str], object] = {}  # the value before the first edit: the corpus's own
    for edit in edits:
        latest[(edit.kind, edit.file, edit.key)] = edit.new
        first.setdefault((edit.kind, edit.file, edit.key), edit.old)
    latest = {field: new for field, new in latest.items() if new != first[field]}  # undone: as the corpus has it
    tags: dict[str, set[str]] = {}
    for (kind, file, key), new in latest.items():
        if kind == "tag" and new:
            tags.setdefault(file, set()).add(key)
    return Curation(labels={(f, k): float(v) for (kind, f, k), v in latest.items() if kind == "label" and v is not None},
                    reviewed=frozenset((f, k) for (kind, f, k), v in latest.items() if kind == "reviewed" and v),
                    unusable={f: str(v) for (kind, f, _), v in latest.items() if kind == "unusable" and v},
                    tags={f: frozenset(t) for f, t in tags.items()})


def new_action() -> str:
    return uuid.uuid4().hex[:12]


def set_label(corpus: pd.DataFrame, state: Curation, file: str, attribute: str, value: float,
              labels: LabelConfig) -> list[Edit]:
    """The edits that give `file` the label `value` for `attribute` (and mark it reviewed).

    Raises:
        CurationError: `file` is not in the corpus, `attribute` is not a label, or `value` is outside the scale.
    """
    _check_files(corpus, [file])
    if attribute not in AVD:
        raise CurationError(f"{attribute!r} is not a label; expected one of {list(AVD)}")
    if corpus.at[file, "split"] == "unlabelled":
        raise CurationError(f"{file} is unlabelled: it has no {attribute} label to correct (label it in the manifest, "
                            "with its split)")
    if not isinstance(value, (int, float)) or math.isnan(value) or not labels.minimum <= value <= labels.maximum:
        raise CurationError(f"{value!r} is outside the corpus's {attribute} scale "
                            f"[{labels.minimum:g}, {labels.maximum:g}]; the label of {file} is unchanged")
    action, old = new_action(), state.label(corpus, file, attribute)
    return [Edit("label", file, attribute, _number(old), float(value), action),
            Edit("reviewed", file, attribute, (file, attribute) in state.reviewed, True, action)]


def keep_label(corpus: pd.DataFrame, state: Curation, file: str, attribute: str) -> list[Edit]:
    """The edit that records that a person heard `file` and kept its `attribute` label."""
    _check_files(corpus, [file])
    return [Edit("reviewed", file, attribute, (file, attribute) in state.reviewed, True, new_action())]


def mark_unusable(corpus: pd.DataFrame, state: Curation, files: list[str], reason: str | None) -> list[Edit]:
    """The edits that mark `files` unusable for `reason` (not speech, a wrong segment, ...); None: usable again."""
    _check_files(corpus, files)
    reason = (reason or "").strip() or None
    action = new_action()
    return [Edit("unusable", f, "", state.unusable.get(f), reason, action) for f in files
            if state.unusable.get(f) != reason]


def tag(corpus: pd.DataFrame, state: Curation, files: list[str], text: str, remove: bool = False) -> list[Edit]:
    """The edits that add the tag `text` to `files` (or remove it); the files that already have it are left alone.

    Raises:
        CurationError: an empty selection or tag, a tag over `MAX_TAG` characters, a file not in the corpus.
    """
    if not files:
        raise CurationError("nothing to tag: no clip is selected; select points on the map (box or lasso), pick a "
                            "cluster or inspect a clip first")
    text = " ".join(str(text).split())
    if not text or VALUE_SEPARATOR.strip() in text:
        raise CurationError(f"a tag needs some text, without {VALUE_SEPARATOR.strip()!r}; found {text!r}")
    if len(text) > MAX_TAG:
        raise CurationError(f"a tag holds at most {MAX_TAG} characters, found {len(text)}: {text[:MAX_TAG]}…")
    _check_files(corpus, files)
    action = new_action()
    return [Edit("tag", f, text, remove, not remove, action) for f in dict.fromkeys(files)
            if (text in state.tags.get(f, ())) == remove]


def undo(log: list[Edit], action: str) -> list[Edit]:
    """The edits that put back what action `action` changed (newest first), as one new action."""
    done = [e for e in log if e.action == action]
    again = new_action()
    return [Edit(e.kind, e.file, e.key, e.new, e.old, again) for e in reversed(done)]


def stale_files(state: Curation, corpus: pd.DataFrame) -> list[str]:
    """The files the edits name that the corpus no longer holds (their edits are not applied)."""
    return sorted(state.files - set(corpus.index))


def annotations(state: Curation, files: pd.Index) -> pd.DataFrame:
    """Per file: `tags` (sorted, joined by `VALUE_SEPARATOR`) and `unusable` (the reason); None where it has none."""
    return pd.DataFrame({"tags": [VALUE_SEPARATOR.join(sorted(state.tags[f])) if f in state.tags else None for f in files],
                         "unusable": [state.unusable.get(f) for f in files]}, index=files, dtype="str")


def _check_files(corpus: pd.DataFrame, files: list[str]) -> None:
    missing = [f for f in files if f not in corpus.index]
    if missing:
        raise CurationError(f"{len(missing)} clip(s) are not in this corpus (any more), e.g. {missing[:3]}: "
                            "nothing was edited")


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)
