"""All persistence: atomic writes, the feature store and the run store (SPEC 6).

Only this module builds paths under the data folder. Every file is written to a temporary name and
then renamed into place, and completion markers are written last, so a crash never leaves a file that
is later trusted.
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
from dataclasses import dataclass
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


class RunNotFoundError(LookupError):
    pass


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
    path = Path(path)
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


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1, sort_keys=True, default=_json_default).encode())


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array))
    atomic_write_bytes(path, buffer.getvalue())


def atomic_torch_save(path: Path, obj: Any) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (tuple, np.ndarray)):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


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
    a corpus's utterances copied contiguously, built once from the shards.
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
        """key -> (shard name, offset, stored_frames, n_frames) over every completed shard."""
        out = {}
        for meta in sorted(self.dir.glob("shard-*.json")):
            for key, offset, stored, n in json.loads(meta.read_text())["entries"]:
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
        atomic_save_npy(self.dir / f"{name}.npy", np.concatenate([f for _, f, _ in entries]).astype(np.float32))
        index = [[key, int(o), int(s), int(n)] for (key, _, n), o, s in zip(entries, offsets, lengths)]
        atomic_write_json(self.dir / f"{name}.json", {"entries": index})  # last: marks the shard complete

    def pack(self, files: pd.Index, keys: list[str]) -> FeatureSet:
        """One contiguous memory-mapped array for these files, in this order (built once, then reused).

        Raises:
            KeyError: a key has no extracted features.
        """
        corpus = hashlib.sha1("\n".join(keys).encode()).hexdigest()[:16]
        data, meta = self.dir / "packs" / f"{corpus}.npy", self.dir / "packs" / f"{corpus}.json"
        if not meta.exists():
            self._build_pack(keys, data, meta)
        m = json.loads(meta.read_text())
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
        atomic_write_json(meta, {"offsets": offsets, "stored_frames": stored, "n_frames": [e[3] for e in entries]})


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
    norm = bundle.normalisation
    atomic_torch_save(path, {
        "schema_version": SCHEMA_VERSION,
        "config": bundle.config.to_dict(),
        "networks": {name: {"model_config": dataclasses.asdict(net.cfg), "n_clusters": net.n_clusters,
                            "state_dict": net.state_dict()} for name, net in bundle.networks.items()},
        "normalisation": {"feature_mean": torch.from_numpy(np.asarray(norm.feature_mean, np.float64)),
                          "feature_std": torch.from_numpy(np.asarray(norm.feature_std, np.float64)),
                          "label_mean": dict(norm.label_mean), "label_std": dict(norm.label_std)},
    })


def load_bundle(path: Path) -> ModelBundle:
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

    @property
    def config(self) -> RunConfig:
        return RunConfig.from_dict(self.info["config"])

    def load_bundle(self) -> ModelBundle:
        return load_bundle(self.dir / "model.pt")


class RunStore:
    """Runs under `<root>/<run_id>/`; a run without its `COMPLETE` marker is never listed or loaded."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else default_runs_dir()

    def list(self) -> list[Run]:
        """Completed runs, newest first."""
        runs = [self.load(p.name) for p in self.root.glob("*/") if (p / COMPLETE).exists()] if self.root.exists() else []
        return sorted(runs, key=lambda r: r.info.get("created", ""), reverse=True)

    def load(self, run_id: str) -> Run:
        folder = self.root / run_id
        if not (folder / COMPLETE).exists():
            known = [p.name for p in self.root.glob("*/") if (p / COMPLETE).exists()] if self.root.exists() else []
            raise RunNotFoundError(f"no completed run {run_id!r} in {self.root}; available: {sorted(known) or 'none'}")
        return Run(run_id, folder, json.loads((folder / "config.json").read_text()))

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
                info = self._info(run_id, info)
                if not (folder / COMPLETE).exists():  # a retrain (force) keeps the old info until done
                    atomic_write_json(folder / "config.json", info)
                yield RunWriter(run_id, folder, info)
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
        atomic_write_bytes(tmp / COMPLETE, b"")
        final = self.root / run_id
        if final.exists():  # an older incomplete attempt: replace it
            shutil.rmtree(final)
        os.rename(tmp, final)
        return self.load(run_id)



class RunWriter:
    """The files of a run being trained. Every write is atomic; `complete()` writes the marker last."""

    def __init__(self, run_id: str, folder: Path, info: dict[str, Any]):
        self.run_id, self.dir, self.info = run_id, folder, info

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The training state after the last completed epoch, or None for a fresh run."""
        path = self.dir / "checkpoints" / "last.pt"
        return torch.load(path, map_location="cpu", weights_only=True) if path.exists() else None

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        atomic_torch_save(self.dir / "checkpoints" / "last.pt", state)

    def save_best(self, bundle: ModelBundle) -> None:
        save_bundle(self.dir / "checkpoints" / "best.pt", bundle)

    def load_best(self) -> ModelBundle:
        return load_bundle(self.dir / "checkpoints" / "best.pt")

    def save_history(self, rows: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r, sort_keys=True, default=_json_default) + "\n" for r in rows)
        atomic_write_bytes(self.dir / "history.jsonl", text.encode())

    def save_array(self, name: str, array: np.ndarray) -> None:
        atomic_save_npy(self.dir / f"{name}.npy", array)

    def save_json(self, name: str, obj: Any) -> None:
        atomic_write_json(self.dir / f"{name}.json", obj)

    def reset(self) -> None:
        """Forget a previous attempt (force retraining): checkpoints, history and the marker."""
        (self.dir / COMPLETE).unlink(missing_ok=True)
        for path in [self.dir / "checkpoints" / "last.pt", self.dir / "checkpoints" / "best.pt", self.dir / "history.jsonl"]:
            path.unlink(missing_ok=True)
        atomic_write_json(self.dir / "config.json", self.info)

    def complete(self, bundle: ModelBundle) -> Run:
        save_bundle(self.dir / "model.pt", bundle)
        atomic_write_bytes(self.dir / COMPLETE, b"")
        return Run(self.run_id, self.dir, json.loads((self.dir / "config.json").read_text()))


def read_history(run: Run) -> pd.DataFrame:
    """Per-epoch metrics of a trained run (empty for imported models)."""
    path = run.dir / "history.jsonl"
    if not path.exists():
        return pd.DataFrame()
    return pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line.strip()])


def read_json(run: Run, name: str) -> Any:
    path = run.dir / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


# --- latent spaces, projections and the corpus of a run ------------------------------------------

def save_corpus(writer: RunWriter, corpus: pd.DataFrame) -> None:
    """The utterance table a run was trained on, so analysis needs no path to it later."""
    buffer = io.BytesIO()
    corpus.to_parquet(buffer)
    atomic_write_bytes(writer.dir / "corpus.parquet", buffer.getvalue())


def read_corpus(run: Run) -> pd.DataFrame | None:
    path = run.dir / "corpus.parquet"
    return pd.read_parquet(path) if path.exists() else None


def read_centroids(run: Run) -> np.ndarray | None:
    path = run.dir / "centroids.npy"
    return np.load(path) if path.exists() else None


def analysis_dir(run: Run, key: str) -> Path:
    """Folder of one (network, corpus) analysis of a run: latent space, projections, tables."""
    return run.dir / "analysis" / key


def save_latent(folder: Path, latent) -> None:
    """Write a `core.latent.LatentSpace`; `COMPLETE` last, so a half-written one is recomputed."""
    (folder / COMPLETE).unlink(missing_ok=True)
    for space, values in latent.chunk_embeddings.items():
        atomic_save_npy(folder / f"chunk_{space}.npy", values)
        atomic_save_npy(folder / f"utterance_{space}.npy", latent.embeddings[space])
    for name in ("chunk_cluster", "cluster", "cluster_share", "centroids"):
        atomic_save_npy(folder / f"{name}.npy", getattr(latent, name))
    buffer = io.BytesIO()
    latent.predictions.to_parquet(buffer)
    atomic_write_bytes(folder / "predictions.parquet", buffer.getvalue())
    atomic_write_json(folder / "latent.json", {"n_chunks": latent.n_chunks, "centroid_source": latent.centroid_source,
                                               "spaces": list(latent.chunk_embeddings)})
    atomic_write_bytes(folder / COMPLETE, b"")


def load_latent(folder: Path):
    """The stored `LatentSpace`, or None when absent or incomplete. Chunk arrays are memory-mapped."""
    from core.latent import LatentSpace
    if not (folder / COMPLETE).exists():
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
    atomic_save_npy(folder / "projections" / f"{key}.npy", coords.astype(np.float32))
    atomic_write_json(folder / "projections" / f"{key}.json", params)  # last: marks the projection complete


def load_projection(folder: Path, key: str) -> np.ndarray | None:
    data, meta = folder / "projections" / f"{key}.npy", folder / "projections" / f"{key}.json"
    return np.load(data) if meta.exists() and data.exists() else None
