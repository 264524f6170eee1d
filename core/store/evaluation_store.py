"""Files of a run's evaluations: `<run>/evaluations/<key>/`, each folder with its completion marker last.

Evaluations live beside a finished run, never among the top-level files its `COMPLETE` vouches for, so
writing one cannot make the run look corrupted. Like analyses they can be recomputed from the run: an
incomplete or corrupted one is ignored (with a warning) and deleted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from core.store.atomic import (COMPLETE, CorruptFileError, atomic_write_bytes, discard, parquet_bytes, reported_write,
                               verify_marker, write_marker)

ESTIMATE_COLUMNS = ["ccc", "low", "high", "n", "reason", "speaker_low", "speaker_high", "speakers"]


@dataclass(frozen=True)
class Evaluation:
    """A run's CCC, with intervals, on one or more corpora (`core.evaluate.cross_corpus`); stored beside the run
    (`core.store.evaluation_store`), never among its own files."""
    key: str  # its folder's name: which corpora, which label range
    corpora: dict[str, str]  # corpus name -> where it was read from
    label_range: tuple[float, float] | None  # the corpora's label scale where it differs from the run's
    table: pd.DataFrame  # index (corpus, split, attribute); columns ESTIMATE_COLUMNS
    predictions: pd.DataFrame  # one row per utterance: corpus, split, speaker, <a>, <a>_predicted
    created: str = ""  # ISO 8601, UTC
    notes: list[str] = field(default_factory=list)  # what a reader must know (e.g. rows without labels left out)


EVALUATIONS = "evaluations"  # the folder, inside a run's folder
# where earlier versions kept the test predictions they computed for older runs: not an evaluation (a run's test
# predictions have one home, `RunStore.add_test_predictions`)
_OLD_TEST_PREDICTIONS = "test-predictions"


def evaluation_dir(run_dir: Path, key: str) -> Path:
    return run_dir / EVALUATIONS / key


def save_evaluation(run_dir: Path, evaluation: Evaluation) -> Path:
    """Write an evaluation's tables, then its marker (with its fields and every file's digest)."""
    folder = evaluation_dir(run_dir, evaluation.key)
    with reported_write(folder / COMPLETE):  # a read-only store: a `StoreWriteError` naming it, not an OSError
        (folder / COMPLETE).unlink(missing_ok=True)
    files = []
    for name, table in (("table", evaluation.table), ("predictions", evaluation.predictions)):
        atomic_write_bytes(folder / f"{name}.parquet", parquet_bytes(table))
        files.append(folder / f"{name}.parquet")
    write_marker(folder / COMPLETE, files, {
        "corpora": evaluation.corpora, "created": evaluation.created, "notes": evaluation.notes,
        "label_range": list(evaluation.label_range) if evaluation.label_range else None})
    return folder


def load_evaluation(run_dir: Path, key: str) -> Evaluation | None:
    """The stored evaluation, or None when absent, incomplete or corrupted (then with a warning, and
    deleted so that it is computed again)."""
    folder = evaluation_dir(run_dir, key)
    if not (folder / COMPLETE).exists():
        return None
    try:
        fields = verify_marker(folder / COMPLETE)
    except CorruptFileError as err:
        discard(err, "evaluating again", folder / COMPLETE)
        return None
    table = pd.read_parquet(folder / "table.parquet")
    return Evaluation(key, dict(fields.get("corpora", {})),
                      tuple(fields["label_range"]) if fields.get("label_range") else None,
                      table.reindex(columns=ESTIMATE_COLUMNS), pd.read_parquet(folder / "predictions.parquet"),
                      fields.get("created", ""), list(fields.get("notes", [])))


def stored_evaluations(run_dir: Path) -> list[Evaluation]:
    """Every complete cross-corpus evaluation of a run, newest first (not the run's own test predictions)."""
    root = run_dir / EVALUATIONS
    keys = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != _OLD_TEST_PREDICTIONS) if root.exists() else []
    found = [e for key in keys if (e := load_evaluation(run_dir, key)) is not None]
    return sorted(found, key=lambda e: e.created, reverse=True)

