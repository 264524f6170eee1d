"""The `compare` command: two or more runs over one corpus, their clusters' dependence on emotion beside shuffled
clusters and each other, and their test CCC (`core.evaluate.representations`); three CSV files and a summary."""
from __future__ import annotations

import sys

from core.audio.decode import AudioLoadingError
from core.cli.progress import stage_printer
from core.data.corpus_formats import load_corpus
from core.evaluate.cross_corpus import EvaluationError, run_test_predictions
from core.evaluate.representations import (ComparisonError, RepresentationComparison, categorical_table,
                                           compare_representations, summary_table)
from core.explore.exploration import corpus_to_explore, explore
from core.explore.export import write_table
from core.store.paths import default_cache_dir, default_demo_dir
from core.store.run_store import RunStore


def compare(args) -> int:
    if len(set(args.runs)) < len(args.runs):
        raise ComparisonError(f"each run may be given once, got {args.runs}")
    store, world = RunStore(args.runs_dir), args.world
    runs = [store.get(run_id) for run_id in args.runs]
    corpus = (load_corpus(args.corpus, unlabelled=args.unlabelled, labels=runs[0].config.labels) if args.corpus
              else None)
    explorations, predictions = {}, {}
    for run in runs:  # every rank explores (they share the embedding pass under torchrun); rank 0 goes on
        explorations[run.run_id] = explore(run, corpus if corpus is not None else corpus_to_explore(run, default_demo_dir()),
                                           cache_root=default_cache_dir(), world=world,
                                           progress=stage_printer() if world.is_main else None)
    if not world.is_main:
        return 0
    for run in runs:
        try:
            predictions[run.run_id] = run_test_predictions(run, args.device)
        except (EvaluationError, AudioLoadingError) as err:  # an imported model has none: its test CCC rows say so
            print(f"note: no test CCC for {run.run_id}: {err}", file=sys.stderr)
            predictions[run.run_id] = None
    comparison = compare_representations(explorations, predictions, n_shuffles=args.shuffles,
                                         resamples=args.resamples, seed=0)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("dependence", "differences", "test_ccc"):
        print(write_table(getattr(comparison, name), args.out / name, "csv"))
    print_summary(comparison)
    return 0


def print_summary(comparison: RepresentationComparison) -> None:
    """Per attribute: each run's ε² and MI beside shuffled clusters', test CCC, and each pair's difference."""
    sizes = ", ".join(f"{run} {n}" for run, n in comparison.corpus_sizes.items())
    print(f"\n{len(comparison.runs)} runs over {comparison.n_common} utterances in common (matched by audio path; "
          f"utterances per run: {sizes}); labels and emotions: {comparison.runs[0]}'s corpus")
    resamples = f"{comparison.resamples:,}".replace(",", " ")  # "1 000", as the other commands write it
    print(f"differences (A − B) with 95 % basic bootstrap intervals: {resamples} resamples of utterances, the "
          f"same for both runs; shuffled: mean ± std over {comparison.n_shuffles} permutations of a run's clusters")
    summary = summary_table(comparison)
    for attribute in summary.index.get_level_values("attribute").unique():
        part = summary.loc[attribute]
        print(f"\n{attribute} ({part['n'].iloc[0]} labelled utterances):")
        print(part.drop(columns="n").rename_axis(None).to_string())
    categorical = categorical_table(comparison)
    if len(categorical):
        print(f"\nemotion categories ({categorical['n'].iloc[0]} utterances):")
        print(categorical.drop(columns="n").rename_axis(None).to_string())
    if summary.empty:
        print("\ntoo few labelled utterances in common for a dependence test")
