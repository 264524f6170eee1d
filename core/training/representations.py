"""Runs made of vectors, not trained networks: an acoustic baseline of a corpus (`python -m core baseline`) and
another model's embeddings imported (`python -m core import-embeddings`).

Each is a run like a trained one, with a corpus, clusters, predictions, test CCC with intervals and test
predictions, so that every page and command reads it (`core.represent` says how it is fitted). A run is named
by its vectors and identified by the corpus fingerprint, its settings and (imported) the file's SHA-256: asking
again finds it instead of fitting it again.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from core.config import RunConfig, config_hash, default
from core.data.manifest import TEST_SPLITS, corpus_fingerprint
from core.evaluate.evaluation import interval_records, split_estimates
from core.model.metrics import attribute_ccc
from core.represent.embeddings_file import read_embeddings
from core.represent.fitting import Representation, fit_representation
from core.represent.space import VECTORS, representation_state
from core.represent.vectors import utterance_vectors
from core.store.atomic import npy_bytes
from core.store.run_info import RunInfo, RunMetrics
from core.store.run_store import Run, RunStore

DEFAULT_CLUSTERS = 10  # K where no trained run over the corpus says otherwise (the paper's arousal K)


def default_clusters(runs: RunStore, fingerprint: str) -> int:
    """K of the newest trained run over the corpus of this fingerprint (so the baseline is compared at the same K),
    else 10."""
    paired = [r for r in runs.list() if r.info.trained and r.info.corpus_fingerprint == fingerprint]
    return paired[0].config.model.n_clusters if paired else DEFAULT_CLUSTERS


def baseline_run(corpus: pd.DataFrame, features: str, runs: RunStore, cache_root: Path, *, n_clusters: int | None = None,
                 seed: int = 0, progress: Callable[[int, int], None] | None = None) -> Run:
    """The `features` baseline of `corpus` ("egemaps" or "logmel-stats"), made once and then found.

    Raises:
        RepresentationError: openSMILE missing (egemaps), clips that cannot be read (named).
        RepresentationFitError: no train clips or labels, too few clips for K.
    """
    fingerprint = corpus_fingerprint(corpus)  # once: it reads every audio file's size and time
    k = n_clusters or default_clusters(runs, fingerprint)
    cfg = _config(features, k, seed)
    run_id = _run_id(features, fingerprint, {"k": k, "seed": seed, "features": dataclasses.asdict(cfg.features)})
    if (found := runs.find(run_id)) is not None:
        return found
    vectors, columns = utterance_vectors(corpus, features, cfg.audio, cfg.features, cfg.chunks, cache_root, progress)
    return _store(corpus, vectors, columns, cfg, RunInfo(kind="baseline", name=features, config=cfg, run_id=run_id,
                                                          corpus_fingerprint=fingerprint, representation=features), runs)


def embeddings_run(corpus: pd.DataFrame, embeddings: Path, runs: RunStore, *, paths: Path | None = None,
                   n_clusters: int | None = None, seed: int = 0, name: str | None = None) -> Run:
    """A run of the vectors in `embeddings` (`core.represent.embeddings_file`) over `corpus`, made once.

    Raises:
        EmbeddingsFileError: the file is unreadable or does not hold one finite vector per clip (nothing stored).
    """
    fingerprint = corpus_fingerprint(corpus)  # once: it reads every audio file's size and time
    k = n_clusters or default_clusters(runs, fingerprint)
    vectors, columns = read_embeddings(embeddings, corpus, paths)
    name = name or Path(embeddings).stem
    cfg = _config("embeddings", k, seed)
    digest = hashlib.sha256(np.ascontiguousarray(vectors).tobytes()).hexdigest()
    run_id = _run_id(f"embeddings-{_slug(name)}", fingerprint, {"k": k, "seed": seed, "vectors": digest})
    if (found := runs.find(run_id)) is not None:
        return found
    info = RunInfo(kind="embeddings", name=name, config=cfg, run_id=run_id, corpus_fingerprint=fingerprint,
                   representation=f"embeddings-{_slug(name)}", attribution=f"imported from {Path(embeddings).name} ({vectors.shape[1]} dimensions)")
    return _store(corpus, vectors, columns, cfg, info, runs)


def test_predictions(corpus: pd.DataFrame, representation: Representation, vectors: np.ndarray) -> pd.DataFrame | None:
    """The test splits' labelled utterances with their predictions (`core.evaluate.evaluation.prediction_table`'s
    columns), or None without test labels."""
    rows = corpus["split"].isin(TEST_SPLITS).to_numpy()
    if not rows.any():
        return None
    predicted = representation.predict(representation.standardise(vectors[rows]))
    table = corpus.loc[rows, ["split", "speaker"]].copy()
    table["speaker"] = table["speaker"].to_numpy(object)
    for j, attribute in enumerate(representation.attributes):
        table[attribute] = corpus.loc[rows, attribute].to_numpy(float)
        table[f"{attribute}_predicted"] = predicted[:, j]
    return table


def _store(corpus: pd.DataFrame, vectors: np.ndarray, columns: list[str], cfg: RunConfig, info: RunInfo,
           runs: RunStore) -> Run:
    representation = fit_representation(vectors, corpus, info.representation, columns, cfg.model.n_clusters, cfg.seed)
    info = dataclasses.replace(info, primary_network=info.representation,
                               corpus_size={s: int(n) for s, n in corpus["split"].value_counts().items()})
    predictions = test_predictions(corpus, representation, vectors)
    attributes = list(representation.attributes)
    test_ccc = {} if predictions is None else {
        split: attribute_ccc(rows[attributes].to_numpy(), rows[[f"{a}_predicted" for a in attributes]].to_numpy(), attributes)
        for split, rows in predictions.groupby("split")}
    intervals = split_estimates(predictions, attributes) if predictions is not None else None
    with runs.writer(info) as writer:
        writer.save_corpus(corpus)
        writer.write_bytes(VECTORS, npy_bytes(np.asarray(vectors, np.float32)))
        return writer.complete(representation_state(representation), representation.centroids,
                               RunMetrics(test_ccc, -1, interval_records(intervals)), predictions)


def _config(name: str, n_clusters: int, seed: int) -> RunConfig:
    """The default preset's audio, features and chunking (log-mel statistics read its features), with this K."""
    cfg = default()
    return dataclasses.replace(cfg, name=name, seed=seed, model=dataclasses.replace(cfg.model, n_clusters=n_clusters))


def _run_id(name: str, fingerprint: str, settings: dict) -> str:
    return f"{name}-{config_hash({'settings': settings, 'corpus': fingerprint})[:8]}"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:40] or "vectors"
