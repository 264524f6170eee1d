"""Explore a run's latent space over a corpus: embeddings, map, cluster-emotion analysis (`core.explore.locator` places
new clips in it).

Everything is computed once per (run, network, corpus) and cached in the run's `analysis/` folder. What
computes imports torch, scikit-learn or UMAP where it is called, on a cache miss: reading a cached space, map
and novelty reference (the app's map page) imports none of them (`core/__init__` says why). A cache the disk
refuses (full, read-only) is no error for exploring: the result is used from memory and `on_unsaved` told why.
"""
from __future__ import annotations

import dataclasses
import difflib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

from core.config import UmapConfig, config_hash
from core.data.corpus_formats import load_manifest
from core.data.manifest import corpus_fingerprint
from core.data.synthetic import make_demo_corpus
from core.errors import UserError
from core.explore.novelty import PERCENTILE, Novelty, corpus_novelty
from core.store.analysis_store import load_latent, load_novelty, load_projection, save_latent, save_novelty, save_projection
from core.store.atomic import StoreWriteError
from core.store.latent import LATENT_FORMAT_VERSION, LatentSpace
from core.store.paths import default_cache_dir, default_demo_dir
from core.store.run_store import Run

if TYPE_CHECKING:
    from core.explore.analysis import DependenceReport
    from core.runtime.distributed import World


class ExploreError(UserError, ValueError):
    """A run and corpus that cannot be explored (e.g. an imported model without a corpus)."""


class CacheNotSavedWarning(UserWarning):
    """A result computed but not cached: the run's analysis folder is full or read-only. It is used from memory,
    and computed again the next time."""


def keep_cached(save: Callable[[], None], what: str, on_unsaved: Callable[[str], None] | None = None) -> bool:
    """Run `save` (a cache's `save_*`); a write the disk refuses is said, to `on_unsaved` (default: a
    `CacheNotSavedWarning`), not raised: a cache that cannot be saved is no reason not to show what it holds.

    Returns:
        whether the cache was saved.
    """
    try:
        save()
        return True
    except StoreWriteError as err:
        message = (f"{what} is used from memory: it could not be saved for next time ({err.path}: {err.reason}); "
                   f"{err.remedy} to keep it (until then it is computed each time)")
        if on_unsaved is None:
            warnings.warn(message, CacheNotSavedWarning, stacklevel=3)
        else:
            on_unsaved(message)
        return False


@dataclass(frozen=True)
class Exploration:
    run: Run
    network: str  # whose latent space (imported models: one network per attribute)
    corpus: pd.DataFrame  # the utterance table, rows in `latent.files` order
    latent: LatentSpace
    folder: Path  # the cache folder of this (run, network, corpus)
    fingerprint: str = ""  # the corpus's (`core.data.manifest.corpus_fingerprint`): its curation log's key


def explore(run: Run, corpus: pd.DataFrame | None = None, *, network: str | None = None,
            cache_root: Path | None = None, progress: Callable[[str, int, int], None] | None = None,
            world: World | None = None, on_unsaved: Callable[[str], None] | None = None) -> Exploration:
    """The latent space of `run` over `corpus` (default: the corpus it was trained on), cached.

    Args:
        network: for runs with several networks (imported published models), whose space to use;
            default: the run's primary network (arousal for the published models).
        cache_root: feature-store root (default: data/cache).
        progress: optional callback(stage, done, total).
        world: the processes of a torchrun job: they share the feature extraction and the embedding
            pass; rank 0 writes the latent space.
        on_unsaved: told why, when the latent space cannot be cached (`keep_cached`).

    Raises:
        ExploreError: no corpus given for a run that has none, or an unknown network.
    """
    if corpus is None:
        corpus = run.corpus()
        if corpus is None:
            raise ExploreError(f"run {run.run_id} has no corpus of its own (an imported model): give one (--corpus)")
    networks = run.info.networks
    network = network or run.info.primary_network or networks[0]
    if network not in networks:
        raise ExploreError(f"unknown network {network!r}; run {run.run_id} has {sorted(networks)}")
    # the format version is part of the key: a latent space computed another way is recomputed, never mixed in
    fingerprint = corpus_fingerprint(corpus)
    folder = run.analysis_dir(f"{network}-{fingerprint[:12]}-v{LATENT_FORMAT_VERSION}")
    latent = load_latent(folder)
    missing = latent is None if world is None else world.broadcast(latent is None)  # rank 0 decides
    if missing:  # a latent space half-written by a crash is recomputed too
        from core.runtime.distributed import World  # torch, imported only to compute: reading a cached space needs none
        from core.explore.embedding import compute_latent
        world = world or World()
        latent = compute_latent(run, network, corpus, cache_root or default_cache_dir(), progress, world)
        if world.is_main:
            keep_cached(lambda: save_latent(folder, latent), "The latent space", on_unsaved)
        world.barrier()
    return Exploration(run, network, corpus.loc[latent.files], latent, folder, fingerprint)


def corpus_to_explore(run: Run, demo_dir: Path | None = None) -> pd.DataFrame:
    """The corpus the app explores a run over: its own; for an imported model (which has none), the
    built-in demo corpus, generated in `demo_dir` (default data/demo) on first use."""
    corpus = run.corpus()
    if corpus is not None:
        return corpus
    demo_dir = Path(demo_dir or default_demo_dir())
    manifest = demo_dir / "manifest.csv"
    if not manifest.exists():
        make_demo_corpus(demo_dir)
    return load_manifest(manifest)


def project(exploration: Exploration, cfg: UmapConfig = UmapConfig(),
            on_unsaved: Callable[[str], None] | None = None) -> np.ndarray:
    """(N, n_components) map coordinates of the corpus's utterances, fitted once per UmapConfig (`on_unsaved`:
    told why, when the map cannot be cached)."""
    key = config_hash(cfg)[:12]
    coords = load_projection(exploration.folder, key)
    if coords is None:
        from core.explore.projection import LatentProjector
        projector = LatentProjector(cfg).fit(exploration.latent.embeddings[cfg.space])
        coords = projector.coords_
        params = {"umap": dataclasses.asdict(cfg), "n_points": len(coords), "n_fitted": len(projector.sample_index_)}
        keep_cached(lambda: save_projection(exploration.folder, key, coords, params), "The map", on_unsaved)
    return coords


def novelty(exploration: Exploration, percentile: float = PERCENTILE) -> Novelty:
    """The corpus's own nearest-neighbour distances in the clustering space (`core.explore.novelty`), computed once
    per (run, network, corpus) and cached beside its latent space."""
    found = load_novelty(exploration.folder, percentile)
    if found is None:
        found = corpus_novelty(exploration.latent.embeddings["cluster"], percentile,
                               seed=exploration.run.config.seed)
        keep_cached(lambda: save_novelty(exploration.folder, found), "The corpus's nearest-neighbour distances")
    return found


def analyze_exploration(exploration: Exploration, splits: list[str] | None = None, n_shuffles: int = 20
                        ) -> DependenceReport:
    """SPEC 7 for the utterances of `splits` (default: all): true labels where present, and predictions."""
    corpus, latent = exploration.corpus, exploration.latent
    rows = corpus["split"].isin(splits).to_numpy() if splits else np.ones(len(corpus), bool)
    attributes = list(latent.predictions.columns)
    labels = corpus.loc[rows, attributes] if corpus[attributes].notna().any().any() else None
    emotions = corpus.loc[rows, "emotion"] if corpus["emotion"].notna().any() else None
    from core.explore.analysis import analyze
    return analyze(latent.cluster[rows], labels, latent.predictions[rows], emotions, n_shuffles=n_shuffles,
                   seed=exploration.run.config.seed)


def prototypes(exploration: Exploration, k: int = 3, space: str = "cluster") -> pd.DataFrame:
    """The k utterances nearest to each cluster's centroid in the cluster space: the clusters' prototypes.

    Returns:
        one row per (cluster, rank): `cluster`, `rank` (1 = nearest), `file`, `distance`.
    """
    latent = exploration.latent
    embeddings, rows = latent.embeddings[space], []
    for cluster, centroid in enumerate(latent.centroids):
        members = np.flatnonzero(latent.cluster == cluster)
        distance = np.linalg.norm(embeddings[members] - centroid, axis=1)
        order = np.argsort(distance)[:k]
        rows += [{"cluster": cluster, "rank": rank + 1, "file": latent.files[members[i]], "distance": float(distance[i])}
                 for rank, i in enumerate(order)]
    return pd.DataFrame(rows, columns=["cluster", "rank", "file", "distance"])


def utterance_table(exploration: Exploration, coords: np.ndarray | None = None) -> pd.DataFrame:
    """One row per utterance: path, split, speaker, emotion, cluster, `chunks_in_cluster` (the share of its chunks
    in that cluster), map coordinates, true and predicted attributes, and the prediction error (predicted - true,
    NaN where unlabelled)."""
    corpus, latent = exploration.corpus, exploration.latent
    table = corpus[["path", "split", "speaker", "emotion"]].copy()
    table["cluster"] = latent.cluster
    table["chunks_in_cluster"] = latent.cluster_share.max(1)  # share of its chunks in its (majority) cluster
    if coords is not None:
        for i, axis in enumerate("xyz"[: coords.shape[1]]):
            table[axis] = coords[:, i]
    for attribute in latent.predictions.columns:
        table[attribute] = corpus[attribute]
        table[f"{attribute}_predicted"] = latent.predictions[attribute]
    for attribute in latent.predictions.columns:  # error columns last, after every (true, predicted) pair
        table[f"{attribute}_error"] = table[f"{attribute}_predicted"] - table[attribute]
    return table


def distinct_names(names: list[str]) -> list[str]:
    """The names in order, a repeated one told apart by a count: ["a.wav", "a.wav (2)", ...], never
    colliding with another name of the list."""
    taken, out = set(names), []
    used: set[str] = set()
    for name in names:
        candidate, k = name, 1
        while candidate in used or (candidate != name and candidate in taken):
            k += 1
            candidate = f"{name} ({k})"
        used.add(candidate)
        out.append(candidate)
    return out


@dataclass(frozen=True)
class NameMatch:
    """What a typed utterance name refers to: the one utterance, or the names a person may have meant."""
    match: str | None  # the utterance's key, when exactly one fits
    candidates: tuple[str, ...] = ()  # several that end with the name, or close names when none does


def find_utterance(typed: str, names: pd.Index | list[str], n_close: int = 5) -> NameMatch:
    """The utterance a person means by `typed`: its exact key ("audio/demo_0003.wav"), or the one key that ends
    with it at a folder boundary ("demo_0003.wav", "0003.wav" is not one); else the keys that end with it, or
    up to `n_close` close names (difflib, on the whole key and on its file name)."""
    keys = pd.Index(names).astype(str)
    if typed in keys:
        return NameMatch(typed)
    typed = typed.strip().replace("\\", "/").lstrip("/")  # spaces, a Windows path, a leading slash pasted with it
    ending = keys[keys.str.endswith("/" + typed) | (keys == typed)] if typed else keys[:0]
    if len(ending) == 1:
        return NameMatch(ending[0])
    if len(ending) > 1:
        return NameMatch(None, tuple(ending[:n_close]))
    by_file = dict(zip(keys.str.rsplit("/", n=1).str[-1], keys))
    close = difflib.get_close_matches(typed, list(by_file), n=n_close, cutoff=0.7)
    close = [by_file[c] for c in close] or difflib.get_close_matches(typed, list(keys), n=n_close, cutoff=0.7)
    return NameMatch(None, tuple(dict.fromkeys(close)))
