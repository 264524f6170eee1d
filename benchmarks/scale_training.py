"""Toward MSP-Podcast size, the training side (issue 11, item 4): a training process's memory over a whole
synthetic store.

The memory row runs one epoch's stages of `core.training.train` over the whole store, in one process: the training
data (feature statistics over every train frame), both embedding passes and their K-means, validation over
the whole dev split, all in full; the two training stages are cut to a few batches each (their memory does
not grow with the corpus: a batch is gathered from the memory map). Its figure is the process's peak private
memory (RssAnon, sampled), against 2 GB plus the chunk embeddings K-means needs; the peak RSS beside it also
counts the memory-mapped feature pages, which are page cache.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from benchmarks.memory import PrivatePeak
from benchmarks.results import BenchResult
from benchmarks.synthetic_store import corpus_paths

PROCESS_BUDGET_MB = 2048  # per process, besides the chunk embeddings K-means needs (issue 11)


def bench_training_memory(folder: Path, train_batches: int = 8) -> list[BenchResult]:
    """One epoch's stages of the `default` preset over the whole store, the training stages cut to `train_batches`."""
    import resource
    import torch
    from core.config import default
    from core.data.corpus_formats import load_manifest
    from core.runtime.distributed import World
    from core.training.train import (_embed, _Epoch, _fit_clusters, _fit_joint, _kmeans, _new_model, _optimisers,
                                     _validate, seed_everything)
    from core.training.training_data import prepare_training_data
    manifest, cache_root = corpus_paths(folder)
    corpus = load_manifest(manifest)
    cfg = default()
    peak = PrivatePeak()
    t0 = time.perf_counter()
    data = prepare_training_data(cfg, corpus, cache_root, workers=1)
    seconds = {"training data": time.perf_counter() - t0}
    seed_everything(cfg.seed)
    model = _new_model(cfg).to(memory_format=torch.channels_last)
    ep = _Epoch(0, model, _optimisers(model, cfg), data.normaliser, cfg, np.random.default_rng([cfg.seed, 0]),
                lambda p: None, World())
    n_cut = train_batches * cfg.train.batch_utterances * cfg.chunks.n_chunks
    largest = 0
    for chunk_set, stage, fit in ((data.unlabelled, "embed unlabelled", _fit_clusters),
                                  (data.train, "embed labelled", _fit_joint)):
        vectors = _embed(ep, chunk_set, stage)  # the whole split
        largest = max(largest, vectors.nbytes)
        pseudo = _kmeans(ep, vectors, seed=cfg.seed)
        del vectors
        model.reset_cluster_head(cfg.model.n_clusters)
        cut = dataclasses.replace(chunk_set, starts=chunk_set.starts[:n_cut], utterance=chunk_set.utterance[:n_cut])
        fit(ep, cut, pseudo.labels_[:n_cut])
    _validate(ep, data.dev)
    private = peak.stop()
    seconds.update(ep.seconds)
    n_train, n_unlabelled, n_dev = len(data.train), len(data.unlabelled), len(data.dev)
    embeddings_mb = largest / 2 ** 20
    budget = PROCESS_BUDGET_MB + embeddings_mb
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pack_gb = data.train.frames.nbytes / 1e9
    embed_rate = (n_train + n_unlabelled) / seconds["embed"]
    detail = (f"default preset, 1 process; {n_train:,} labelled + {n_unlabelled:,} unlabelled + {n_dev:,} dev chunks embedded "
              f"in full ({embed_rate:.0f} chunks/s), K-means on each, training cut to {train_batches} batches per stage; "
              f"largest embedding array {embeddings_mb:.0f} MB (float32, filled in place); pack {pack_gb:.1f} GB "
              f"memory-mapped; peak RSS incl. mapped feature pages {rss:.0f} MB; stages "
              + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
    return [BenchResult(f"training process, peak private memory, {len(corpus):,}-utterance store", private, "MB",
                        f"<= {PROCESS_BUDGET_MB} MB + the embeddings ({budget:.0f} MB)", detail,
                        met=private is not None and private <= budget)]
