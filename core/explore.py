"""Explore a run's latent space over a corpus: embeddings, map, cluster-emotion analysis, locating clips.

Everything is computed once per (run, network, corpus) and cached in the run's `analysis/` folder.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from core.analysis import DependenceReport, analyze
from core.analysis_store import load_latent, load_novelty, load_projection, save_latent, save_novelty, save_projection
from core.bundle import ModelBundle
from core.clustering import nearest_centroid
from core.config import UmapConfig, config_hash
from core.dataset import Normaliser, make_chunk_set, utterance_mean
from core.distributed import World
from core.extraction import extract_features
from core.feature_store import FeatureStore
from core.forward import chunk_predictions, embed_networks
from core.inference import Predictor, chunk_times
from core.latent import LATENT_FORMAT_VERSION, LatentSpace, build_latent_space, cluster_shares
from core.manifest import corpus_fingerprint, load_manifest
from core.novelty import PERCENTILE, Novelty, corpus_novelty, nearest_corpus_distance
from core.paths import default_cache_dir, default_demo_dir
from core.projection import LatentProjector
from core.run_store import Run
from core.synthetic import make_demo_corpus


class ExploreError(ValueError):
    """A run and corpus that cannot be explored (e.g. an imported model without a corpus)."""


@dataclass(frozen=True)
class Exploration:
    run: Run
    network: str  # whose latent space (imported models: one network per attribute)
    corpus: pd.DataFrame  # the utterance table, rows in `latent.files` order
    latent: LatentSpace
    folder: Path  # the cache folder of this (run, network, corpus)


def explore(run: Run, corpus: pd.DataFrame | None = None, *, network: str | None = None,
            cache_root: Path | None = None, progress: Callable[[str, int, int], None] | None = None,
            world: World | None = None) -> Exploration:
    """The latent space of `run` over `corpus` (default: the corpus it was trained on), cached.

    Args:
        network: for runs with several networks (imported published models), whose space to use;
            default: the run's primary network (arousal for the published models).
        cache_root: feature-store root (default: data/cache).
        progress: optional callback(stage, done, total).
        world: the processes of a torchrun job: they share the feature extraction and the embedding
            pass; rank 0 writes the latent space.

    Raises:
        ExploreError: no corpus given for a run that has none, or an unknown network.
    """
    world = world or World()
    if corpus is None:
        corpus = run.corpus()
        if corpus is None:
            raise ExploreError(f"run {run.run_id} has no corpus of its own (an imported model): give one (--corpus)")
    bundle = run.load_bundle()
    network = network or run.info.primary_network or next(iter(bundle.networks))
    if network not in bundle.networks:
        raise ExploreError(f"unknown network {network!r}; run {run.run_id} has {sorted(bundle.networks)}")
    # the format version is part of the key: a latent space computed another way is recomputed, never mixed in
    folder = run.analysis_dir(f"{network}-{corpus_fingerprint(corpus)[:12]}-v{LATENT_FORMAT_VERSION}")
    latent = load_latent(folder)
    if world.broadcast(latent is None):  # rank 0 decides: a latent space half-written by a crash is recomputed
        latent = _compute_latent(run, bundle, network, corpus, cache_root or default_cache_dir(), progress, world)
        if world.is_main:
            save_latent(folder, latent)
        world.barrier()
    return Exploration(run, network, corpus.loc[latent.files], latent, folder)


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


def _compute_latent(run: Run, bundle: ModelBundle, network: str, corpus: pd.DataFrame, cache_root: Path,
                    progress, world: World) -> LatentSpace:
    cfg, norm = bundle.config, bundle.normalisation
    report = progress or (lambda stage, done, total: None)
    store = FeatureStore(cache_root, cfg.audio, cfg.features, cfg.chunks)
    features = extract_features(corpus, store, cfg.audio, cfg.features, cfg.chunks,
                                progress=lambda d, t: report("features", d, t), world=world).features
    chunk_set = make_chunk_set(features, features.files, cfg.chunks)
    normaliser = Normaliser.from_statistics(norm.feature_mean, norm.feature_std, cfg.features.clip, world.device)
    outputs = embed_networks(bundle.networks, chunk_set, normaliser, world,
                             progress=lambda name, d, t: report(f"embedding ({name})", d, t))
    return build_latent_space(features.files, outputs[network], cfg.chunks.n_chunks,
                              run.centroids() if run.info.trained else None, bundle.networks[network].n_clusters,
                              chunk_predictions(bundle.networks, outputs), norm, seed=cfg.seed,
                              chunk_start_frames=chunk_set.starts - features.offsets[chunk_set.utterance])


def project(exploration: Exploration, cfg: UmapConfig = UmapConfig()) -> np.ndarray:
    """(N, n_components) map coordinates of the corpus's utterances, fitted once per UmapConfig."""
    key = config_hash(cfg)[:12]
    coords = load_projection(exploration.folder, key)
    if coords is None:
        projector = LatentProjector(cfg).fit(exploration.latent.embeddings[cfg.space])
        coords = projector.coords_
        save_projection(exploration.folder, key, coords, {"umap": dataclasses.asdict(cfg), "n_points": len(coords),
                                                          "n_fitted": len(projector.sample_index_)})
    return coords


def novelty(exploration: Exploration, percentile: float = PERCENTILE) -> Novelty:
    """The corpus's own nearest-neighbour distances in the clustering space (`core.novelty`), computed once
    per (run, network, corpus) and cached beside its latent space."""
    found = load_novelty(exploration.folder, percentile)
    if found is None:
        found = corpus_novelty(exploration.latent.embeddings["cluster"], percentile,
                               seed=exploration.run.config.seed)
        save_novelty(exploration.folder, found)
    return found


def analyze_exploration(exploration: Exploration, splits: list[str] | None = None, n_shuffles: int = 20
                        ) -> DependenceReport:
    """SPEC 7 for the utterances of `splits` (default: all): true labels where present, and predictions."""
    corpus, latent = exploration.corpus, exploration.latent
    rows = corpus["split"].isin(splits).to_numpy() if splits else np.ones(len(corpus), bool)
    attributes = list(latent.predictions.columns)
    labels = corpus.loc[rows, attributes] if corpus[attributes].notna().any().any() else None
    emotions = corpus.loc[rows, "emotion"] if corpus["emotion"].notna().any() else None
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
class LocateResult:
    table: pd.DataFrame  # index `file`: attributes, cluster, x, y(, z), neighbours, neighbour_distances,
                         # nearest_distance, out_of_distribution
    errors: dict[str, str]  # path -> why it could not be read
    novelty: Novelty | None = None  # the corpus reference the out-of-distribution flag compares with
    chunks: pd.DataFrame | None = None  # one row per (file, chunk): cluster, attributes, x, y(, z)


class Locator:
    """Place new clips in an explored latent space: predictions, cluster, map position, neighbours.

    Position: the distance-weighted mean of the k nearest corpus utterances' map coordinates in the
    map's embedding space (`core.projection`): fast and always inside the map. Out of distribution: the
    distance to the nearest corpus utterance in the clustering space, against the corpus's own (`core.novelty`).
    """

    def __init__(self, exploration: Exploration, coords: np.ndarray, cfg: UmapConfig = UmapConfig(),
                 predictor: Predictor | None = None):
        self.exploration, self.cfg = exploration, cfg
        self.predictor = predictor or Predictor(exploration.run.load_bundle(), device="auto")
        self.projector = LatentProjector.from_map(exploration.latent.embeddings[cfg.space], coords, cfg)

    def locate_files(self, paths: list[str | Path], n_neighbours: int = 5, *, refuse_silent: bool = False,
                     max_duration_s: float | None = None) -> LocateResult:
        """A table per clip (index `file`): attributes, cluster, map coordinates, nearest corpus clips.

        Args:
            refuse_silent, max_duration_s: see `Predictor.load` (the app refuses silent uploads).

        Returns:
            the table and {path: reason} for files that could not be read.
        """
        paths = [str(p) for p in paths]
        loaded = self.predictor.load(paths, refuse_silent=refuse_silent, max_duration_s=max_duration_s)
        clips, errors = loaded.clips, loaded.errors
        if not clips:
            return LocateResult(pd.DataFrame(), errors)
        ok = [clip.path for clip in clips]
        predicted = self.predictor.predict_chunks([c.features for c in clips])
        outputs, latent = predicted.outputs[self.exploration.network], self.exploration.latent
        c = predicted.chunks.shape[1]  # C chunks per clip (N, C, A)
        chunk_vectors = {"cluster": outputs.cluster_features, "latent": outputs.latent}[self.cfg.space]
        embedding = utterance_mean(chunk_vectors, c)  # as `build_latent_space` does for the corpus
        chunk_cluster = nearest_centroid(outputs.cluster_features, latent.centroids)
        share = cluster_shares(chunk_cluster, c, len(latent.centroids))
        coords = self.projector.transform(embedding)
        distances, neighbours = self.projector.neighbours(embedding, n_neighbours)
        files = latent.files
        table = pd.DataFrame(predicted.utterances, columns=self.predictor.attributes, index=pd.Index(ok, name="file"))
        table["cluster"] = share.argmax(1)
        for i, axis in enumerate("xyz"[: coords.shape[1]]):
            table[axis] = coords[:, i]
        table["neighbours"] = [[str(files[j]) for j in row] for row in neighbours]
        table["neighbour_distances"] = [row.round(4).tolist() for row in distances]
        chunk_table = self._chunk_table(clips, predicted.chunks, chunk_cluster, chunk_vectors, c)
        reference = novelty(self.exploration)
        cluster_space = embedding if self.cfg.space == "cluster" else utterance_mean(outputs.cluster_features, c)
        table["nearest_distance"], _ = nearest_corpus_distance(latent.embeddings["cluster"], cluster_space)
        table["out_of_distribution"] = reference.is_out(table["nearest_distance"].to_numpy())
        return LocateResult(table, errors, reference, chunk_table)

    def corpus_neighbours(self, file, k: int = 5) -> pd.Series:
        """The `k` corpus utterances nearest to corpus utterance `file` in the map's space, itself left out:
        distances indexed by file, nearest first."""
        latent = self.exploration.latent
        vector = latent.embeddings[self.cfg.space][[latent.files.get_loc(file)]]
        distances, neighbours = self.projector.neighbours(vector, k + 1)
        found = pd.Series(distances[0], index=latent.files[neighbours[0]], name="distance")
        return found.drop(file, errors="ignore").head(k)

    def chunk_positions(self, file) -> np.ndarray:
        """(C, n_components) map positions of a corpus utterance's chunks, placed as uploads are (k-NN in the
        map's space from the chunk embeddings)."""
        latent = self.exploration.latent
        return self.projector.transform(np.asarray(latent.chunk_embeddings[self.cfg.space][latent.chunk_rows(file)],
                                                   np.float32))

    def _chunk_table(self, clips: list, chunks: np.ndarray, chunk_cluster: np.ndarray, chunk_vectors: np.ndarray,
                     c: int) -> pd.DataFrame:
        """One row per (file, chunk) of located clips: start_s, end_s, cluster, predicted attributes and map
        position (from the chunks' vectors in the map's space)."""
        coords = self.projector.transform(chunk_vectors)
        index = pd.MultiIndex.from_product([[clip.path for clip in clips], range(c)], names=["file", "chunk"])
        table = pd.DataFrame(chunks.reshape(len(clips) * c, -1), columns=self.predictor.attributes, index=index)
        times = np.array([t for clip in clips for t in chunk_times(clip.n_samples, self.predictor.bundle.config)])
        table.insert(0, "start_s", times[:, 0])
        table.insert(1, "end_s", times[:, 1])
        table.insert(2, "cluster", chunk_cluster)
        for i, axis in enumerate("xyz"[: coords.shape[1]]):
            table[axis] = coords[:, i]
        return table
