"""The feature store: mel features of audio files, cached once per feature configuration (lhotse's
storage writers are the model: it stores and reads arrays, the `FeatureSet` type lives with the data).

Only this module builds paths under the feature cache.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
import hashlib
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from core.config import AudioConfig, ChunkConfig, FeatureConfig, config_hash
from core.store.atomic import (CorruptFileError, atomic_save_npy, atomic_write_json, discard, read_checked_json,
                               reported_write, reserve_space, verify_marker, write_marker)


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
                entries = verify_marker(meta).get("entries")
                if not isinstance(entries, list):
                    raise CorruptFileError(meta, "no list of entries")
            except CorruptFileError as err:
                discard(err, "discarding this feature shard; its files will be extracted again",
                         meta, meta.with_suffix(".npy"))
                continue
            for key, offset, stored, n in entries:
                out[key] = (meta.stem, offset, stored, n)
        return out

    def write_shard(self, entries: list[tuple[str, np.ndarray, int]]) -> None:
        """Append one shard: (key, (stored_frames, F) float32 features, true n_frames) per file.

        Raises:
            StoreWriteError: the disk is full or read-only; the shards written before stay, and are used by a rerun.
        """
        if not entries:
            return
        with reported_write(self.dir):
            self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.dir / "config.json", self.settings)
        name = f"shard-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        lengths = [len(feats) for _, feats, _ in entries]
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
        data = self.dir / f"{name}.npy"
        atomic_save_npy(data, np.concatenate([f for _, f, _ in entries]).astype(np.float32))
        index = [[key, int(o), int(s), int(n)] for (key, _, n), o, s in zip(entries, offsets, lengths)]
        write_marker(self.dir / f"{name}.json", [data], {"entries": index})  # last: marks the shard complete

    def pack(self, files: pd.Index, keys: list[str]) -> FeatureSet:
        """One contiguous memory-mapped array for these files, in this order (built once, then reused).

        A pack that fails its checksum is rebuilt from the shards, with a warning.

        Raises:
            KeyError: a key has no extracted features.
        """
        data = self.pack_path(keys)
        meta = data.with_suffix(".json")
        m = None
        if meta.exists():
            try:
                m = verify_marker(meta)
            except CorruptFileError as err:
                discard(err, "rebuilding this feature pack from the shards", meta, data)
        if m is None:
            self._build_pack(keys, data, meta)
            m = read_checked_json(meta)
        return FeatureSet(files=files, frames=np.load(data, mmap_mode="r"), offsets=np.asarray(m["offsets"]),
                          stored_frames=np.asarray(m["stored_frames"]), n_frames=np.asarray(m["n_frames"]))

    def pack_path(self, keys: list[str]) -> Path:
        """The pack file of these feature keys, in this order."""
        corpus = hashlib.sha1("\n".join(keys).encode()).hexdigest()[:16]
        return self.dir / "packs" / f"{corpus}.npy"

    def shard_paths(self) -> list[Path]:
        """The data files of every completed shard."""
        return [meta.with_suffix(".npy") for meta in sorted(self.dir.glob("shard-*.json"))]

    def _build_pack(self, keys: list[str], data: Path, meta: Path) -> None:
        index = self.index()
        missing = [k for k in keys if k not in index]
        if missing:
            raise KeyError(f"{len(missing)} files have no extracted features in {self.dir}")
        entries = [index[k] for k in keys]
        stored = np.array([e[2] for e in entries], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(stored)[:-1]]).astype(np.int64)
        tmp = data.with_name(f".{data.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        with reported_write(data, int(stored.sum()) * self.n_mels * 4):
            data.parent.mkdir(parents=True, exist_ok=True)
            try:  # stream shard slices into a memmap: a corpus larger than RAM never sits in memory
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(int(stored.sum()), self.n_mels))
                reserve_space(tmp)  # a full disk fails here, with a message, not as a SIGBUS while the map is written
                shards: dict[str, np.ndarray] = {}
                for (shard, offset, n_stored, _), start in zip(entries, offsets):
                    src = shards.setdefault(shard, np.load(self.dir / f"{shard}.npy", mmap_mode="r"))
                    out[start: start + n_stored] = src[offset: offset + n_stored]
                out.flush()
                del out
                os.replace(tmp, data)
            finally:
                tmp.unlink(missing_ok=True)
        write_marker(meta, [data], {"offsets": offsets, "stored_frames": stored, "n_frames": [e[3] for e in entries]})

