"""All persistence: atomic writes, checksums, the feature store and the run store (SPEC 6).

Only this module builds paths under the data folder and hashes files. Every file is written to a
temporary name and then renamed into place, and completion markers are written last, so a crash never
leaves a file that is later trusted.

Checksums catch what a crash cannot: bytes changed after they were written (bit rot, an edit, a
truncated copy). A completion marker records the size and SHA-256 of each file it vouches for, and a
checksum of its own content; files rewritten while a run trains are journaled instead (`RunWriter`).
A mismatch raises `CorruptFileError` naming the file. Caches are then rebuilt with a warning (a
feature shard is extracted again, a pack rebuilt from its shards, a latent space or projection
recomputed); a run's own files cannot be rebuilt, so the error reaches the user. Markers written
before checksums existed (an empty `COMPLETE`, JSON without digests) carry nothing to check and are
trusted as they are. SHA-256 reads about 1 GB/s; a file is hashed once per process while its inode,
size and timestamps stay the same.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import io
import json
import os
import shutil
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import torch

from core.config import AudioConfig, ChunkConfig, FeatureConfig, ModelConfig, RunConfig, config_hash
from core.model import EmotionCNN

SCHEMA_VERSION = 1
COMPLETE = "COMPLETE"
JOURNAL = "checkpoints/checksums.json"  # digests of the files of a run being trained (`RunWriter`)
_SELF_CHECKSUM = "marker_sha256"  # the key under which a checked JSON file records its own digest
_RUN_HINT = "a finished run cannot be rebuilt: train it again (train --force), or delete its folder and import it again"
_RESUME_HINT = "run the same command again with --force to start this run over"


class RunNotFoundError(LookupError):
    pass


class CorruptFileError(RuntimeError):
    """A stored file whose bytes differ from what was recorded when it was written.

    Attributes:
        path: the file.
        reason: what differs (size, SHA-256, an unreadable marker).
    """

    def __init__(self, path: Path, reason: str, hint: str = ""):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}" + (f"; {hint}" if hint else ""))


class RunLockedError(RuntimeError):
    """Another process is training this run."""


def default_data_dir() -> Path:
    """`$SER_DATA_DIR`, else the repository's `data/` folder (the package is installed editable)."""
    return Path(os.environ.get("SER_DATA_DIR") or Path(__file__).resolve().parents[1] / "data")


def default_runs_dir() -> Path:
    """`$SER_RUNS_DIR`, else `<data>/runs`."""
    return Path(os.environ.get("SER_RUNS_DIR") or default_data_dir() / "runs")


# --- atomic writes -------------------------------------------------------------------------------

def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and an atomic rename."""
    _atomic_write(Path(path), data, _bytes_digest(data))


def _atomic_write(path: Path, data: bytes, digest: dict[str, Any]) -> None:
    """`atomic_write_bytes`, remembering `data`'s digest: the marker written next need not read it back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _digests[os.path.abspath(path)] = (_stat_key(path.stat()), digest)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, _json_bytes(obj))


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write_bytes(path, _npy_bytes(array))


def atomic_torch_save(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, _torch_bytes(obj))


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, indent=1, sort_keys=True, default=_json_default).encode()


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array))
    return buffer.getvalue()


def _torch_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (tuple, np.ndarray)):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


# --- checksums -----------------------------------------------------------------------------------

# Digests this process wrote or computed, by absolute path, valid while the file's (inode, size, mtime,
# ctime) is unchanged: the app reruns its script on every click and must not rehash a 1 GB pack each time.
_digests: dict[str, tuple[tuple[int, int, int, int], dict[str, Any]]] = {}


def _stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _bytes_digest(data: bytes) -> dict[str, Any]:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _file_digest(path: Path) -> dict[str, Any]:
    """`{"size": bytes, "sha256": hex}` of a file; hashed at most once per process while it is unchanged."""
    name = os.path.abspath(path)
    with open(name, "rb") as fh:
        key = _stat_key(os.fstat(fh.fileno()))  # of the file being read, even if replaced meanwhile
        cached = _digests.get(name)
        if cached is not None and cached[0] == key:
            return cached[1]
        digest = {"size": key[1], "sha256": hashlib.file_digest(fh, "sha256").hexdigest()}
    _digests[name] = (key, digest)
    return digest


def _verify_file(path: Path, accepted: dict[str, Any] | list[dict[str, Any]] | None, hint: str = "") -> Path:
    """`path`, after checking it against its recorded digest (or any of several).

    Args:
        accepted: digest(s) from `_file_digest`; None when nothing was recorded (a file written before
            checksums existed), and then the file is trusted as it is.
        hint: what the user can do, appended to the error.

    Raises:
        CorruptFileError: the file is missing, or its size or SHA-256 differs from every accepted digest.
    """
    if accepted is None:
        return path
    accepted = [accepted] if isinstance(accepted, dict) else accepted
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CorruptFileError(path, "missing, though recorded as written", hint) from None
    if size not in {d["size"] for d in accepted}:  # truncated or appended to: no need to read it
        expected = " or ".join(str(d["size"]) for d in accepted)
        raise CorruptFileError(path, f"{size} bytes where {expected} were written (truncated or overwritten)", hint)
    found = _file_digest(path)["sha256"]
    if found not in {d["sha256"] for d in accepted}:
        expected = " or ".join(d["sha256"][:16] for d in accepted)
        raise CorruptFileError(path, f"changed since it was written (SHA-256 {found[:16]}…, recorded {expected}…)", hint)
    return path


def _write_checked_json(path: Path, obj: dict[str, Any]) -> None:
    """JSON that records a SHA-256 of its own content, so an edited marker or journal is detected too."""
    body = json.loads(json.dumps(obj, default=_json_default))  # exactly what a reader will parse
    atomic_write_json(path, {**body, _SELF_CHECKSUM: _json_sha256(body)})


def _read_checked_json(path: Path, hint: str = "") -> dict[str, Any]:
    """The content of a `_write_checked_json` file. An empty file or one without a checksum was
    written by an earlier version (the old `COMPLETE` was empty) and is returned as it is.

    Raises:
        CorruptFileError: not a JSON object, or its content does not match its checksum.
    """
    try:
        text = path.read_text()
        obj = json.loads(text) if text.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptFileError(path, f"unreadable ({err})", hint) from None
    if not isinstance(obj, dict):
        raise CorruptFileError(path, "not a JSON object", hint)
    recorded = obj.pop(_SELF_CHECKSUM, None)
    if recorded is not None and recorded != _json_sha256(obj):
        raise CorruptFileError(path, "changed since it was written (its own checksum does not match)", hint)
    return obj


def _json_sha256(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _write_marker(path: Path, files: Iterable[Path], fields: dict[str, Any] | None = None) -> None:
    """A completion marker: `fields`, plus the digest of each file (named relative to the marker's folder)."""
    digests = {p.relative_to(path.parent).as_posix(): _file_digest(p) for p in files}
    _write_checked_json(path, {**(fields or {}), "files": digests})


def _verify_marker(path: Path, hint: str = "") -> dict[str, Any]:
    """A completion marker's fields, after checking every file it vouches for.

    Raises:
        CorruptFileError: the marker or one of its files changed since it was written.
    """
    marker = _read_checked_json(path, hint)
    for name, digest in marker.get("files", {}).items():
        _verify_file(path.parent / name, digest, hint)
    return marker


def _discard(err: CorruptFileError, what: str, *paths: Path) -> None:
    """Warn that a corrupted cache entry is rebuilt, and delete it (its marker first)."""
    warnings.warn(f"{err}: {what}", stacklevel=3)
    for path in paths:
        path.unlink(missing_ok=True)


# --- feature store -------------------------------------------------------------------------------

@dataclass(frozen=True)
class FeatureSet:
    """The mel features of a corpus, memory-mapped as one contiguous (total_frames, F) float32 array.

    Utterance i is `frames[offsets[i] : offsets[i] + stored_frames[i]]`; clips shorter than one chunk
    are stored padded with silence, and `n_frames` keeps their true length.
    """
    files: pd.Index  # utterance ids, in the order of the arrays below
    frames: np.ndarray  # (total_frames, F) float32, np.memmap
    offsets: np.ndarray  # (N,) int64
    stored_frames: np.ndarray  # (N,) int64, >= chunk_frames
    n_frames: np.ndarray  # (N,) int64, true length before padding

    def utterance(self, i: int) -> np.ndarray:
        return self.frames[self.offsets[i]: self.offsets[i] + self.stored_frames[i]]


class FeatureStore:
    """Mel features keyed by audio file identity (path, size, mtime) under one feature configuration.

    Layout: `<root>/features/<config_hash12>/shard-*.npy` with a `shard-*.json` index written after
    its data (a shard without an index was interrupted and is never read), and `packs/<corpus>.npy`:
    a corpus's utterances copied contiguously, built once from the shards, with `packs/<corpus>.json`
    written after it. Each JSON records its data file's SHA-256: a shard that fails it is deleted and
    its files extracted again, a pack that fails it is rebuilt from the shards.
    """

    def __init__(self, root: Path, audio: AudioConfig, features: FeatureConfig, chunks: ChunkConfig):
        self.settings = {"audio": dataclasses.asdict(audio), "features": dataclasses.asdict(features),
                         "chunk_frames": chunks.chunk_frames}
        self.dir = Path(root) / "features" / config_hash(self.settings)[:12]
        self.n_mels = features.n_mels

    @staticmethod
    def file_key(path: str | Path) -> str:
        """Identity of an audio file: a rewrite or a touch re-extracts it."""
        p = Path(path).resolve()
        st = p.stat()
        return hashlib.sha1(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:24]

    def index(self) -> dict[str, tuple[str, int, int, int]]:
        """key -> (shard name, offset, stored_frames, n_frames) over every completed, intact shard.

        A shard that fails its checksum is deleted with a warning: its files count as not extracted,
        so the extraction that called this extracts them again. Reads every shard once per process.
        """
        out = {}
        for meta in sorted(self.dir.glob("shard-*.json")):
            try:
                entries = _verify_marker(meta).get("entries")
                if not isinstance(entries, list):
                    raise CorruptFileError(meta, "no list of entries")
            except CorruptFileError as err:
                _discard(err, "discarding this feature shard; its files will be extracted again",
                         meta, meta.with_suffix(".npy"))
                continue
            for key, offset, stored, n in entries:
                out[key] = (meta.stem, offset, stored, n)
        return out

    def write_shard(self, entries: list[tuple[str, np.ndarray, int]]) -> None:
        """Append one shard: (key, (stored_frames, F) float32 features, true n_frames) per file."""
        if not entries:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.dir / "config.json", self.settings)
        name = f"shard-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        lengths = [len(feats) for _, feats, _ in entries]
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
        data = self.dir / f"{name}.npy"
        atomic_save_npy(data, np.concatenate([f for _, f, _ in entries]).astype(np.float32))
        index = [[key, int(o), int(s), int(n)] for (key, _, n), o, s in zip(entries, offsets, lengths)]
        _write_marker(self.dir / f"{name}.json", [data], {"entries": index})  # last: marks the shard complete

    def pack(self, files: pd.Index, keys: list[str]) -> FeatureSet:
        """One contiguous memory-mapped array for these files, in this order (built once, then reused).

        A pack that fails its checksum is rebuilt from the shards, with a warning.

        Raises:
            KeyError: a key has no extracted features.
        """
        corpus = hashlib.sha1("\n".join(keys).encode()).hexdigest()[:16]
        data, meta = self.dir / "packs" / f"{corpus}.npy", self.dir / "packs" / f"{corpus}.json"
        m = None
        if meta.exists():
            try:
                m = _verify_marker(meta)
            except CorruptFileError as err:
                _discard(err, "rebuilding this feature pack from the shards", meta, data)
        if m is None:
            self._build_pack(keys, data, meta)
            m = _read_checked_json(meta)
        return FeatureSet(files=files, frames=np.load(data, mmap_mode="r"), offsets=np.asarray(m["offsets"]),
                          stored_frames=np.asarray(m["stored_frames"]), n_frames=np.asarray(m["n_frames"]))

    def _build_pack(self, keys: list[str], data: Path, meta: Path) -> None:
        index = self.index()
        missing = [k for k in keys if k not in index]
        if missing:
            raise KeyError(f"{len(missing)} files have no extracted features in {self.dir}")
        entries = [index[k] for k in keys]
        stored = np.array([e[2] for e in entries], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(stored)[:-1]]).astype(np.int64)
        data.parent.mkdir(parents=True, exist_ok=True)
        tmp = data.with_name(f".{data.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:  # stream shard slices into a memmap: a corpus larger than RAM never sits in memory
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(int(stored.sum()), self.n_mels))
            shards: dict[str, np.ndarray] = {}
            for (shard, offset, n_stored, _), start in zip(entries, offsets):
                src = shards.setdefault(shard, np.load(self.dir / f"{shard}.npy", mmap_mode="r"))
                out[start: start + n_stored] = src[offset: offset + n_stored]
            out.flush()
            del out
            os.replace(tmp, data)
        finally:
            tmp.unlink(missing_ok=True)
        _write_marker(meta, [data], {"offsets": offsets, "stored_frames": stored, "n_frames": [e[3] for e in entries]})


# --- models on disk ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Normalisation:
    """Training-split statistics: per-mel-bin feature mean/std and per-attribute label mean/std."""
    feature_mean: np.ndarray  # (F,) float64
    feature_std: np.ndarray  # (F,) float64
    label_mean: dict[str, float]
    label_std: dict[str, float]


@dataclass
class ModelBundle:
    """The networks of a run and what is needed to use them.

    A joint model is one network predicting several attributes; an imported published model holds
    three per-attribute networks, each with its own clustering space and cluster head.
    """
    networks: dict[str, EmotionCNN]  # name -> network; `network.cfg.attributes` says what it predicts
    normalisation: Normalisation
    config: RunConfig


def save_bundle(path: Path, bundle: ModelBundle) -> None:
    """Self-describing checkpoint (nanoGPT style); loadable with `torch.load(weights_only=True)`."""
    atomic_write_bytes(path, _bundle_bytes(bundle))


def _bundle_bytes(bundle: ModelBundle) -> bytes:
    norm = bundle.normalisation
    return _torch_bytes({
        "schema_version": SCHEMA_VERSION,
        "config": bundle.config.to_dict(),
        "networks": {name: {"model_config": dataclasses.asdict(net.cfg), "n_clusters": net.n_clusters,
                            "state_dict": net.state_dict()} for name, net in bundle.networks.items()},
        "normalisation": {"feature_mean": torch.from_numpy(np.asarray(norm.feature_mean, np.float64)),
                          "feature_std": torch.from_numpy(np.asarray(norm.feature_std, np.float64)),
                          "label_mean": dict(norm.label_mean), "label_std": dict(norm.label_std)},
    })


def load_bundle(path: Path) -> ModelBundle:
    """A bundle written by `save_bundle` (unchecked: `Run.load_bundle` checks the run's model first)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    config = RunConfig.from_dict(state["config"])
    networks = {}
    for name, entry in state["networks"].items():
        model_cfg = ModelConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in entry["model_config"].items()})
        net = EmotionCNN(model_cfg, config.chunks.chunk_frames, config.features.n_mels)
        net.reset_cluster_head(entry["n_clusters"])
        net.load_state_dict(entry["state_dict"])
        networks[name] = net.eval()
    n = state["normalisation"]
    return ModelBundle(networks, Normalisation(n["feature_mean"].numpy(), n["feature_std"].numpy(),
                                               dict(n["label_mean"]), dict(n["label_std"])), config)


# --- run store -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    run_id: str
    dir: Path
    info: dict[str, Any]  # config.json: kind, name, created, source, config
    # digests `COMPLETE` records for the top-level files; None while training or for a run finished
    # before checksums existed (nothing to check)
    checksums: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def config(self) -> RunConfig:
        return RunConfig.from_dict(self.info["config"])

    def load_bundle(self) -> ModelBundle:
        """Raises: CorruptFileError: `model.pt` changed since the run finished."""
        return load_bundle(self.file("model.pt"))

    def file(self, name: str) -> Path:
        """The path of top-level file `name` (which may not exist), checked against `COMPLETE`'s digest.

        Raises:
            CorruptFileError: the file differs from what the run finished with, is missing though
                recorded, or appeared after the run finished.
        """
        path = self.dir / name
        if self.checksums is None:
            return path
        if name in self.checksums:
            return _verify_file(path, self.checksums[name], _RUN_HINT)
        if path.exists():
            raise CorruptFileError(path, "not among the files the run finished with", _RUN_HINT)
        return path


class RunStore:
    """Runs under `<root>/<run_id>/`; a run without its `COMPLETE` marker is never listed or loaded.

    `COMPLETE` records the digests of the run's top-level files (model.pt, config.json, history.jsonl,
    corpus.parquet, ...), checked when each is read (`Run.file`).
    """

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
        return sorted(runs, key=lambda r: r.info.get("created", ""), reverse=True)

    def load(self, run_id: str) -> Run:
        """Raises: RunNotFoundError: no such completed run. CorruptFileError: its marker or config.json changed."""
        folder = self.root / run_id
        if not (folder / COMPLETE).exists():
            known = [p.name for p in self.root.glob("*/") if (p / COMPLETE).exists()] if self.root.exists() else []
            raise RunNotFoundError(f"no completed run {run_id!r} in {self.root}; available: {sorted(known) or 'none'}")
        run = Run(run_id, folder, {}, _read_checked_json(folder / COMPLETE, _RUN_HINT).get("files"))
        return dataclasses.replace(run, info=json.loads(run.file("config.json").read_text()))

    def find(self, run_id: str) -> Run | None:
        """The completed run `run_id`, or None."""
        return self.load(run_id) if (self.root / run_id / COMPLETE).exists() else None

    @contextlib.contextmanager
    def writer(self, run_id: str, info: dict[str, Any]):
        """Open run `run_id` for training under an exclusive lock; yields a `RunWriter`.

        Raises:
            RunLockedError: another process holds the lock (it is trying to train the same run).
        """
        folder = self.root / run_id
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunLockedError(f"run {run_id} is being trained by another process "
                                     f"(lock {folder / '.lock'}); wait for it or stop it") from None
            try:
                writer = RunWriter(run_id, folder, self._info(run_id, info))
                if not (folder / COMPLETE).exists():  # a retrain (force) keeps the old info until done
                    writer.save_json("config", writer.info)
                yield writer
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def _info(run_id: str, info: dict[str, Any]) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "run_id": run_id,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **info}

    def latest(self) -> Run:
        runs = self.list()
        if not runs:
            raise RunNotFoundError(f"no runs in {self.root}: train one (python -m core train) or import the "
                                   "published models (python -m core import-official)")
        return runs[0]

    def save_complete(self, run_id: str, info: dict[str, Any], bundle: ModelBundle,
                      extra_files: Iterable[tuple[str, bytes]] = ()) -> Run:
        """Write a finished run in one step: a temporary folder renamed into place, marker inside."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{run_id}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        atomic_write_json(tmp / "config.json", self._info(run_id, info))
        save_bundle(tmp / "model.pt", bundle)
        for name, data in extra_files:
            atomic_write_bytes(tmp / name, data)
        _write_marker(tmp / COMPLETE, _run_files(tmp))
        final = self.root / run_id
        if final.exists():  # an older incomplete attempt: replace it
            shutil.rmtree(final)
        os.rename(tmp, final)
        return self.load(run_id)


def _run_files(folder: Path) -> list[Path]:
    """The files `COMPLETE` vouches for: the run folder's top-level files, not the lock, temporaries or folders."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.name != COMPLETE)


class RunWriter:
    """The files of a run being trained. Every write is atomic; `complete()` writes the marker last.

    These files are rewritten every epoch, so a marker written after them could not tell a crash
    between file and marker from corruption. A journal (`checkpoints/checksums.json`) records each
    file's digest in two steps instead: before the rename it accepts the old and the new content,
    after it only the new. Wherever a crash lands, the file matches the journal; changed bytes match
    nothing. A file the journal does not name was written before checksums existed and is trusted.
    """

    def __init__(self, run_id: str, folder: Path, info: dict[str, Any]):
        self.run_id, self.dir, self.info = run_id, folder, info
        self._journal: dict[str, list[dict[str, Any]]] | None = None  # run-relative name -> accepted digests

    def write_bytes(self, name: str, data: bytes) -> None:
        """Atomically write the run file `name` (relative to the run folder), journaling its digest."""
        journal, digest = self._accepted(), _bytes_digest(data)
        self._save_journal({**journal, name: [*journal.get(name, []), digest]})  # a crash now: either version passes
        _atomic_write(self.dir / name, data, digest)
        self._save_journal({**journal, name: [digest]})

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The training state after the last completed epoch, or None for a fresh run.

        Raises:
            CorruptFileError: the checkpoint, or the history or assignments a resume reads with it,
                changed since written (the message says to start over with --force).
        """
        if not (self.dir / "checkpoints" / "last.pt").exists():
            return None
        for name in ("history.jsonl", "assignments.npy"):
            self._verified(name)
        path = self._verified("checkpoints/last.pt")
        return torch.load(path, map_location="cpu", weights_only=True)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        self.write_bytes("checkpoints/last.pt", _torch_bytes(state))

    def save_best(self, bundle: ModelBundle) -> None:
        self.write_bytes("checkpoints/best.pt", _bundle_bytes(bundle))

    def load_best(self) -> ModelBundle:
        """Raises: CorruptFileError: `checkpoints/best.pt` changed since written."""
        return load_bundle(self._verified("checkpoints/best.pt"))

    def save_history(self, rows: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r, sort_keys=True, default=_json_default) + "\n" for r in rows)
        self.write_bytes("history.jsonl", text.encode())

    def save_array(self, name: str, array: np.ndarray) -> None:
        self.write_bytes(f"{name}.npy", _npy_bytes(array))

    def save_json(self, name: str, obj: Any) -> None:
        self.write_bytes(f"{name}.json", _json_bytes(obj))

    def reset(self) -> None:
        """Forget a previous attempt (force retraining): checkpoints, history, the marker and the journal."""
        (self.dir / COMPLETE).unlink(missing_ok=True)
        for name in ["checkpoints/last.pt", "checkpoints/best.pt", "history.jsonl"]:
            (self.dir / name).unlink(missing_ok=True)
        self._save_journal({})  # never read: it may be what is corrupted; every file is written again
        self.save_json("config", self.info)

    def complete(self, bundle: ModelBundle) -> Run:
        """Write model.pt, check every top-level file against the journal, then write `COMPLETE` vouching for them."""
        self.write_bytes("model.pt", _bundle_bytes(bundle))
        files = _run_files(self.dir)
        for path in files:
            self._verified(path.name)
        _write_marker(self.dir / COMPLETE, files)
        return RunStore(self.dir.parent).load(self.run_id)

    def _verified(self, name: str) -> Path:
        return _verify_file(self.dir / name, self._accepted().get(name), _RESUME_HINT)

    def _accepted(self) -> dict[str, list[dict[str, Any]]]:
        if self._journal is None:
            path = self.dir / JOURNAL
            self._journal = _read_checked_json(path, _RESUME_HINT) if path.exists() else {}
        return self._journal

    def _save_journal(self, journal: dict[str, list[dict[str, Any]]]) -> None:
        _write_checked_json(self.dir / JOURNAL, journal)
        self._journal = journal


def read_history(run: Run) -> pd.DataFrame:
    """Per-epoch metrics of a trained run (empty for imported models)."""
    path = run.file("history.jsonl")
    if not path.exists():
        return pd.DataFrame()
    return pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line.strip()])


def read_json(run: Run, name: str) -> Any:
    path = run.file(f"{name}.json")
    return json.loads(path.read_text()) if path.exists() else None


# --- latent spaces, projections and the corpus of a run ------------------------------------------

def save_corpus(writer: RunWriter, corpus: pd.DataFrame) -> None:
    """The utterance table a run was trained on, so analysis needs no path to it later."""
    buffer = io.BytesIO()
    corpus.to_parquet(buffer)
    writer.write_bytes("corpus.parquet", buffer.getvalue())


def read_corpus(run: Run) -> pd.DataFrame | None:
    path = run.file("corpus.parquet")
    return pd.read_parquet(path) if path.exists() else None


def read_centroids(run: Run) -> np.ndarray | None:
    path = run.file("centroids.npy")
    return np.load(path) if path.exists() else None


def analysis_dir(run: Run, key: str) -> Path:
    """Folder of one (network, corpus) analysis of a run: latent space, projections, tables."""
    return run.dir / "analysis" / key


def save_latent(folder: Path, latent) -> None:
    """Write a `core.latent.LatentSpace`; `COMPLETE` last, with every file's digest, so a half-written
    or since-corrupted one is recomputed."""
    (folder / COMPLETE).unlink(missing_ok=True)
    arrays = {name: getattr(latent, name) for name in ("chunk_cluster", "cluster", "cluster_share", "centroids")}
    for space, values in latent.chunk_embeddings.items():
        arrays |= {f"chunk_{space}": values, f"utterance_{space}": latent.embeddings[space]}
    for name, values in arrays.items():
        atomic_save_npy(folder / f"{name}.npy", values)
    buffer = io.BytesIO()
    latent.predictions.to_parquet(buffer)
    atomic_write_bytes(folder / "predictions.parquet", buffer.getvalue())
    atomic_write_json(folder / "latent.json", {"n_chunks": latent.n_chunks, "centroid_source": latent.centroid_source,
                                               "spaces": list(latent.chunk_embeddings)})
    files = [folder / f"{name}.npy" for name in arrays] + [folder / "predictions.parquet", folder / "latent.json"]
    _write_marker(folder / COMPLETE, files)


def load_latent(folder: Path):
    """The stored `LatentSpace`, or None when absent, incomplete, or corrupted (then with a warning, and
    deleted so the caller recomputes it). Chunk arrays are memory-mapped."""
    from core.latent import LatentSpace
    if not (folder / COMPLETE).exists():
        return None
    try:
        _verify_marker(folder / COMPLETE)
    except CorruptFileError as err:
        _discard(err, "computing this latent space again", folder / COMPLETE)
        return None
    meta = json.loads((folder / "latent.json").read_text())
    predictions = pd.read_parquet(folder / "predictions.parquet")
    return LatentSpace(
        files=predictions.index, n_chunks=meta["n_chunks"],
        chunk_embeddings={s: np.load(folder / f"chunk_{s}.npy", mmap_mode="r") for s in meta["spaces"]},
        embeddings={s: np.load(folder / f"utterance_{s}.npy") for s in meta["spaces"]},
        **{name: np.load(folder / f"{name}.npy") for name in ("chunk_cluster", "cluster", "cluster_share", "centroids")},
        centroid_source=meta["centroid_source"], predictions=predictions)


def save_projection(folder: Path, key: str, coords: np.ndarray, params: dict[str, Any]) -> None:
    data = folder / "projections" / f"{key}.npy"
    atomic_save_npy(data, coords.astype(np.float32))
    _write_marker(data.with_suffix(".json"), [data], params)  # last: marks the projection complete


def load_projection(folder: Path, key: str) -> np.ndarray | None:
    """The stored (N, n_components) map, or None when absent or corrupted (then with a warning, and
    deleted so the caller fits it again)."""
    data, meta = folder / "projections" / f"{key}.npy", folder / "projections" / f"{key}.json"
    if not meta.exists():
        return None
    try:
        _verify_marker(meta)
    except CorruptFileError as err:
        _discard(err, "fitting this projection again", meta, data)
        return None
    return np.load(data) if data.exists() else None
