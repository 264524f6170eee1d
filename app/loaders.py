"""Every Streamlit cache of the app, and the background jobs that must survive reruns.

Jobs run in threads owned by `st.cache_resource` singletons, so a rerun or a second browser tab
sees the same job instead of starting another one; a job's training runs in a process of its own
(`app.trainer`), the thread relaying its progress.

Only what reads a cached map is imported here with the module: a cache that computes imports its core module
(torch, scikit-learn, UMAP) itself, so that the map page of a cached run is drawn without them (`core/__init__`).
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import streamlit as st

from app.trainer import TrainingProcessError, demo_corpus_in_process, train_in_process
from core.atomic import atomic_write_json
from core.audio import AudioLoadingError
from core.cluster_words import cluster_centres, cluster_descriptions
from core.config import UmapConfig, preset
from core.explore import Exploration, analyze_exploration, corpus_to_explore, explore, project, prototypes, utterance_table
from core.manifest import load_corpus, load_manifest
from core.paths import default_cache_dir, default_data_dir, default_runs_dir
from core.run_store import Run, RunStore

if TYPE_CHECKING:
    from core.analysis import DependenceReport
    from core.epoch_space import EpochSpace
    from core.evaluation import Evaluation
    from core.locator import LocateResult, Locator


@dataclass
class Job:
    """A long task in a thread of its own; the page polls its fields."""
    label: str
    stage: str = "starting"
    done: int = 0
    total: int = 0
    epoch: int = 0
    epochs: int = 0
    dev_ccc: dict | None = None
    eta_s: float | None = None
    started: float = field(default_factory=time.time)
    result: object = None
    error: str | None = None
    resumed_after: int | None = None  # epochs a stopped server had finished, when this job resumed them
    finished: threading.Event = field(default_factory=threading.Event)
    corpus: pd.DataFrame | None = None  # what it trains on (a training job): the live map's hover fields
    live: LiveMap | None = None  # the map of the latest epoch's clustering space, once one is fitted
    _live_next: EpochSpace | None = None  # an epoch's space waiting to be fitted
    _live_lock: threading.Lock = field(default_factory=threading.Lock)
    _live_fitting: bool = False

    def update(self, stage: str, done: int, total: int) -> None:
        self.stage, self.done, self.total = stage, done, total

    def on_training(self, progress) -> None:  # core.train.TrainProgress
        if progress.stage == "resume":
            self.resumed_after = progress.done
        self.update(f"epoch {progress.epoch + 1}/{progress.epochs}: {progress.stage}", progress.done, progress.total)
        self.epoch, self.epochs = progress.epoch, progress.epochs
        if progress.dev_ccc is not None:
            self.dev_ccc, self.eta_s = progress.dev_ccc, progress.eta_s
        if progress.space is not None and self.corpus is not None:
            self._fit_live(progress.space)

    @property
    def live_drawing(self) -> bool:
        """Whether the map of a newer epoch than `live` is being fitted."""
        return self._live_fitting

    def _fit_live(self, space: EpochSpace) -> None:
        """Fit the map of `space` in a thread of its own (not the thread that relays the training's messages,
        which a fit would hold up); an epoch that ends while one is fitted waits, one that ends after it is dropped."""
        with self._live_lock:
            self._live_next = space
            if self._live_fitting:
                return
            self._live_fitting = True
        threading.Thread(target=self._fit_live_maps, name=f"{self.label} live map", daemon=True).start()

    def _fit_live_maps(self) -> None:
        while True:
            with self._live_lock:
                space, self._live_next = self._live_next, None
                if space is None:
                    self._live_fitting = False
                    return
            warm_map_code().join()  # UMAP's numba code, compiled once per server
            from core.epoch_space import epoch_map
            try:
                self.live = LiveMap(space.epoch, epoch_map(space, self.corpus), space.n_utterances, None)
            except Exception as err:  # e.g. too few utterances for a map: said on the page, the training goes on
                self.live = LiveMap(space.epoch, None, space.n_utterances, f"{type(err).__name__}: {err}")


@dataclass(frozen=True)
class LiveMap:
    """A training's map of its latest epoch (`core.epoch_space.epoch_map`), or why there is none."""
    epoch: int  # 0-based
    table: pd.DataFrame | None  # index file; x, y, cluster (that epoch's pseudo-label), speaker, emotion, labels
    n_utterances: int  # labelled training utterances in all (the table holds a sample beyond LIVE_UTTERANCES)
    error: str | None


def _start(job: Job, target) -> Job:
    def run():
        try:
            job.result = target(job)
        except TrainingProcessError as err:  # the training's own error and traceback, from its process
            job.error = str(err)
        except Exception as err:  # shown on the page; the app outlives a failed job
            job.error = f"{type(err).__name__}: {err}\n\n{traceback.format_exc(limit=4)}"
        finally:
            job.finished.set()
    threading.Thread(target=run, name=job.label, daemon=True).start()
    return job


def list_runs() -> list[Run]:
    return RunStore(default_runs_dir()).list()


def ablation_partner(run_id: str) -> Run | None:
    from core.ablation import ablation_partner as core_ablation_partner
    runs = list_runs()
    return core_ablation_partner(next(r for r in runs if r.run_id == run_id), runs)


@st.cache_data(show_spinner="Computing the test CCC's intervals…", max_entries=16)
def load_test_estimates(run_id: str) -> pd.DataFrame:
    """`core.cross_corpus.test_estimates`: the run's test CCC with intervals (predictions computed once for older runs).

    Raises:
        EvaluationError: an imported model (no test split of its own).
    """
    from core.cross_corpus import test_estimates
    return test_estimates(RunStore(default_runs_dir()).load(run_id))


@st.cache_data(show_spinner="Pairing the two runs' test predictions…", max_entries=8)
def load_paired_difference(with_id: str, without_id: str) -> pd.DataFrame:
    """`core.ablation.paired_difference`: test CCC with minus without the unlabelled stage, paired intervals."""
    from core.ablation import paired_difference
    store = RunStore(default_runs_dir())
    return paired_difference(store.load(with_id), store.load(without_id))


def evaluations(run_id: str) -> list[Evaluation]:
    """The run's stored cross-corpus evaluations (read each time: `python -m core evaluate` may add one)."""
    from core.evaluation_store import stored_evaluations
    return stored_evaluations(RunStore(default_runs_dir()).load(run_id).dir)


@st.cache_data(show_spinner=False, max_entries=4, ttl=600)  # rebuilt after 10 min: an evaluation may be added
def load_report_html(run_id: str) -> bytes:
    """The run's report (`core.report.write_report`) as one self-contained HTML page, written to a temporary
    folder and read back. The latent space it analyses is cached on disk, so a rebuild takes seconds."""
    from core.report import write_report  # matplotlib: on the first download only
    run = RunStore(default_runs_dir()).load(run_id)
    with tempfile.TemporaryDirectory() as folder:
        return write_report(run, Path(folder) / "report", cache_root=default_cache_dir()).read_bytes()


EMBEDDING_FOR_MAP, FITTING_MAP = "embedding the corpus for the map", "fitting the map"  # a job's stages after training


def _train_and_map(job: Job, corpus: pd.DataFrame, cfg) -> Run:
    from core.train import run_id_for
    run_id = run_id_for(cfg, corpus)
    warming = warm_map_code()
    job.corpus = corpus  # from now on each epoch's clustering space is drawn (`Job.live`)
    _remember_training(run_id, True)  # a server stopped from here on resumes it when it starts again
    run = train_in_process(cfg, corpus, default_runs_dir(), default_cache_dir(), progress=job.on_training)
    _remember_training(run_id, False)
    job.update(EMBEDDING_FOR_MAP, 0, 1)
    exploration = explore(run, cache_root=default_cache_dir(), progress=lambda stage, d, t: job.update(
        f"{EMBEDDING_FOR_MAP}: {stage}", d, t))
    job.update(f"{FITTING_MAP} (UMAP)", 0, 1)
    warming.join()
    project(exploration)
    return run


_WARMING_LOCK, _WARMING = threading.Lock(), []  # the server's one warm-up thread, once started


def warm_map_code() -> threading.Thread:
    """Once per server: `core.projection.warm_up` in a thread, started by the first job before its own work
    (the demo job: while it generates the corpus, which leaves a core idle). A job joins it before its map."""
    with _WARMING_LOCK:
        if not _WARMING:
            _WARMING.append(threading.Thread(target=_warm_up_map_code, name="UMAP warm-up", daemon=True))
            _WARMING[0].start()
        return _WARMING[0]


def _warm_up_map_code() -> None:
    from core.projection import warm_up  # imports scikit-learn (~2 s): in this thread, not in the job that starts it
    warm_up()


CLIP_MODULES = ("core.locator", "core.frontend", "core.analysis")  # what a click on a point imports: torch, librosa,
# scikit-learn and scipy.stats, about 3 s on two cores


@st.cache_resource(show_spinner=False)
def warm_clip_code() -> threading.Thread:
    """Once per server, after the first map: `CLIP_MODULES` imported in a thread, so that the first click on a point
    does not wait for them (the map page is drawn without them: `core/__init__` says why)."""
    thread = threading.Thread(target=lambda: [importlib.import_module(m) for m in CLIP_MODULES],
                              name="clip-code warm-up", daemon=True)
    thread.start()
    return thread


_TRAININGS_LOCK = threading.Lock()


def _trainings_file() -> Path:
    """The runs this app is training (their ids), kept across server restarts."""
    return default_data_dir() / "app-trainings.json"


def _remember_training(run_id: str, training: bool) -> None:
    with _TRAININGS_LOCK:
        ids = set(_remembered_trainings()) - {run_id} | ({run_id} if training else set())
        atomic_write_json(_trainings_file(), sorted(ids))


def _remembered_trainings() -> list[str]:
    try:
        return list(json.loads(_trainings_file().read_text()))
    except (OSError, ValueError):  # none yet, or unreadable: nothing to resume
        return []


@st.cache_resource(show_spinner=False)
def resumed_trainings() -> dict[str, Job]:
    """Once per server: the trainings this app started that a stopped server left unfinished
    (`RunStore.interrupted`), resumed in the background from their last finished epoch."""
    mine, jobs = set(_remembered_trainings()), {}
    for info, corpus in RunStore(default_runs_dir()).interrupted():
        if info.run_id in mine:
            jobs[info.run_id] = _start(Job(f"{info.run_id} (resumed)"),
                                       lambda job, corpus=corpus, cfg=info.config: _train_and_map(job, corpus, cfg))
    return jobs


@st.cache_resource(show_spinner=False)
def demo_job(data_dir: str, preset_name: str = "demo") -> Job:
    """First start: build the demo corpus, train the demo run and fit its map, once per server.

    `$SER_DEMO_PRESET` picks another preset (the tests use "tiny" to get there in seconds).
    """
    def work(job: Job) -> Run:
        DEMO_RUNNING.set()
        warm_map_code()  # compiles while the corpus is synthesised (one core each), not after the training (two)
        try:
            manifest = demo_corpus_in_process(Path(data_dir) / "demo",
                                              progress=lambda d, t: job.update("synthesising the demo corpus", d, t))
            return _train_and_map(job, load_manifest(manifest), preset(preset_name))
        finally:
            DEMO_RUNNING.clear()
    return _start(Job("demo"), work)


DEMO_RUNNING = threading.Event()  # set while `demo_job` works: the first start's page stays until the map is fitted


@st.cache_resource(show_spinner=False)
def training_jobs() -> dict[tuple[str, str], Job]:
    """Training jobs started from the Runs page, by (corpus, preset)."""
    return {}


def start_training(corpus_path: str, preset_name: str) -> Job:
    jobs = training_jobs()
    key = (corpus_path, preset_name)
    if key not in jobs or jobs[key].finished.is_set():
        cfg = preset(preset_name)
        corpus = load_corpus(corpus_path, labels=cfg.labels)  # errors surface now, on the page
        jobs[key] = _start(Job(f"{preset_name} on {corpus_path}"), lambda job: _train_and_map(job, corpus, cfg))
    return jobs[key]


@st.cache_resource(show_spinner="Embedding the corpus…", max_entries=4)
def load_exploration(run_id: str, network: str | None) -> Exploration:
    """A run's latent space over its own corpus (imported models: over the built-in demo corpus)."""
    run = RunStore(default_runs_dir()).load(run_id)
    return explore(run, corpus_to_explore(run), network=network, cache_root=default_cache_dir())


@st.cache_data(show_spinner="Fitting the map…", max_entries=8)
def load_map(run_id: str, network: str | None, n_components: int = 2, space: str = "cluster") -> np.ndarray:
    return project(load_exploration(run_id, network), UmapConfig(n_components=n_components, space=space))


@st.cache_data(show_spinner="Computing the statistics…", max_entries=8)
def load_analysis(run_id: str, network: str | None, splits: tuple[str, ...] = ()) -> DependenceReport:
    return analyze_exploration(load_exploration(run_id, network), list(splits) or None)


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def load_locator(run_id: str, network: str | None, space: str = "cluster") -> Locator:
    from core.locator import Locator
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
    """The utterance table of the map (`core.explore.utterance_table`): one object shared by every session and
    rerun, read-only (a copy per rerun costs ~0.3 s at 150 000 utterances). Its text columns are categorical:
    the map sends them to the browser on every rerun, dictionary-encoded."""
    table = utterance_table(load_exploration(run_id, network), load_map(run_id, network))
    return table.astype({column: "category" for column in ("split", "speaker", "emotion")})


@st.cache_data(show_spinner=False, max_entries=8)
def load_cluster_labels(run_id: str, network: str | None) -> pd.DataFrame:
    """Each cluster's words and where to write them on the map (`core.cluster_words`), from the predictions
    (every utterance has one, labelled or not)."""
    exploration, coords = load_exploration(run_id, network), load_map(run_id, network)
    latent = exploration.latent
    words = cluster_descriptions(latent.cluster, latent.predictions, len(latent.centroids))
    centres = cluster_centres(coords, latent.cluster, len(latent.centroids))
    return words.assign(x=centres[:, 0], y=centres[:, 1])


@st.cache_data(show_spinner=False, max_entries=64)
def load_spectrogram(path: str, run_id: str) -> np.ndarray:
    """(frames, mel bins) un-normalised mel power of one clip, as the network's frontend computes it."""
    from core.frontend import load_features
    cfg = RunStore(default_runs_dir()).load(run_id).config
    loaded = load_features([path], cfg.audio, cfg.features, cfg.chunks)
    if not loaded.clips:
        raise AudioLoadingError(path, next(iter(loaded.errors.values()), "could not be read"))
    return loaded.clips[0].features
