"""Compare runs' section "Against other representations": the selected run beside the other runs over its corpus
(acoustic baselines, imported embeddings, other trainings, the published models), and, where it has none, the
baselines of its corpus built with one click. The statistics are `core.evaluate.representations`'; this draws them."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from app import loaders
from core.errors import UserError
from core.store.paths import default_cache_dir, default_runs_dir
from core.store.run_store import Run, RunStore

if TYPE_CHECKING:
    from core.evaluate.representations import RepresentationComparison

DEFAULT_COMPARED = 4  # runs compared at first: each adds a latent space to load and its bootstrap (the rest one click away)
BASELINES = {"egemaps": "eGeMAPS", "logmel-stats": "log-mel"}  # `core.represent.vectors.FEATURE_SETS`, as people say them


def kind_text(run: Run) -> str:
    """How a run was made, by name: trained, baseline (egemaps), embeddings, official."""
    return f"{run.info.kind} ({run.info.representation})" if run.info.kind == "baseline" else run.info.kind


def same_corpus(run: Run, runs: list[Run]) -> list[Run]:
    """The other runs over `run`'s corpus (the same fingerprint of the corpus each is explored over), newest first."""
    def fingerprint(r: Run) -> str:
        return r.info.corpus_fingerprint or loaders.load_corpus_fingerprint(r.run_id)
    own = fingerprint(run)
    return [r for r in runs if r.run_id != run.run_id and fingerprint(r) == own]


def comparison_ui(run_id: str, network: str | None, runs: list[Run]) -> None:
    """The section: which runs to set beside `run_id`, then their dependence, differences and test CCC."""
    # scipy.stats and scikit-learn, imported once the page has waited for the warm-up thread (streamlit_app.py says why)
    from core.evaluate.representations import ComparisonError
    run = next(r for r in runs if r.run_id == run_id)
    others = {r.run_id: r for r in same_corpus(run, runs)}
    if not others:
        baselines_ui(run_id, network)
        return
    chosen = st.multiselect("Set beside it", list(others), default=list(others)[:DEFAULT_COMPARED],
                            format_func=lambda r: f"{r} · {kind_text(others[r])}", key=f"compare.against.{run_id}",
                            help="The other runs over the same corpus: trainings, acoustic baselines (`python -m core "
                                 "baseline`), imported embeddings (`python -m core import-embeddings`).")
    if not chosen:
        st.info("Choose at least one run to compare with.")
        return
    try:
        comparison = loaders.load_representation_comparison((run_id, *chosen), network)
    except UserError as err:  # no utterance in common; a run whose latent space cannot be made (named)
        (st.warning if isinstance(err, ComparisonError) else st.error)(str(err))
        return
    kinds = {run_id: run, **others}
    st.dataframe(pd.DataFrame({"kind": [kind_text(kinds[r]) for r in comparison.runs],
                               "clusters": [kinds[r].config.model.n_clusters for r in comparison.runs],
                               "utterances": [comparison.corpus_sizes[r] for r in comparison.runs]},
                              index=pd.Index(comparison.runs, name="run")), key="compare.runs")
    results_ui(comparison)


def results_ui(comparison: RepresentationComparison) -> None:
    """Each run beside its shuffled clusters, the paired differences in words, Cramér's V, the CSV files."""
    from core.evaluate.representations import categorical_table, summary_table
    from core.explore.export import write_table, zip_files
    first, resamples = comparison.runs[0], f"{comparison.resamples:,}".replace(",", " ")  # "1 000", as the CLI writes it
    st.caption(f"On the {comparison.n_common:,} utterances every run holds (matched by audio path; labels and emotions: "
               f"{first}'s corpus), each run's clusters are tested against the labels as on Clusters × emotion, beside "
               f"{comparison.n_shuffles} shuffles of its clusters (mean ± std).")
    summary = summary_table(comparison)
    if summary.empty:
        st.info("Too few labelled utterances in common for a dependence test.")
    else:
        is_run = summary.index.get_level_values("row").isin(comparison.runs)
        st.markdown("**Each run against shuffled clusters**: ε², binned mutual information and test CCC, per attribute")
        st.dataframe(summary[is_run], key="compare.summary", width="stretch")
        st.markdown("**Paired differences** (A − B) with their 95 % intervals")
        st.caption(f"A row \"A − B\" is the difference of two runs, with a paired 95 % bootstrap interval ({resamples} "
                   "resamples of utterances, the same for both runs; basic intervals, which cancel the upward bias of ε² "
                   "and MI that grows with the number of clusters): an interval above 0 means A's clusters depend more "
                   "on the attribute than B's, below 0 less; one that holds 0 does not tell them apart.")
        differences = summary[~is_run].drop(columns=["ε² shuffled", "MI shuffled", "test CCC [95 % CI]"])
        st.dataframe(differences.assign(**{"ε² says": _readings(comparison, differences.index)}),
                     key="compare.differences", width="stretch")
    if len(categorical := categorical_table(comparison)):
        st.markdown("**Cramér's V** of the clusters with the emotion categories, beside shuffled clusters (mean ± std)")
        st.dataframe(categorical, key="compare.cramers", width="stretch")
    with tempfile.TemporaryDirectory() as folder:  # the files `python -m core compare --out DIR` writes
        archive = zip_files([write_table(getattr(comparison, name), Path(folder) / name, "csv")
                             for name in ("dependence", "differences", "test_ccc")])
    st.download_button("Download the tables (dependence, differences, test CCC: CSV, zip)", archive,
                       f"{first}-compared.zip", "application/zip", key="compare.download",
                       help="Every number at full precision, as `python -m core compare RUN RUN --out DIR` writes them.")


def _readings(comparison: RepresentationComparison, rows: pd.Index) -> list[str]:
    """Each difference row's ε² interval in words: which run's clusters depend more on the attribute, if either."""
    words = {}
    for (run, other, attribute), row in comparison.differences.xs("epsilon2", level="statistic").iterrows():
        words[(attribute, f"{run} − {other}")] = (f"{run} more" if row.low > 0 else f"{other} more" if row.high < 0
                                                  else "no clear difference")
    return [words.get(row, "") for row in rows]


def baselines_ui(run_id: str, network: str | None) -> None:
    """The newcomer's case (one run over the corpus): what a baseline is, and one button that builds both."""
    from core.represent.vectors import opensmile_missing  # the `opensmile` package is looked for, not imported
    st.info(f"{run_id} is the only run over its corpus, so there is nothing to set it beside. A baseline clusters and "
            "regresses plain acoustic features of each clip (openSMILE's 88 eGeMAPS measures, or the mean and spread "
            "of its log-mel bands) exactly as the run's latent space is, so it shows how much of the clusters' "
            "dependence on emotion the acoustics alone already give.")
    missing = opensmile_missing()
    features = [f for f in BASELINES if not (missing and f == "egemaps")]
    if missing:
        st.caption(f"Only the log-mel baseline can be built here: {missing}.")
    label = " and ".join(BASELINES[f] for f in features)
    if not st.button(f"Build the {label} baseline{'s' if len(features) > 1 else ''}", key="compare.build", type="primary"):
        return
    corpus = loaders.load_exploration(run_id, network).corpus
    built = [f for f in features if _build(corpus, f)]
    if built == features:
        st.rerun()  # the new runs are read from the store on the rerun (`loaders.list_runs` is not cached)
    if built:
        st.button("Show the comparison", key="compare.show", help=f"The {' and '.join(BASELINES[f] for f in built)} "
                                                                    "baseline was built; the other failed (above).")


def _build(corpus: pd.DataFrame, features: str) -> bool:
    """One baseline of `corpus` with its progress bar; False (the error shown) where a user's input stops it."""
    from core.training.representations import baseline_run  # scikit-learn, openSMILE: on a click only
    bar = st.progress(0.0, text=f"{BASELINES[features]} baseline: reading the clips…")
    shown = [-1]  # the last percent drawn: one redraw per percent, not per clip (150 000 clips)

    def progress(done: int, total: int) -> None:
        percent = int(100 * done / max(total, 1))
        if percent != shown[0]:
            shown[0] = percent
            bar.progress(percent / 100, text=f"{BASELINES[features]} baseline: {done:,} of {total:,} clips")
    try:
        run = baseline_run(corpus, features, RunStore(default_runs_dir()), default_cache_dir(), progress=progress)
    except UserError as err:
        st.error(f"{BASELINES[features]} baseline: {err}")
        return False
    bar.progress(1.0, text=f"{BASELINES[features]} baseline: {run.run_id}")
    return True
