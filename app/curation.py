"""The explored corpus's curation log (`core.store.edits_store`) as the app reads and writes it.

The log is read again on every rerun, never cached: another tab, another person or the CLI may have written
since. Each action is appended at once (under the log's lock), and this session remembers its own actions, newest
last, so that Undo takes back the last thing this tab did, not another tab's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pandas as pd
import streamlit as st

from app import loaders
from core.curate.edits import Curation, curation, undo
from core.errors import UserError
from core.store.atomic import CorruptFileError
from core.store.edits_store import CorpusEdits, Edit
from core.store.paths import default_runs_dir

DONE = "curation.done"  # session key: the action ids this session appended, newest last


@dataclass(frozen=True)
class CorpusCuration:
    log: CorpusEdits
    edits: list[Edit]  # the whole log, oldest first
    state: Curation
    damaged: str | None = None  # why the log does not read (then nothing can be edited, and nothing is overwritten)


def corpus_curation(run_id: str, network: str | None) -> CorpusCuration:
    """The log of the corpus the run is explored over, read now. A damaged log reads as empty, with the reason:
    the pages still explore the corpus, and say so."""
    log = CorpusEdits(loaders.load_exploration(run_id, network).fingerprint, default_runs_dir())
    try:
        edits = log.read()
    except CorruptFileError as err:
        return CorpusCuration(log, [], Curation(), str(err))
    return CorpusCuration(log, edits, curation(edits))


def damaged_warning(current: CorpusCuration) -> None:
    if current.damaged:
        st.error(f"The corpus's edits log does not read, so its tags and edits are not shown and nothing can be "
                 f"edited: {current.damaged}")


def record(current: CorpusCuration, edits: list[Edit]) -> CorpusCuration:
    """Append `edits` (one action) to the log and remember the action for Undo; returns the log as it now is.

    Raises:
        CorruptFileError, EditsNotSavedError: the log is damaged or cannot be written; nothing was appended.
    """
    if not edits:
        return current
    full = current.log.append(edits)
    st.session_state.setdefault(DONE, []).append(edits[0].action)
    return CorpusCuration(current.log, full, curation(full))


def can_undo() -> bool:
    return bool(st.session_state.get(DONE))


def undo_last(current: CorpusCuration) -> CorpusCuration:
    """Take back this session's last action: its edits' old values are appended as a new action (kept in the log)."""
    done = st.session_state.get(DONE) or []
    if not done:
        return current
    full = current.log.append(undo(current.edits, done[-1]))
    done.pop()
    return CorpusCuration(current.log, full, curation(full))


# The review queue (`app_pages/review.py`): its state, its actions as button callbacks, what they did.
SKIPPED = "review.skipped"  # session key: {attribute: [files this session skipped]}; a skip is this tab's, not logged
MESSAGE = "review.message"  # session key: (level, text) of the last action, shown once on the next run of the page
REASONS = ("not speech", "wrong segment", "another speaker", "music or noise", "other")  # why a clip is unusable


def review_queue(ranking: pd.DataFrame, state: Curation, attribute: str) -> pd.DataFrame:
    """`attribute`'s rows of the suspects ranking (`core.explore.suspects`) still to review, in rank order: without
    the clips whose label a person kept or set, the clips marked unusable and the clips this session skipped."""
    rows = ranking[ranking["attribute"] == attribute].sort_values("rank")
    done = ({f for f, a in state.reviewed if a == attribute} | set(state.unusable)
            | set(st.session_state.get(SKIPPED, {}).get(attribute, ())))
    return rows[~rows.index.isin(done)]


def describe(edits: list[Edit]) -> str:
    """What one action's edits did, in words: "kept the arousal label of a.wav", "set ... from 2.50 to 5.00"."""
    if not edits:
        return "nothing changed"
    first = edits[0]
    if first.kind == "label":
        return f"set the {first.key} label of {first.file} from {_value(first.old)} to {_value(first.new)}"
    if first.kind == "reviewed":
        return f"{'kept' if first.new else 'took back the review of'} the {first.key} label of {first.file}"
    if first.kind == "unusable":
        return (f"marked {first.file} unusable ({first.new})" if first.new else f"marked {first.file} usable again")
    return f"{'tagged' if first.new else 'untagged'} {len(edits)} clip(s) {first.key!r}"


def act(run_id: str, network: str | None, make: Callable[[CorpusCuration], list[Edit]]) -> None:
    """A review button's callback: read the log now (another tab may have written), make one action's edits from
    it and append them; what it did, or the `UserError` that stopped it (nothing appended), is `MESSAGE`."""
    current = corpus_curation(run_id, network)
    try:  # a damaged log reads as empty here, and its append raises CorruptFileError: nothing is written over it
        edits = make(current)
        record(current, edits)
    except UserError as err:
        st.session_state[MESSAGE] = ("error", str(err))
        return
    said = describe(edits)
    st.session_state[MESSAGE] = ("success", said[:1].upper() + said[1:])  # file names keep their case


def undo_review(run_id: str, network: str | None) -> None:
    """The Undo button's callback: `undo_last`, saying what it took back."""
    current = corpus_curation(run_id, network)
    done = st.session_state.get(DONE) or []
    last = [e for e in current.edits if done and e.action == done[-1]]
    try:
        undo_last(current)
    except UserError as err:
        st.session_state[MESSAGE] = ("error", str(err))
        return
    st.session_state[MESSAGE] = ("info", f"Undone: {describe(last)}.")


def skip(attribute: str, file: str) -> None:
    st.session_state.setdefault(SKIPPED, {}).setdefault(attribute, []).append(file)


def unskip(attribute: str) -> None:
    st.session_state.setdefault(SKIPPED, {}).pop(attribute, None)


def message_ui() -> None:
    """The last action's outcome, once."""
    level, text = st.session_state.pop(MESSAGE, (None, ""))
    if level:
        getattr(st, level)(text)


def _value(value) -> str:
    return "none" if value is None else f"{value:.2f}"
