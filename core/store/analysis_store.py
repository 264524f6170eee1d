"""Files of a run's analyses: latent spaces and fitted maps, each in the folder `Run.analysis_dir` names.

Caches, not results: each is written with a completion marker last and recomputed by its caller when
absent, incomplete or corrupted (then with a warning). A save the disk refuses raises `StoreWriteError`: the
caller keeps its result in memory (`core.explore.exploration` says so to the user).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.store.atomic import (COMPLETE, CorruptFileError, atomic_save_npy, atomic_write_bytes, atomic_write_json, discard,
                               parquet_bytes, reported_write, verify_marker, write_marker)
from core.store.latent import LatentSpace

OPTIONAL = ("chunk_predictions", "chunk_start_frames")  # `LatentSpace` arrays a latent space may lack


@dataclass(frozen=True)
class Novelty:
    """The corpus's own nearest-neighbour distances and the threshold beyond which a clip is flagged."""
    threshold: float  # the PERCENTILE-th percentile of `distances`
    percentile: float
    distances: np.ndarray  # (n_queries,) float32 nearest-other-utterance distances of the measured utterances
    n_corpus: int  # utterances in the corpus (the measured ones are all of them, or a sample)

    def is_out(self, distance: np.ndarray) -> np.ndarray:
        """Which of these nearest-corpus distances lie beyond the threshold."""
        return np.asarray(distance) > self.threshold


def save_latent(folder: Path, latent: LatentSpace) -> None:
    """Write a `LatentSpace`; `COMPLETE` last, with every file's digest, so a half-written
    or since-corrupted one is recomputed.

    Raises: StoreWriteError: the folder is full or read-only (what was there is not trusted until rewritten)."""
    with reported_write(folder / COMPLETE):
        (folder / COMPLETE).unlink(missing_ok=True)
    arrays = {name: getattr(latent, name) for name in ("chunk_cluster", "cluster", "cluster_share", "centroids",
                                                       *OPTIONAL) if getattr(latent, name) is not None}
    for space, values in latent.chunk_embeddings.items():
        # "chunk_cluster" names the chunks' clusters: the embeddings of the "cluster" space go under another name
        arrays |= {f"chunk_embedding_{space}": values, f"utterance_{space}": latent.embeddings[space]}
    for name, values in arrays.items():
        atomic_save_npy(folder / f"{name}.npy", values)
    atomic_write_bytes(folder / "predictions.parquet", parquet_bytes(latent.predictions))
    atomic_write_json(folder / "latent.json", {"n_chunks": latent.n_chunks, "centroid_source": latent.centroid_source,
                                               "spaces": list(latent.chunk_embeddings)})
    files = [folder / f"{name}.npy" for name in arrays] + [folder / "predictions.parquet", folder / "latent.json"]
    write_marker(folder / COMPLETE, files)


def load_latent(folder: Path) -> LatentSpace | None:
    """The stored `LatentSpace`, or None when absent, incomplete, or corrupted (then with a warning, and
    deleted so the caller recomputes it). Chunk arrays are memory-mapped."""
    if not (folder / COMPLETE).exists():
        return None
    try:
        verify_marker(folder / COMPLETE)
    except CorruptFileError as err:
        discard(err, "computing this latent space again", folder / COMPLETE)
        return None
    meta = json.loads((folder / "latent.json").read_text())
    predictions = pd.read_parquet(folder / "predictions.parquet")
    return LatentSpace(
        files=predictions.index, n_chunks=meta["n_chunks"],
        chunk_embeddings={s: np.load(folder / f"chunk_embedding_{s}.npy", mmap_mode="r") for s in meta["spaces"]},
        embeddings={s: np.load(folder / f"utterance_{s}.npy") for s in meta["spaces"]},
        **{name: np.load(folder / f"{name}.npy") for name in ("chunk_cluster", "cluster", "cluster_share", "centroids")},
        centroid_source=meta["centroid_source"], predictions=predictions,
        **{name: np.load(folder / f"{name}.npy") for name in OPTIONAL if (folder / f"{name}.npy").exists()})


def save_projection(folder: Path, key: str, coords: np.ndarray, params: dict[str, Any]) -> None:
    data = folder / "projections" / f"{key}.npy"
    atomic_save_npy(data, coords.astype(np.float32))
    write_marker(data.with_suffix(".json"), [data], params)  # last: marks the projection complete


def load_projection(folder: Path, key: str) -> np.ndarray | None:
    """The stored (N, n_components) map, or None when absent or corrupted (then with a warning, and
    deleted so the caller fits it again)."""
    data = folder / "projections" / f"{key}.npy"
    return np.load(data) if _trusted(data, "fitting this projection again") else None


def save_novelty(folder: Path, novelty: Novelty) -> None:
    data = folder / "novelty" / "distances.npy"
    atomic_save_npy(data, novelty.distances)
    write_marker(data.with_suffix(".json"), [data], {"threshold": novelty.threshold, "percentile": novelty.percentile,
                                                    "n_corpus": novelty.n_corpus})


def load_novelty(folder: Path, percentile: float) -> Novelty | None:
    """The stored corpus reference distances for this percentile, or None when absent or corrupted (then with
    a warning, and deleted so the caller computes them again)."""
    data = folder / "novelty" / "distances.npy"
    meta = data.with_suffix(".json")
    if not meta.exists():
        return None
    try:
        m = verify_marker(meta)
    except CorruptFileError as err:
        discard(err, "computing the corpus's nearest-neighbour distances again", meta, data)
        return None
    if m.get("percentile") != percentile:
        return None
    return Novelty(float(m["threshold"]), float(m["percentile"]), np.load(data), int(m["n_corpus"]))


def save_table(folder: Path, key: str, table: pd.DataFrame, params: dict[str, Any]) -> None:
    data = folder / "tables" / f"{key}.parquet"
    atomic_write_bytes(data, parquet_bytes(table))
    write_marker(data.with_suffix(".json"), [data], params)  # last: marks the table complete


def load_table(folder: Path, key: str) -> pd.DataFrame | None:
    """A stored derived table (e.g. the suspects' ranking), or None when absent or corrupted (then with a warning,
    and deleted so the caller computes it again)."""
    data = folder / "tables" / f"{key}.parquet"
    return pd.read_parquet(data) if _trusted(data, "computing this table again") else None


def _trusted(data: Path, again: str) -> bool:
    """Whether cache file `data` is there and matches the marker beside it (`<data>.json`, written last); a
    corrupted one is deleted with its marker and a warning saying what happens instead (`again`)."""
    meta = data.with_suffix(".json")
    if not meta.exists():
        return False
    try:
        verify_marker(meta)
    except CorruptFileError as err:
        discard(err, again, meta, data)
        return False
    return data.exists()
