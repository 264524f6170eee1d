"""A run store holding an MSP-Podcast-sized explored run without training one: what the map benchmark opens.

The run is an untrained `demo`-preset network saved with its corpus (`RunStore.save_complete`); its latent
space and its map are written where `core.explore.exploration` looks for them, so the app finds them cached. The corpus
is `n_utterances` hard links to a few hundred real, playable clips (`benchmarks.synthetic_store.write_clips`).
Embeddings are drawn around K centres (clusters then follow from nearest centroids as in `core.explore.embedding.build_latent_space`),
map coordinates around K centres on the plane; predictions and labels follow the cluster with noise.
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.inputs import untrained_bundle
from benchmarks.synthetic_store import SPLIT_SHARES, write_clips
from core import RunInfo, RunStore
from core.config import AVD, UmapConfig, config_hash, demo
from core.data.corpus_formats import load_manifest
from core.data.manifest import corpus_fingerprint
from core.model.bundle import bundle_state
from core.model.clustering import nearest_centroid
from core.store.analysis_store import save_latent, save_projection
from core.store.latent import LATENT_FORMAT_VERSION, LatentSpace, cluster_shares

EMOTIONS = ("angry", "happy", "sad", "neutral", "surprise", "fear", "disgust", "contempt")


@dataclass(frozen=True)
class SyntheticRun:
    runs_dir: Path  # $SER_RUNS_DIR of the app
    run_id: str
    n_utterances: int
    seconds: float  # wall time to build it


def build_synthetic_run(folder: Path, n_utterances: int, *, n_clips: int = 300, n_speakers: int = 1500,
                        seed: int = 0) -> SyntheticRun:
    """Write `folder/corpus` (clips, hard links, manifest) and `folder/runs` (the run, its latent space and map)."""
    t0 = time.perf_counter()
    folder, cfg, rng = Path(folder), demo(), np.random.default_rng(seed)
    corpus_dir = folder / "corpus"
    clips, _, _ = write_clips(corpus_dir / "clips", n_clips, (2.0, 8.0), cfg.audio.sampling_rate,
                              cfg.features.hop_length, rng)
    k, c, h = cfg.model.n_clusters, cfg.chunks.n_chunks, cfg.model.hidden_dim
    cluster = rng.integers(0, k, n_utterances)
    relative = [f"audio/{i // 1000:03d}/spk{i % n_speakers:04d}_u{i:07d}.wav" for i in range(n_utterances)]
    for i, rel in enumerate(relative):
        if i % 1000 == 0:
            (corpus_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        os.link(clips[rng.integers(n_clips)], corpus_dir / rel)
    split = rng.choice(list(SPLIT_SHARES), n_utterances, p=list(SPLIT_SHARES.values()))
    means = rng.uniform(2.0, 6.0, (k, len(AVD)))
    truth = np.clip(means[cluster] + rng.normal(0, 0.8, (n_utterances, len(AVD))), 1, 7).round(1)
    manifest = pd.DataFrame({"path": relative, "split": split, "speaker": [f"spk{i % n_speakers:04d}" for i in range(n_utterances)],
                             "emotion": np.where(rng.random(n_utterances) < 0.8, rng.choice(EMOTIONS, n_utterances), "")})
    for j, attribute in enumerate(AVD):
        manifest[attribute] = np.where(split == "unlabelled", np.nan, truth[:, j])
    manifest.to_csv(corpus_dir / "manifest.csv", index=False)
    corpus = load_manifest(corpus_dir / "manifest.csv")

    info = RunInfo(kind="bench", name=f"synthetic {n_utterances}", config=cfg, run_id=f"synthetic-{n_utterances}")
    run = RunStore(folder / "runs").save_complete(info, bundle_state(untrained_bundle({"joint": cfg.model}, cfg)), corpus)
    centroids = rng.normal(0, 1, (k, h)).astype(np.float32)
    chunk_owner = np.repeat(cluster, c)
    chunks = {space: (centroids[chunk_owner] + 0.6 * rng.standard_normal((n_utterances * c, h), np.float32)).astype(np.float16)
              for space in ("cluster", "latent")}
    chunk_cluster = nearest_centroid(chunks["cluster"].astype(np.float32), centroids)
    share = cluster_shares(chunk_cluster, c, k)
    files = corpus.index
    chunk_predictions = np.clip(np.repeat(means[cluster], c, 0) + rng.normal(0, 0.5, (n_utterances * c, len(AVD))), 1, 7)
    latent = LatentSpace(
        files=files, n_chunks=c, chunk_embeddings=chunks,
        embeddings={s: v.astype(np.float32).reshape(n_utterances, c, h).mean(1) for s, v in chunks.items()},
        chunk_cluster=chunk_cluster, cluster=share.argmax(1), cluster_share=share, centroids=centroids,
        centroid_source="training", predictions=pd.DataFrame(chunk_predictions.reshape(n_utterances, c, -1).mean(1),
                                                             index=pd.Index(files, name="file"), columns=list(AVD)),
        chunk_predictions=chunk_predictions.astype(np.float32),
        chunk_start_frames=np.tile(np.arange(c, dtype=np.int32) * cfg.chunks.chunk_frames // 2, n_utterances))
    analysis = run.analysis_dir(f"joint-{corpus_fingerprint(corpus)[:12]}-v{LATENT_FORMAT_VERSION}")
    save_latent(analysis, latent)
    centres = rng.uniform(-12, 12, (k, 2))
    coords = centres[latent.cluster] + rng.normal(0, 1.2, (n_utterances, 2))
    umap = UmapConfig()
    save_projection(analysis, config_hash(umap)[:12], coords, {"umap": dataclasses.asdict(umap), "n_points": n_utterances,
                                                                 "n_fitted": n_utterances, "synthetic": True})
    return SyntheticRun(folder / "runs", info.run_id, n_utterances, time.perf_counter() - t0)
