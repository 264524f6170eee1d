"""A run's latent space computed over a corpus: features, every network's chunk embeddings and predictions,
clusters (SPEC 2.4); `core.store.latent` holds the space and what reads it, `core.explore.exploration` caches it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from core.data.dataset import Normaliser, make_chunk_set, utterance_mean
from core.data.extraction import extract_features
from core.model.bundle import Normalisation, load_bundle
from core.model.clustering import PseudoLabeler, nearest_centroid
from core.model.forward import ChunkOutputs, chunk_predictions, embed_networks, utterance_predictions
from core.runtime.distributed import World
from core.store.feature_store import FeatureStore
from core.store.latent import LatentSpace, cluster_shares
from core.represent.space import KINDS, representation_latent
from core.store.run_store import Run


def compute_latent(run: Run, network: str, corpus: pd.DataFrame, cache_root: Path,
                   progress: Callable[[str, int, int], None] | None = None, world: World | None = None) -> LatentSpace:
    """The latent space of `run`'s `network` over `corpus`: its features extracted (or read from the feature
    store under `cache_root`), every network's forward pass over its chunks, clusters from the run's centroids.

    Args:
        progress: optional callback(stage, done, total).
        world: the processes of a torchrun job: they share the extraction and the forward pass.
    """
    if run.info.kind in KINDS:  # vectors, not a network: standardised, clustered and regressed (`core.represent`)
        return representation_latent(run, corpus, cache_root, progress)
    world = world or World()
    bundle = load_bundle(run)
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


def build_latent_space(files: pd.Index, outputs: ChunkOutputs, n_chunks: int, centroids: np.ndarray | None,
                       n_clusters: int, chunk_predictions: dict[str, np.ndarray], normalisation: Normalisation,
                       seed: int = 0, chunk_start_frames: np.ndarray | None = None) -> LatentSpace:
    """Aggregate chunk outputs to utterances and assign clusters.

    Args:
        outputs: chunk outputs of the network whose space is explored.
        chunk_predictions: attribute -> (N*C,) z-normalised chunk predictions (from every network).
        chunk_start_frames: (N*C,) first frame of each chunk within its utterance.

    Clusters are the nearest of `centroids` (the run's final K-means) in the cluster space. Imported
    published models ship no centroids: then K-means with `n_clusters` (their head's size) runs over
    this corpus's chunks in that space, seeded, and `centroid_source` says so.
    """
    chunk = {"cluster": outputs.cluster_features, "latent": outputs.latent}
    source = "training"
    if centroids is None:
        labeler = PseudoLabeler(n_clusters, random_state=seed).fit(outputs.cluster_features)
        centroids, source = labeler.cluster_centers_, "k-means on this corpus"
    chunk_cluster = nearest_centroid(outputs.cluster_features, centroids)
    share = cluster_shares(chunk_cluster, n_chunks, len(centroids))
    predictions = pd.DataFrame(utterance_predictions(chunk_predictions, n_chunks, normalisation),
                               index=pd.Index(files, name="file"))
    return LatentSpace(
        files=pd.Index(files, name="file"), n_chunks=n_chunks,
        chunk_embeddings={s: v.astype(np.float16) for s, v in chunk.items()},
        embeddings={s: utterance_mean(v, n_chunks) for s, v in chunk.items()},
        chunk_cluster=chunk_cluster, cluster=share.argmax(1), cluster_share=share,
        centroids=np.asarray(centroids, np.float32), centroid_source=source, predictions=predictions,
        chunk_predictions=np.stack([normalisation.denormalise(a, z) for a, z in chunk_predictions.items()], 1
                                   ).astype(np.float32) if chunk_predictions else None,
        chunk_start_frames=None if chunk_start_frames is None else np.asarray(chunk_start_frames, np.int32))
