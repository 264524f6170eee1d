"""The run store (SPEC 6): runs under `<root>/<run_id>/`, and every path and file name inside a run.

A run without its `COMPLETE` marker is never listed or loaded. `COMPLETE` records the digests of the
run's top-level files (model.pt, config.json, history.jsonl, corpus.parquet, ...), checked when each
is read (`Run.file`). Files rewritten while a run trains are journaled instead (`RunWriter`).
A run's own files cannot be rebuilt, so a corrupted one is an error that reaches the user.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from core.config import RunConfig
from core.errors import UserError
from core.store.atomic import (COMPLETE, CorruptFileError, StoreWriteError, atomic_write_bytes, bytes_digest, json_bytes,
                               json_default, npy_bytes, parquet_bytes, read_checked_json, reported_write, torch_bytes,
                               torch_load, verify_file, write_checked_json, write_marker, write_with_digest)
from core.store.checkpoint import Checkpoint
from core.store.paths import default_runs_dir
from core.store.run_info import SCHEMA_VERSION, RunInfo, RunMetrics

# torch is imported where a model's state is read or written: listing runs and reading their results (the app's
# map page) needs none (`core/__init__` says why)
ModelState = dict[str, Any]  # a model bundle as `core.model.bundle.bundle_state` gives it: tensors, config, names

TEST_PREDICTIONS = "test_predictions.parquet"  # a finished run's per-utterance test predictions
JOURNAL = "checkpoints/checksums.json"  # digests of the files of a run being trained (`RunWriter`)
_RUN_HINT = "a finished run cannot be rebuilt: train it again (train --force), or delete its folder and import it again"
_RESUME_HINT = "run the same command again with --force to start this run over"


class RunNotFoundError(UserError, LookupError):
    pass


class RunLockedError(UserError, RuntimeError):
    """Another process is training this run."""


@dataclass(frozen=True)
class Run:
    run_id: str
    dir: Path
    info: RunInfo
    # digests `COMPLETE` records for the top-level files; None for a run finished before checksums
    # existed (nothing to check)
    checksums: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def config(self) -> RunConfig:
        return self.info.config

    def file(self, name: str) -> Path:
        """The path of top-level file `name` (which may not exist), checked against `COMPLETE`'s digest.

        Raises:
            CorruptFileError: the file differs from what the run finished with, is missing though
                recorded, or appeared after the run finished.
        """
        return _finished_file(self.dir, name, self.checksums)

    def load_model_state(self) -> ModelState:
        """The kept model's state (`core.model.bundle.load_bundle` makes the networks of it).

        Raises: CorruptFileError: `model.pt` changed since the run finished."""
        return torch_load(self.file("model.pt"))

    def history(self) -> pd.DataFrame:
        """Per-epoch metrics (`core.training.train.EpochStats` fields; empty for imported models)."""
        return _read_history(self.file("history.jsonl"))

    def metrics(self) -> RunMetrics | None:
        path = self.file("metrics.json")
        if not path.exists():
            return None
        data = json.loads(path.read_text())  # keys a later version may add are left out
        return RunMetrics(data.get("test_ccc", {}), int(data.get("best_epoch", -1)), data.get("test_intervals", {}))

    def test_predictions(self) -> pd.DataFrame | None:
        """Per-utterance test predictions (`core.evaluate.evaluation.prediction_table`), their one home: written when
        the run finishes, or later by `RunStore.add_test_predictions`; None in imported runs and older runs."""
        if self.checksums is not None and TEST_PREDICTIONS not in self.checksums:
            return None  # none, or a file `COMPLETE` does not vouch for (a crash while they were added): not trusted
        path = self.file(TEST_PREDICTIONS)
        return pd.read_parquet(path) if path.exists() else None

    def corpus(self) -> pd.DataFrame | None:
        """The utterance table the run was trained on (None for imported models)."""
        path = self.file("corpus.parquet")
        return pd.read_parquet(path) if path.exists() else None

    def centroids(self) -> np.ndarray | None:
        """(K, H) centroids of the kept model's clustering space (None for imported models)."""
        path = self.file("centroids.npy")
        return np.load(path) if path.exists() else None

    def analysis_dir(self, key: str) -> Path:
        """Folder of one (network, corpus) analysis of the run: latent space, projections (`core.store.analysis_store`)."""
        return self.dir / "analysis" / key


class RunStore:
    """The runs under one folder (default `$SER_RUNS_DIR` or `data/runs`)."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else default_runs_dir()

    def list(self) -> list[Run]:
        """Completed runs, newest first; a run whose marker or config.json is corrupted is left out, with a warning."""
        runs = []
        for folder in self.root.glob("*/") if self.root.exists() else []:
            if (folder / COMPLETE).exists():
                try:
                    runs.append(self.load(folder.name))
                except CorruptFileError as err:
                    warnings.warn(f"leaving run {folder.name} out: {err}", stacklevel=2)
        return sorted(runs, key=lambda r: r.info.created, reverse=True)

    def interrupted(self) -> list[tuple[RunInfo, pd.DataFrame]]:
        """Trainings that stopped after a finished epoch (a checkpoint, no `COMPLETE`), newest first, each with
        the corpus it trains on: `core.training.train.train` with that config and corpus resumes it. A folder whose
        files do not read (a crash before the first epoch, corruption) is left out."""
        found = []
        for folder in self.root.glob("*/") if self.root.exists() else []:
            if (folder / COMPLETE).exists() or not (folder / "checkpoints" / "last.pt").exists():
                continue
            try:
                info = RunInfo.from_dict(json.loads((folder / "config.json").read_text()))
                found.append((info, pd.read_parquet(folder / "corpus.parquet")))
            except (OSError, ValueError, KeyError, TypeError) as err:
                warnings.warn(f"not resuming run {folder.name}: {err}", stacklevel=2)
        return sorted(found, key=lambda item: item[0].created, reverse=True)

    def load(self, run_id: str) -> Run:
        """Raises: RunNotFoundError: no such completed run. CorruptFileError: its marker or config.json changed."""
        folder = self.root / run_id
        if not (folder / COMPLETE).exists():
            known = [p.name for p in self.root.glob("*/") if (p / COMPLETE).exists()] if self.root.exists() else []
            raise RunNotFoundError(f"no completed run {run_id!r} in {self.root}; available: {sorted(known) or 'none'}")
        checksums = read_checked_json(folder / COMPLETE, _RUN_HINT).get("files")
        info = json.loads(_finished_file(folder, "config.json", checksums).read_text())
        return Run(run_id, folder, RunInfo.from_dict(info), checksums)

    def find(self, run_id: str) -> Run | None:  # the completed run `run_id`, or None
        return self.load(run_id) if (self.root / run_id / COMPLETE).exists() else None

    def latest(self) -> Run:
        runs = self.list()
        if not runs:
            raise RunNotFoundError(f"no runs in {self.root}: train one (python -m core train) or import the "
                                   "published models (python -m core import-official)")
        return runs[0]

    def get(self, run_id: str | None) -> Run:
        """Run `run_id`, or the newest run when None (what every command that takes an optional run does)."""
        return self.load(run_id) if run_id else self.latest()

    def add_test_predictions(self, run: Run, predictions: pd.DataFrame) -> Run:
        """Store the test predictions of a run that finished before runs stored them (computed since from its
        model): in the run's folder like any run's, then vouched for by its `COMPLETE`, rewritten once every file
        it vouched for is checked. Skipped while another process holds the run's lock (a retraining), and, with a
        warning, where the store cannot be written (a full disk, a read-only folder): the caller has them in memory.

        Raises:
            CorruptFileError: one of the run's files changed since it finished.
        """
        try:
            return self._add_test_predictions(run, predictions)
        except StoreWriteError as err:
            warnings.warn(f"the test predictions of run {run.run_id} are not stored: {err}", stacklevel=2)
            return run

    def _add_test_predictions(self, run: Run, predictions: pd.DataFrame) -> Run:
        with reported_write(run.dir / ".lock"), open(run.dir / ".lock", "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return run
            try:
                for name in run.checksums or {}:
                    run.file(name)
                atomic_write_bytes(run.dir / TEST_PREDICTIONS, parquet_bytes(predictions))
                if run.checksums is not None:  # a run from before checksums: nothing is vouched for
                    write_marker(run.dir / COMPLETE, _run_files(run.dir))
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return self.load(run.run_id)

    @contextlib.contextmanager
    def writer(self, info: RunInfo) -> Iterator["RunWriter"]:
        """Open run `info.run_id` for training under an exclusive lock; yields a `RunWriter`.

        Raises:
            RunLockedError: another process holds the lock (it is trying to train the same run).
        """
        folder = self.root / info.run_id
        with reported_write(folder / ".lock"):  # a read-only store says so here, before any work
            folder.mkdir(parents=True, exist_ok=True)
            lock = open(folder / ".lock", "a+")
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunLockedError(f"run {info.run_id} is being trained by another process "
                                     f"(lock {folder / '.lock'}); wait for it or stop it") from None
            try:
                writer = RunWriter(folder, _stamped(info))
                if not (folder / COMPLETE).exists():  # a retrain (force) keeps the old info until done
                    writer.write_bytes("config.json", json_bytes(writer.info.to_dict()))
                yield writer
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def reader(self, info: RunInfo) -> "RunWriter":
        """The run being trained, read-only and unlocked: what the other ranks of a torchrun job resume from."""
        return RunWriter(self.root / info.run_id, info, read_only=True)

    def save_complete(self, info: RunInfo, model: ModelState, corpus: pd.DataFrame | None = None) -> Run:
        """Write a finished run (an imported model; with `corpus`, a run explored over that utterance table)
        in one step: a temporary folder renamed into place.

        Raises:
            StoreWriteError: the store is full or read-only; the temporary folder is removed, the store unchanged.
        """
        tmp = self.root / f".tmp-{info.run_id}-{uuid.uuid4().hex[:8]}"
        final = self.root / info.run_id
        try:
            with reported_write(tmp):
                tmp.mkdir(parents=True)
            atomic_write_bytes(tmp / "config.json", json_bytes(_stamped(info).to_dict()))
            atomic_write_bytes(tmp / "model.pt", torch_bytes(model))
            if corpus is not None:
                atomic_write_bytes(tmp / "corpus.parquet", parquet_bytes(corpus))
            write_marker(tmp / COMPLETE, _run_files(tmp))
            with reported_write(final):
                if final.exists():  # an older incomplete attempt: replace it
                    shutil.rmtree(final)
                os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # a half-written run takes no room (gone once renamed)
        return self.load(info.run_id)


class RunWriter:
    """The files of a run being trained. Every write is atomic; `complete()` writes the marker last.

    These files are rewritten every epoch, so a marker written after them could not tell a crash
    between file and marker from corruption. A journal (`checkpoints/checksums.json`) records each
    file's digest in two steps instead: before the rename it accepts the old and the new content,
    after it only the new. Wherever a crash lands, the file matches the journal; changed bytes match
    nothing. A file the journal does not name was written before checksums existed and is trusted.
    """

    def __init__(self, folder: Path, info: RunInfo, read_only: bool = False):
        self.dir, self.info, self.read_only = folder, info, read_only
        self._journal: dict[str, list[dict[str, Any]]] | None = None  # run-relative name -> accepted digests

    def write_bytes(self, name: str, data: bytes) -> None:
        """Atomically write the run file `name` (relative to the run folder), journaling its digest."""
        assert not self.read_only, "a reader of a run being trained never writes (ranks other than 0)"
        journal, digest = self._accepted(), bytes_digest(data)
        self._save_journal({**journal, name: [*journal.get(name, []), digest]})  # a crash now: either version passes
        write_with_digest(self.dir / name, data, digest)
        self._save_journal({**journal, name: [digest]})

    def save_corpus(self, corpus: pd.DataFrame) -> None:
        """The utterance table the run is trained on, so analysis needs no path to it later."""
        self.write_bytes("corpus.parquet", parquet_bytes(corpus))

    def resume(self) -> Checkpoint | None:
        """The training state after the last completed epoch, or None for a fresh run.

        Raises:
            CorruptFileError: the checkpoint, or the history or assignments it resumes with, changed
                since written (the message says to start over with --force).
        """
        if not (self.dir / "checkpoints" / "last.pt").exists():
            return None
        history, assignments = (self._verified(n) for n in ("history.jsonl", "assignments.npy"))
        last_centroids = self.dir / "last_centroids.npy"
        state = torch_load(self._verified("checkpoints/last.pt"))
        epoch = state["epoch"]
        return Checkpoint(
            epoch=epoch, best_score=state["best_score"], model=state["model"],
            # written before issue 10: "sgd", "adam" and "torch_rng" at the top level
            optimisers=state.get("optimisers") or {"sgd": state["sgd"], "adam": state["adam"]},
            rng=state.get("rng") or {"cpu": state["torch_rng"]},
            previous_pseudo=state["previous_pseudo"].numpy(),
            history=_read_history(history).iloc[: state["n_history"]],
            assignments=np.load(assignments)[:epoch],
            last_centroids=np.load(self._verified(last_centroids.name)) if last_centroids.exists() else np.zeros((0, 0)))

    def finish_epoch(self, checkpoint: Checkpoint, best: ModelState | None = None) -> None:
        """Record a completed epoch: the best model's state when this epoch is the best, history, assignments
        and centroids, then the checkpoint, written last: resuming trusts only what the checkpoint names."""
        if best is not None:
            self.write_bytes("checkpoints/best.pt", torch_bytes(best))
        import torch
        rows = checkpoint.history.to_dict("records")
        self.write_bytes("history.jsonl", "".join(json.dumps(r, sort_keys=True, default=json_default) + "\n"
                                                  for r in rows).encode())
        self.write_bytes("assignments.npy", npy_bytes(checkpoint.assignments))
        self.write_bytes("last_centroids.npy", npy_bytes(checkpoint.last_centroids))
        self.write_bytes("checkpoints/last.pt", torch_bytes({
            "epoch": checkpoint.epoch, "best_score": checkpoint.best_score, "model": checkpoint.model,
            "optimisers": checkpoint.optimisers, "rng": checkpoint.rng,
            "previous_pseudo": torch.from_numpy(checkpoint.previous_pseudo), "n_history": len(rows)}))

    def load_best_state(self) -> ModelState:
        """Raises: CorruptFileError: `checkpoints/best.pt` changed since written."""
        return torch_load(self._verified("checkpoints/best.pt"))

    def history(self) -> pd.DataFrame:
        return _read_history(self._verified("history.jsonl"))

    def reset(self) -> None:
        """Forget a previous attempt (force retraining): checkpoints, history, the marker and the journal."""
        (self.dir / COMPLETE).unlink(missing_ok=True)
        for name in ["checkpoints/last.pt", "checkpoints/best.pt", "history.jsonl"]:
            (self.dir / name).unlink(missing_ok=True)
        self._save_journal({})  # never read: it may be what is corrupted; every file is written again
        self.write_bytes("config.json", json_bytes(self.info.to_dict()))

    def complete(self, model: ModelState, centroids: np.ndarray, metrics: RunMetrics,
                 test_predictions: pd.DataFrame | None = None) -> Run:
        """Write the kept model, its centroids, metrics and test predictions, check every top-level file
        against the journal, then write `COMPLETE` vouching for them."""
        self.write_bytes("centroids.npy", npy_bytes(np.asarray(centroids, np.float32)))
        self.write_bytes("metrics.json", json_bytes(dataclasses.asdict(metrics)))
        if test_predictions is not None:
            self.write_bytes(TEST_PREDICTIONS, parquet_bytes(test_predictions))
        self.write_bytes("model.pt", torch_bytes(model))
        files = _run_files(self.dir)
        for path in files:
            self._verified(path.name)
        write_marker(self.dir / COMPLETE, files)
        return RunStore(self.dir.parent).load(self.info.run_id)

    def _verified(self, name: str) -> Path:
        return verify_file(self.dir / name, self._accepted().get(name), _RESUME_HINT)

    def _accepted(self) -> dict[str, list[dict[str, Any]]]:
        if self._journal is None or self.read_only:  # a reader sees what the writer journaled since
            path = self.dir / JOURNAL
            self._journal = read_checked_json(path, _RESUME_HINT) if path.exists() else {}
        return self._journal

    def _save_journal(self, journal: dict[str, list[dict[str, Any]]]) -> None:
        write_checked_json(self.dir / JOURNAL, journal)
        self._journal = journal


def _stamped(info: RunInfo) -> RunInfo:
    return dataclasses.replace(info, schema_version=SCHEMA_VERSION,
                               created=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def _finished_file(folder: Path, name: str, checksums: dict[str, Any] | None) -> Path:
    """`Run.file`: the path, checked against the digests `COMPLETE` recorded (None: nothing recorded)."""
    path = folder / name
    if checksums is None:
        return path
    if name in checksums:
        return verify_file(path, checksums[name], _RUN_HINT)
    if path.exists():
        raise CorruptFileError(path, "not among the files the run finished with", _RUN_HINT)
    return path


def _run_files(folder: Path) -> list[Path]:
    """The files `COMPLETE` vouches for: the run folder's top-level files, not the lock, temporaries or folders."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.name != COMPLETE)


def _read_history(path: Path) -> pd.DataFrame:
    if not path.exists():
        return pd.DataFrame()
    return pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line.strip()])
