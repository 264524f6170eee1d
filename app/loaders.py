"""The app's cached results: every `st.cache_data` and `st.cache_resource` over core's results (runs,
explorations, maps, analyses, locators, reports). Background jobs are `app.trainings`; warm-up threads
`app.warm_up`.

Only what reads a cached map is imported here with the module: a cache that computes imports its core module
(torch, scikit-learn, UMAP) itself, so that the map page of a cached run is drawn without them (`core/__init__`).
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import streamlit as st

from core.audio.decode import AudioLoadingError
from core.config import UmapConfig
from core.explore.cluster_words import cluster_centres, cluster_descriptions
from core.explore.colourings import text_columns
from core.explore.exploration import Exploration, analyze_exploration, corpus_to_explore, explore, project, prototypes, utterance_table
from core.store.paths import default_cache_dir, default_runs_dir
from core.store.run_store import Run, RunStore

if TYPE_CHECKING:
    from core.explore.analysis import DependenceReport
    from core.store.evaluation_store import Evaluation
    from core.explore.locator import LocateResult, Locator


def list_runs() -> list[Run]:
    return RunStore(default_runs_dir()).list()


def ablation_partner(run_id: str) -> Run | None:
    from core.training.ablation import ablation_partner as core_ablation_partner
    runs = list_runs()
    return core_ablation_partner(next(r for r in runs if r.run_id == run_id), runs)


@st.cache_data(show_spinner="Computing the test CCC's intervals…", max_entries=16)
def load_test_estimates(run_id: str) -> pd.DataFrame:
    """`core.evaluate.cross_corpus.test_estimates`: the run's test CCC with intervals (predictions computed once for older runs).

    Raises:
        EvaluationError: an imported model (no test split of its own).
    """
    from core.evaluate.cross_corpus import test_estimates
    return test_estimates(RunStore(default_runs_dir()).load(run_id))


@st.cache_data(show_spinner="Pairing the two runs' test predictions…", max_entries=8)
def load_paired_difference(with_id: str, without_id: str) -> pd.DataFrame:
    """`core.training.ablation.paired_difference`: test CCC with minus without the unlabelled stage, paired intervals."""
    from core.training.ablation import paired_difference
    store = RunStore(default_runs_dir())
    return paired_difference(store.load(with_id), store.load(without_id))


def evaluations(run_id: str) -> list[Evaluation]:
    """The run's stored cross-corpus evaluations (read each time: `python -m core evaluate` may add one)."""
    from core.store.evaluation_store import stored_evaluations
    return stored_evaluations(RunStore(default_runs_dir()).load(run_id).dir)


@st.cache_data(show_spinner=False, max_entries=4, ttl=600)  # rebuilt after 10 min: an evaluation may be added
def load_report_html(run_id: str) -> bytes:
    """The run's report (`core.report.report.write_report`) as one self-contained HTML page, written to a temporary
    folder and read back. The latent space it analyses is cached on disk, so a rebuild takes seconds."""
    from core.report.report import write_report  # matplotlib: on the first download only
    run = RunStore(default_runs_dir()).load(run_id)
    with tempfile.TemporaryDirectory() as folder:
        return write_report(run, Path(folder) / "report", cache_root=default_cache_dir()).read_bytes()


@st.cache_resource(show_spinner="Embedding the corpus…", max_entries=4)
def load_exploration(run_id: str, network: str | None) -> Exploration:
    """A run's latent space over its own corpus (imported models: over the built-in demo corpus). One the run's
    folder cannot hold (full, read-only) is used from memory, and said (`unsaved_caches`)."""
    run = RunStore(default_runs_dir()).load(run_id)
    return explore(run, corpus_to_explore(run), network=network, cache_root=default_cache_dir(), on_unsaved=_unsaved)


@st.cache_resource(show_spinner=False)
def unsaved_caches() -> dict[str, None]:
    """Why each result this server computed could not be cached (a full or read-only runs folder), each message once:
    every page says them (`streamlit_app`). Not `st.warning` inside the loaders: nested caches replay it many times."""
    return {}


def _unsaved(message: str) -> None:
    unsaved_caches()[message] = None


@st.cache_data(show_spinner="Fitting the map…", max_entries=8)
def load_map(run_id: str, network: str | None, n_components: int = 2, space: str = "cluster") -> np.ndarray:
    return project(load_exploration(run_id, network), UmapConfig(n_components=n_components, space=space),
                   on_unsaved=_unsaved)  # a map that cannot be cached is shown, and why said


@st.cache_data(show_spinner="Computing the statistics…", max_entries=8)
def load_analysis(run_id: str, network: str | None, splits: tuple[str, ...] = ()) -> DependenceReport:
    return analyze_exploration(load_exploration(run_id, network), list(splits) or None)


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def load_locator(run_id: str, network: str | None, space: str = "cluster") -> Locator:
    from core.explore.locator import Locator
    return Locator(load_exploration(run_id, network), load_map(run_id, network, 2, space), UmapConfig(space=space))


@st.cache_data(show_spinner="Locating the clips…", max_entries=8)
def locate_uploads(run_id: str, network: str | None, uploads: tuple[tuple[str, bytes], ...]) -> LocateResult:
    """`Locator.locate_files` of uploaded clips, (name, bytes) each with distinct names, once per set of uploads
    (choosing a clip or a chunk to play reruns the page, not the network). Tables and errors are by name."""
    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        for i, (name, data) in enumerate(uploads):
            path = Path(folder) / f"{i:03d}-{Path(name).name}"
            path.write_bytes(data)
            paths[str(path)] = name
        # files over two minutes are streamed (bounded memory); the run's audio.max_duration_s refuses longer ones
        result = load_locator(run_id, network).locate_files(list(paths), refuse_silent=True)
    errors = {paths[path]: reason for path, reason in result.errors.items()}
    if result.table.empty:
        return dataclasses.replace(result, errors=errors)
    return dataclasses.replace(result, table=result.table.rename(index=paths), errors=errors,
                               chunks=result.chunks.rename(index=paths, level="file"))


@st.cache_data(show_spinner=False, max_entries=8)
def load_prototypes(run_id: str, network: str | None, k: int = 1) -> pd.DataFrame:
    return prototypes(load_exploration(run_id, network), k)


@st.cache_resource(show_spinner=False, max_entries=4)
def load_utterances(run_id: str, network: str | None) -> pd.DataFrame:
    """The utterance table of the map (`core.explore.exploration.utterance_table`): one object shared by every session and
    rerun, read-only (a copy per rerun costs ~0.3 s at 150 000 utterances). The text columns of its categorical
    colourings are categorical: the map sends them to the browser on every rerun, dictionary-encoded."""
    table = utterance_table(load_exploration(run_id, network), load_map(run_id, network))
    return table.astype({column: "category" for column in text_columns(table)})


@st.cache_data(show_spinner=False, max_entries=8)
def load_cluster_labels(run_id: str, network: str | None) -> pd.DataFrame:
    """Each cluster's words and where to write them on the map (`core.explore.cluster_words`), from the predictions
    (every utterance has one, labelled or not)."""
    exploration, coords = load_exploration(run_id, network), load_map(run_id, network)
    latent = exploration.latent
    words = cluster_descriptions(latent.cluster, latent.predictions, len(latent.centroids))
    centres = cluster_centres(coords, latent.cluster, len(latent.centroids))
    return words.assign(x=centres[:, 0], y=centres[:, 1])


@st.cache_data(show_spinner=False, max_entries=64)
def load_spectrogram(path: str, run_id: str) -> np.ndarray:
    """(frames, mel bins) un-normalised mel power of one clip, as the network's frontend computes it."""
    from core.audio.frontend import load_features
    cfg = RunStore(default_runs_dir()).load(run_id).config
    loaded = load_features([path], cfg.audio, cfg.features, cfg.chunks)
    if not loaded.clips:
        raise AudioLoadingError(path, next(iter(loaded.errors.values()), "could not be read"))
    return loaded.clips[0].features


@st.cache_data(show_spinner="Ranking the labels…", max_entries=8)
def load_suspects(run_id: str, network: str | None) -> pd.DataFrame:
    """`core.explore.suspects.run_suspects`: every labelled (utterance, attribute), most suspicious first within each
    attribute (the review queue; edits change the curation log, not this ranking)."""
    from core.explore.suspects import run_suspects  # scikit-learn's neighbours: on the review page, not the map
    return run_suspects(load_exploration(run_id, network), on_unsaved=_unsaved)


if TYPE_CHECKING:  # what the comparison of representations returns (its module imports scipy: on that page only)
    from core.evaluate.representations import RepresentationComparison


@st.cache_data(show_spinner="Comparing the runs…", max_entries=8)
def load_representation_comparison(run_ids: tuple[str, ...], network: str | None) -> RepresentationComparison:
    """`core.evaluate.representations.compare_representations` of the runs over the utterances they all hold: the
    first in its latent space `network`, the others in their primary one, each with its stored test predictions
    (none: its test CCC rows say so; computing them for an older run is `python -m core compare`'s job).

    Raises:
        ComparisonError: fewer than two runs, or no utterance in common.
    """
    from core.evaluate.representations import compare_representations
    store = RunStore(default_runs_dir())
    explorations = {run_id: load_exploration(run_id, network if i == 0 else None) for i, run_id in enumerate(run_ids)}
    return compare_representations(explorations, {run_id: store.load(run_id).test_predictions() for run_id in run_ids})


@st.cache_data(show_spinner=False, max_entries=32, ttl=600)  # an imported model's: the demo corpus may be made again
def load_corpus_fingerprint(run_id: str) -> str:
    """The fingerprint of the corpus the app explores a run over: the one stored with it, else (an imported model,
    which has no corpus) that of the corpus `corpus_to_explore` gives it, the built-in demo corpus, so that the
    runs over the demo (baselines of it, the demo run) are found as runs over the same corpus."""
    from core.data.manifest import corpus_fingerprint
    run = RunStore(default_runs_dir()).load(run_id)
    return run.info.corpus_fingerprint or corpus_fingerprint(corpus_to_explore(run))
