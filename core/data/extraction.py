"""Extract a corpus's mel features into the feature store: once, in parallel, incrementally.

Worker processes decode and compute features in batches; the parent writes them as store shards
every few seconds, so an interrupted extraction keeps what it finished and a rerun does only the rest.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import time
import types
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Callable

import pandas as pd
import torch

from core.audio.frontend import load_features
from core.config import AudioConfig, ChunkConfig, FeatureConfig
from core.errors import UserError
from core.runtime.distributed import World
from core.store.atomic import adopt_digests, file_digests, known_digests
from core.store.feature_store import FeatureSet
from core.store.feature_store import FeatureStore


MIN_FILES_FOR_WORKERS = 2000  # in-process extraction runs at ~300 clips/s; spawning workers costs ~4 s
SHARD_SECONDS = 10.0  # features are written as a shard at least this often: what a kill or a full disk can lose


class CorpusAudioError(UserError, ValueError):
    """Some files of a corpus could not be used; `problems` maps each path to its reason."""

    def __init__(self, problems: dict[str, str]):
        self.problems = problems
        lines = [f"  {path}: {reason}" for path, reason in list(problems.items())[:20]]
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{len(problems)} audio files cannot be used:\n" + "\n".join(lines) + more)


@dataclass(frozen=True)
class ExtractionStats:
    n_files: int  # files in the corpus
    n_extracted: int  # newly extracted in this call (0 on a rerun)
    audio_seconds: float  # duration of the newly extracted audio
    seconds: float  # wall time

    @property
    def real_time_factor(self) -> float:
        """Wall time / audio duration (lower is faster)."""
        return self.seconds / self.audio_seconds if self.audio_seconds else 0.0


@dataclass(frozen=True)
class Extraction:
    features: FeatureSet  # the corpus's usable utterances, packed
    stats: ExtractionStats


def extract_features(table: pd.DataFrame, store: FeatureStore, audio: AudioConfig, features: FeatureConfig,
                     chunks: ChunkConfig, *, workers: int | None = None, batch_files: int = 16,
                     skip_unreadable: bool = False, progress: Callable[[int, int], None] | None = None,
                     world: World | None = None) -> Extraction:
    """Make sure every utterance of `table` has features in `store`, then return them packed.

    Args:
        table: utterance table (index `file`, column `path`).
        workers: processes; 1 extracts in this process. Default: this process for fewer than
            `MIN_FILES_FOR_WORKERS` files to extract, else one per CPU core (per rank: its share of the cores).
        skip_unreadable: warn and leave unreadable files out instead of raising.
        progress: optional callback(done, total) over the files still to extract (this rank's).
        world: the processes of a torchrun job: each extracts its share of the files into shards of its
            own; rank 0 alone builds the pack, which the others then open.

    Returns:
        the corpus's FeatureSet (rows dropped by `chunks.short_policy == "drop"` or `skip_unreadable`
        are missing from it) and extraction statistics.

    Raises:
        CorpusAudioError: unreadable files (all listed) or clips refused by `short_policy == "error"`,
            raised after everything readable has been stored, so a fixed rerun redoes nothing.
        StoreWriteError: the feature store's disk is full or read-only; the shards written before are kept, and
            a rerun extracts only the files they miss.
    """
    t0, world = time.perf_counter(), world or World()
    keys = {file: store.file_key(path) for file, path in table["path"].items() if os.path.isfile(path)}
    problems = {path: "file not found" for file, path in table["path"].items() if file not in keys}
    _hash_together(store.shard_paths(), world)  # each rank hashes its share of the shards for all of them
    known = store.index()
    todo = [(file, table.at[file, "path"], key) for file, key in keys.items() if key not in known]
    todo.sort(key=lambda item: os.path.getsize(item[1]))  # batches of similar length: less STFT padding
    todo = todo[world.rank:: world.size]  # interleaved: every rank gets short and long files alike
    jobs = [todo[i: i + batch_files] for i in range(0, len(todo), batch_files)]
    done, n_new, audio_seconds, pending, last_flush = 0, 0, 0.0, [], time.perf_counter()
    for results in _run_jobs(jobs, audio, features, chunks, workers):
        for key, path, value, n_frames, seconds in results:
            if isinstance(value, str):
                problems[path] = value
            else:
                pending.append((key, value, n_frames))
                n_new, audio_seconds = n_new + 1, audio_seconds + seconds
        done += len(results)
        if progress:
            progress(done, len(todo))
        if time.perf_counter() - last_flush > SHARD_SECONDS or sum(len(v) for _, v, _ in pending) > 2_000_000:
            store.write_shard(pending)  # bounded memory, and a kill loses at most SHARD_SECONDS of work
            pending, last_flush = [], time.perf_counter()
    store.write_shard(pending)
    world.barrier()  # every rank's shards are written
    problems = {path: reason for part in world.gather_objects(problems) for path, reason in part.items()}

    _hash_together(store.shard_paths(), world)  # the ranks' new shards (each knows its own already)
    index = store.index()
    usable = [f for f in table.index if f in keys and keys[f] in index]
    short = [f for f in usable if index[keys[f]][3] < chunks.chunk_frames]
    if short and chunks.short_policy == "error":
        problems |= {table.at[f, "path"]: f"shorter than one chunk ({chunks.chunk_frames} frames); "
                     "chunks.short_policy is 'error'" for f in short}
    if short and chunks.short_policy == "drop":
        warnings.warn(f"dropping {len(short)} clips shorter than one chunk (chunks.short_policy='drop')")
        dropped = set(short)
        usable = [f for f in usable if f not in dropped]
    if problems and not skip_unreadable:
        raise CorpusAudioError(problems)
    if problems:
        warnings.warn(str(CorpusAudioError(problems)))
    stats = ExtractionStats(len(table), n_new, audio_seconds, time.perf_counter() - t0)
    files, usable_keys = pd.Index(usable, name="file"), [keys[f] for f in usable]
    # No two ranks ever build the same pack: rank 0 first; then the first rank of each other machine, which
    # finds it on a shared filesystem and builds its own copy on a disk of its own; then everyone else.
    turn = 0 if world.is_main else 1 if world.local_rank == 0 else 2
    for t in range(3):
        if t == turn:
            packed = store.pack(files, usable_keys)
        world.barrier()
        if t == 0:  # the ranks sharing rank 0's pack trust its check instead of reading it again
            _hash_together([], world)
    return Extraction(packed, stats)


def _hash_together(paths: list, world: World) -> None:
    """Every file's SHA-256 taken once in the job: rank r hashes paths r, r + size, ... (unless it already
    knows them) and every rank adopts all digests (`core.store.atomic.adopt_digests`: only for files in the very
    state that was hashed). With no paths, the ranks share what they know already."""
    if world.size == 1:
        return
    file_digests(paths[world.rank:: world.size])
    for found in world.gather_objects(known_digests()):
        adopt_digests(found)


def _run_jobs(jobs, audio, features, chunks, workers):
    if workers is None:
        # Spawned workers cost ~4 s to start (each imports torch): worth it only for large corpora.
        few = sum(map(len, jobs)) < MIN_FILES_FOR_WORKERS
        # under torchrun the ranks of a machine share its cores
        workers = 1 if few else max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield _extract_batch(job, audio, features, chunks)
        return
    # spawn, not fork: forking a process whose torch/OpenMP threads are running can deadlock
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        with _no_main_module():  # every worker starts inside map(), which submits all jobs at once
            results = pool.map(_extract_batch, jobs, *[[x] * len(jobs) for x in (audio, features, chunks)])
        yield from results


@contextlib.contextmanager
def _no_main_module():
    """Spawned workers re-run the parent's `__main__` file; under Streamlit that is the app script (the
    workers would start the app). They need nothing from it: hide it while they start."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _extract_batch(job, audio: AudioConfig, features: FeatureConfig, chunks: ChunkConfig):
    """[(file, path, key)] -> [(key, path, (stored, F) features or an error string, n_frames, seconds)]."""
    keys = {path: key for _, path, key in job}
    loaded = load_features(list(keys), audio, features, chunks)
    out = [(keys[path], path, reason, 0, 0.0) for path, reason in loaded.errors.items()]
    return out + [(keys[c.path], c.path, c.features, c.n_frames, c.n_samples / audio.sampling_rate) for c in loaded.clips]
