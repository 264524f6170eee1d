"""A corpus's curation log: label edits, unusable marks and tags, kept in the run store beside the runs.

Edits belong to the corpus, not to a run: every run over the same corpus (the same fingerprint,
`core.data.manifest.corpus_fingerprint`) reads the same log, `<runs>/corpora/<fingerprint[:16]>/edits.json`.
The log only grows: an edit records its time, the value before and the value after, and an undo is one more
edit that puts the old values back. Each append takes the folder's lock, reads the log, checks it and writes
it whole again through an atomic rename, so two browser tabs or a tab and a CLI editing at once lose nothing,
and a crash leaves the previous log. The log records a checksum of its own content: a log damaged on disk is
reported and never overwritten (`core.store.atomic.read_checked_json`).
"""
from __future__ import annotations

import fcntl
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

from core.errors import UserError
from core.store.atomic import CorruptFileError, read_checked_json, reported_write, write_checked_json
from core.store.paths import default_runs_dir

KINDS = ("label", "reviewed", "unusable", "tag")  # `Edit.kind`; `core.curate.edits` says what each holds
FOLDER = "corpora"  # under the runs folder; has no `COMPLETE`, so it is never taken for a run
LOG = "edits.json"
FORMAT = 1
_HINT = ("nothing was written over it: restore it from a backup, or move it away to start a new log (the edits "
         "it held are then no longer applied)")

Value = float | str | bool | None


class EditsNotSavedError(UserError, OSError):
    """The log could not be written (a read-only or full disk); the log on disk is unchanged."""


@dataclass(frozen=True)
class Edit:
    """One change to one utterance. `kind` "label": `key` the attribute, `old`/`new` its values; "reviewed": a
    person confirmed the label of attribute `key` (`new` True) or took that back (False); "unusable": `new` the
    reason (None: usable again); "tag": `key` the tag, `new` True (added) or False (removed)."""
    kind: str
    file: str  # the utterance's key in the corpus table
    key: str
    old: Value
    new: Value
    action: str  # the edits one click made share it: an undo reverts them together
    time: str = ""  # ISO 8601, UTC; set when the edit is appended

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown edit kind {self.kind!r}; expected one of {KINDS}")


class CorpusEdits:
    """The curation log of the corpus whose fingerprint is `fingerprint`."""

    def __init__(self, fingerprint: str, runs_root: Path | None = None):
        self.fingerprint = fingerprint
        self.folder = Path(runs_root or default_runs_dir()) / FOLDER / fingerprint[:16]
        self.path = self.folder / LOG

    def read(self) -> list[Edit]:
        """Every edit, oldest first; none when the corpus has no log yet.

        Raises:
            CorruptFileError: the log changed on disk since it was written, or does not hold edits.
        """
        if not self.path.exists():
            return []
        return _edits(read_checked_json(self.path, _HINT), self.path)

    def append(self, edits: list[Edit]) -> list[Edit]:
        """Add `edits` (timed now) after every edit already logged, and return the whole log.

        Raises:
            CorruptFileError: the log on disk is damaged; it is left as it is and nothing is added.
            EditsNotSavedError: the log cannot be written (a read-only or full disk); nothing is added.
        """
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        timed = [Edit(**{**asdict(e), "time": now}) for e in edits]
        try:
            with reported_write(self.path):  # the reason in words (`StoreWriteError.strerror`), not the OS's
                self.folder.mkdir(parents=True, exist_ok=True)
                lock = open(self.folder / ".lock", "a+")
            with lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # held for one read and one write: milliseconds
                try:
                    log = self.read() + timed
                    write_checked_json(self.path, {"format": FORMAT, "corpus": self.fingerprint,
                                                   "edits": [asdict(e) for e in log]})
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
        except OSError as err:
            raise EditsNotSavedError(f"{self.path}: the edits could not be saved ({err.strerror or err}); the log "
                                     "on disk is unchanged") from None
        return log


def _edits(log: dict, path: Path) -> list[Edit]:
    names = {f.name for f in fields(Edit)}
    rows = log.get("edits")
    if not isinstance(rows, list):
        raise CorruptFileError(path, "holds no list of edits", _HINT)
    bad = [i for i, row in enumerate(rows) if not isinstance(row, dict) or set(row) != names]
    if bad:
        raise CorruptFileError(path, f"edit {bad[0] + 1} of {len(rows)} does not have the fields {sorted(names)}", _HINT)
    try:
        return [Edit(**row) for row in rows]
    except ValueError as err:
        raise CorruptFileError(path, f"holds an edit that does not read ({err})", _HINT) from None
