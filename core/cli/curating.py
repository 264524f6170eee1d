"""The curation commands: rank the labels most likely wrong, and write the corpus with a person's edits applied."""
from __future__ import annotations

import pandas as pd

from core.cli.context import exploration_of, load_run
from core.curate.corrected import export_corpus as write_corrected
from core.curate.edits import annotations, corpus_log, curation
from core.data.corpus_formats import load_corpus
from core.explore.exploration import Exploration, ExploreError, corpus_to_explore
from core.explore.export import corpus_relative_paths, write_table
from core.explore.suspects import SUSPECT_SCORE, run_suspects
from core.store.edits_store import CorpusEdits
from core.store.paths import default_demo_dir


def suspects(args) -> int:
    if (exploration := exploration_of(args)) is None:
        return 0
    attributes = list(exploration.latent.predictions.columns)
    if args.attribute and args.attribute not in attributes:
        raise ExploreError(f"run {exploration.run.run_id} predicts {attributes}, not {args.attribute!r}")
    ranked = run_suspects(exploration)
    if args.attribute:
        ranked = ranked[ranked["attribute"] == args.attribute]
    ranked["path"] = corpus_relative_paths(ranked)  # relative to the corpus, as `file` is
    ranked = ranked.join(annotations_of(exploration, args))
    if args.top:
        ranked = ranked[ranked["rank"] <= args.top]
    print(write_table(ranked, args.out, "csv"))
    for attribute, rows in ranked.groupby("attribute", sort=False):
        print(f"{attribute}: {int(rows['suspect'].sum())} of {len(rows)} labels scored as suspects "
              f"(score >= {SUSPECT_SCORE:g}); most suspicious: {rows.index[0]} (score {rows['score'].iloc[0]:.1f})")
    return 0


def annotations_of(exploration: Exploration, args) -> pd.DataFrame:
    """The tags and unusable marks of the exploration's corpus, per utterance (its curation log)."""
    state = curation(CorpusEdits(exploration.fingerprint, args.runs_dir).read())
    return annotations(state, exploration.corpus.index)


def export_corpus(args) -> int:
    run = load_run(args)
    corpus = (load_corpus(args.corpus, unlabelled=args.unlabelled, labels=run.config.labels) if args.corpus
              else corpus_to_explore(run, default_demo_dir()))
    log = corpus_log(corpus, args.runs_dir)
    edits = log.read()
    done = write_corrected(corpus, edits, args.out, run.config.labels, args.unusable)
    print(done.manifest)
    print(done.log)
    print(f"{done.n_clips} clips: {done.n_relabelled} with edited labels, {done.n_unusable} unusable "
          + ("left out" if args.unusable == "drop" else "kept as unlabelled") + f" ({len(edits)} edits in {log.path})")
    if done.stale:
        print(f"{len(done.stale)} clips edited before are no longer in the corpus, e.g. {done.stale[:3]}: their edits "
              "are not applied (the log beside the manifest says which)")
    print(f"train on it: python -m core train --corpus {done.manifest} (a new run: the corpus differs)")
    return 0
