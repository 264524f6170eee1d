"""What a training run works on: the corpus's features, its chunk sets per split, the training-split
statistics (features and labels) and the unlabelled pool as published (a random 40 k)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from core.config import RunConfig
from core.data.dataset import ChunkSet, Normaliser, feature_statistics, make_chunk_set
from core.data.extraction import extract_features
from core.data.manifest import TEST_SPLITS
from core.model.bundle import Normalisation
from core.runtime.device import resolve_device
from core.runtime.distributed import World
from core.store.feature_store import FeatureStore



@dataclass
class TrainingData:
    train: ChunkSet
    dev: ChunkSet
    tests: dict[str, ChunkSet]
    unlabelled: ChunkSet | None
    normalisation: Normalisation
    normaliser: Normaliser  # the training split's feature statistics on the training device

    @property
    def n_trained_chunks(self) -> int:  # chunks through forward + backward per epoch
        return len(self.train) + (len(self.unlabelled) if self.unlabelled is not None else 0)


def prepare_training_data(cfg: RunConfig, corpus: pd.DataFrame, cache_root: Path, workers: int | None = None,
                          progress: Callable[[int, int], None] | None = None, world: World | None = None) -> TrainingData:
    """Features of every usable clip (extracted once), training-split statistics and the chunk sets.

    Args:
        progress: optional callback(done, total) of the feature extraction.
        world: the processes of a torchrun job (extraction is split between them).
    """
    world = world or World(device=resolve_device(cfg.train.device))
    store = FeatureStore(cache_root, cfg.audio, cfg.features, cfg.chunks)
    features = extract_features(corpus, store, cfg.audio, cfg.features, cfg.chunks, workers=workers,
                                progress=progress, world=world).features
    usable = corpus.loc[corpus.index.isin(features.files)]
    attributes = list(cfg.model.attributes)
    train_rows = usable[usable["split"] == "train"]
    label_mean, label_std = train_rows[attributes].mean(), train_rows[attributes].std(ddof=0).replace(0, 1)
    statistics = feature_statistics(features, train_rows.index)  # training split only
    feature_mean, feature_std = statistics.mean, statistics.std

    def chunk_set(rows: pd.DataFrame, labelled: bool = True) -> ChunkSet:
        targets = ((rows[attributes] - label_mean) / label_std).to_numpy(np.float32) if labelled else None
        return make_chunk_set(features, rows.index, cfg.chunks, targets)

    unlabelled = None
    if cfg.train.use_unlabelled:
        pool = usable[usable["split"] == "unlabelled"]
        if len(pool) > cfg.train.max_unlabelled:  # published: a random 40 k of the unlabelled pool
            keep = np.random.default_rng(cfg.seed).choice(len(pool), cfg.train.max_unlabelled, replace=False)
            pool = pool.iloc[np.sort(keep)]
        unlabelled = chunk_set(pool, labelled=False)
    normaliser = Normaliser.from_statistics(feature_mean, feature_std, cfg.features.clip, world.device)
    return TrainingData(chunk_set(train_rows), chunk_set(usable[usable["split"] == "dev"]),
                 {s: chunk_set(usable[usable["split"] == s]) for s in TEST_SPLITS if (usable["split"] == s).any()},
                 unlabelled, Normalisation(feature_mean, feature_std, label_mean.to_dict(), label_std.to_dict()), normaliser)
