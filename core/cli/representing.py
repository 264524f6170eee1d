"""The commands that make runs of other representations: an acoustic baseline of a corpus, and imported embeddings."""
from __future__ import annotations

import argparse
from pathlib import Path

from core.cli.progress import progress_bar
from core.config import default
from core.data.corpus_formats import load_corpus
from core.evaluate.evaluation import estimate_text, split_estimates
from core.represent.vectors import FEATURE_SETS
from core.store.paths import default_cache_dir
from core.store.run_store import Run, RunStore
from core.training.representations import baseline_run, embeddings_run


def baseline_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--features", choices=FEATURE_SETS, required=True,
                   help="egemaps: the 88 eGeMAPSv02 functionals (openSMILE); logmel-stats: mean and standard deviation "
                        "of each log-mel band")


def embeddings_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--embeddings", type=Path, required=True,
                   help="Parquet with a `path` column and one vector column or numbered columns; or a .npy matrix")
    p.add_argument("--paths", type=Path, help="with a .npy matrix: a CSV whose `path` column names each row's clip")
    p.add_argument("--name", help="the run's name (default: the file's name)")


def baseline(args) -> int:
    corpus = load_corpus(args.corpus, unlabelled=args.unlabelled, labels=default().labels)
    run = baseline_run(corpus, args.features, RunStore(args.runs_dir), default_cache_dir(), n_clusters=args.clusters,
                       seed=args.seed, progress=progress_bar(f"{args.features} vectors"))
    return _said(run)


def import_embeddings(args) -> int:
    corpus = load_corpus(args.corpus, unlabelled=args.unlabelled, labels=default().labels)
    run = embeddings_run(corpus, args.embeddings, RunStore(args.runs_dir), paths=args.paths, n_clusters=args.clusters,
                         seed=args.seed, name=args.name)
    return _said(run)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", type=Path, required=True, help="manifest CSV, MSP-Podcast root, or folder of clips")
    p.add_argument("--unlabelled", type=Path, help="an extra folder of unlabelled clips")
    p.add_argument("--clusters", type=int, help="K of K-means (default: the newest trained run's over this corpus, else 10)")
    p.add_argument("--seed", type=int, default=0, help="K-means's seed")


def _said(run: Run) -> int:
    k = run.config.model.n_clusters
    print(f"run {run.run_id} ({run.info.kind}: {run.info.representation}, K = {k}); explore it like any run: "
          f"python -m core analyze {run.run_id}, or in the app")
    predictions = run.test_predictions()
    if predictions is not None:
        attributes = [a for a in run.config.model.attributes if f"{a}_predicted" in predictions]
        print("test CCC with 95 % bootstrap intervals (ridge regression on the vectors, its strength chosen on dev):")
        print(estimate_text(split_estimates(predictions, attributes)).reset_index().to_string(index=False))
    return 0
