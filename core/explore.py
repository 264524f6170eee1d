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
import torch

from core.analysis import DependenceReport, analyze
from core.clustering import nearest_centroid
from core.config import AVD, UmapConfig, config_hash
from core.dataset import make_chunk_set
from core.extraction import extract_features
from core.inference import Predictor
from core.latent import LatentSpace, build_latent_space, cluster_shares, embed_chunks
from core.manifest import corpus_fingerprint
from core.model import resolve_device
from core.projection import LatentProjector
from core.store import (FeatureStore, Run, analysis_dir, default_data_dir, load_latent, load_projection, read_centroids,
                        read_corpus, save_latent, save_projection)


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
            cache_root: Path | None = None, progress: Callable[[str, int, int], None] | None = None) -> Exploration:
    """The latent space of `run` over `corpus` (default: the corpus it was trained on), cached.

    Args:
        network: for runs with several networks (imported published models), whose space to use;
            default: the run's primary network (arousal for the published models).
        cache_root: feature-store root (default: data/cache).
        progress: optional callback(stage, done, total).

    Raises:
        ExploreError: no corpus given for a run that has none, or an unknown network.
    """
    if corpus is None:
        corpus = read_corpus(run)
        if corpus is None:
            raise ExploreError(f"run {run.run_id} has no corpus of its own (an imported model): give one (--corpus)")
    bundle = run.load_bundle()
    network = network or run.info.get("primary_network") or next(iter(bundle.networks))
    if network not in bundle.networks:
        raise ExploreError(f"unknown network {network!r}; run {run.run_id} has {sorted(bundle.networks)}")
    folder = analysis_dir(run, f"{network}-{corpus_fingerprint(corpus)[:12]}")
    latent = load_latent(folder)
    if latent is None:
        latent = _compute_latent(run, bundle, network, corpus, cache_root or default_data_dir() / "cache", progress)
        save_latent(folder, latent)
    return Exploration(run, network, corpus.loc[latent.files], latent, folder)


def _compute_latent(run, bundle, network, corpus, cache_root, progress) -> LatentSpace:
    cfg = bundle.config
    report = progress or (lambda stage, done, total: None)
    store = FeatureStore(cache_root, cfg.audio, cfg.features, cfg.chunks)
    features, _ = extract_features(corpus, store, cfg.audio, cfg.features, cfg.chunks,
                                   progress=lambda d, t: report("features", d, t))
    chunk_set = make_chunk_set(features, features.files, cfg.chunks)
    norm = bundle.normalisation
    device = resolve_device("auto")
    mean = torch.as_tensor(norm.feature_mean, dtype=torch.float32, device=device)
    std = torch.as_tensor(norm.feature_std, dtype=torch.float32, device=device)
    outputs, chunk_predictions = None, {}
    for name, net in bundle.networks.items():
        out = embed_chunks(net.to(device, memory_format=torch.channels_last), chunk_set, mean, std, cfg.features.clip,
                           progress=lambda d, t: report(f"embedding ({name})", d, t))
        chunk_predictions |= {a: out.attributes[:, j] for j, a in enumerate(net.cfg.attributes)}
        if name == network:
            outputs = out
    chunk_predictions = {a: chunk_predictions[a] for a in AVD if a in chunk_predictions}
    return build_latent_space(features.files, outputs, cfg.chunks.n_chunks,
                              read_centroids(run) if run.info.get("kind") == "trained" else None,
                              bundle.networks[network].n_clusters, chunk_predictions, norm.label_mean, norm.label_std,
                              seed=cfg.seed)


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


def utterance_table(exploration: Exploration, coords: np.ndarray | None = None) -> pd.DataFrame:
    """One row per utterance: path, split, cluster, map coordinates, true and predicted attributes."""
    corpus, latent = exploration.corpus, exploration.latent
    table = corpus[["path", "split", "speaker", "emotion"]].copy()
    table["cluster"] = latent.cluster
    table["cluster_purity"] = latent.cluster_share.max(1)
    if coords is not None:
        for i, axis in enumerate("xyz"[: coords.shape[1]]):
            table[axis] = coords[:, i]
    for attribute in latent.predictions.columns:
        table[attribute] = corpus[attribute]
        table[f"{attribute}_predicted"] = latent.predictions[attribute]
    return table


class Locator:
    """Place new clips in an explored latent space: predictions, cluster, map position, neighbours.

    Position: the distance-weighted mean of the k nearest corpus utterances' map coordinates in the
    map's embedding space (`core.projection`): fast and always inside the map.
    """

    def __init__(self, exploration: Exploration, coords: np.ndarray, cfg: UmapConfig = UmapConfig(),
                 predictor: Predictor | None = None):
        self.exploration, self.cfg = exploration, cfg
        self.predictor = predictor or Predictor(exploration.run.load_bundle(), device="auto")
        self.projector = LatentProjector.from_map(exploration.latent.embeddings[cfg.space], coords, cfg)

    def locate_files(self, paths: list[str | Path], n_neighbours: int = 5, *, refuse_silent: bool = False,
                     max_duration_s: float | None = None) -> tuple[pd.DataFrame, dict[str, str]]:
        """A table per clip (index `file`): attributes, cluster, map coordinates, nearest corpus clips.

        Args:
            refuse_silent, max_duration_s: see `Predictor.load` (the app refuses silent uploads).

        Returns:
            the table and {path: reason} for files that could not be read.
        """
        paths = [str(p) for p in paths]
        clips, errors = self.predictor.load(paths, refuse_silent=refuse_silent, max_duration_s=max_duration_s)
        if not clips:
            return pd.DataFrame(), errors
        ok = [clip.path for clip in clips]
        utterance, _, outputs = self.predictor.predict_chunks([c.features for c in clips], embed=self.exploration.network)
        latent = self.exploration.latent
        n, c = len(ok), outputs.cluster_features.shape[0] // len(ok)
        vectors = {"cluster": outputs.cluster_features, "latent": outputs.latent}
        embedding = vectors[self.cfg.space].reshape(n, c, -1).mean(1)
        share = cluster_shares(nearest_centroid(outputs.cluster_features, latent.centroids), c, len(latent.centroids))
        coords = self.projector.transform(embedding)
        distances, neighbours = self.projector.neighbours(embedding, n_neighbours)
        files = latent.files
        table = pd.DataFrame(utterance, columns=self.predictor.attributes, index=pd.Index(ok, name="file"))
        table["cluster"] = share.argmax(1)
        for i, axis in enumerate("xyz"[: coords.shape[1]]):
            table[axis] = coords[:, i]
        table["neighbours"] = [[str(files[j]) for j in row] for row in neighbours]
        table["neighbour_distances"] = [row.round(4).tolist() for row in distances]
        return table, errors
