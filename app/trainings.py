"""Background jobs that must survive reruns: the demo's first start, trainings started from the Runs page, and
trainings a stopped server left unfinished, resumed when it starts again (their run ids kept in
`data/app-trainings.json`).

Jobs run in threads owned by `st.cache_resource` singletons, so a rerun or a second browser tab sees the same job
instead of starting another one; a job's training runs in a process of its own (`app.trainer`), the thread
relaying its progress.
"""
from __future__ import annotations

import json
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from app.trainer import TrainingProcessError, demo_corpus_in_process, train_in_process
from app.warm_up import warm_map_code
from core.config import LabelConfig, preset
from core.data.corpus_formats import load_corpus, load_manifest
from core.explore.exploration import explore, project
from core.store.atomic import atomic_write_json
from core.store.paths import default_cache_dir, default_data_dir, default_runs_dir
from core.store.run_store import Run, RunStore

if TYPE_CHECKING:
    from core.training.epoch_space import EpochSpace


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
    dev_chunk_loss: float | None = None  # the released code's dev criterion (`core.training.keeping`)
    eta_s: float | None = None
    started: float = field(default_factory=time.time)
    result: object = None
    error: str | None = None
    resumed_after: int | None = None  # epochs a stopped server had finished, when this job resumed them
    finished: threading.Event = field(default_factory=threading.Event)
    corpus: pd.DataFrame | None = None  # what it trains on (a training job): the live map's hover fields
    labels: LabelConfig = field(default_factory=LabelConfig)  # its label scale: the live map's colour bars
    live: LiveMap | None = None  # the map of the latest epoch's clustering space, once one is fitted
    _live_next: EpochSpace | None = None  # an epoch's space waiting to be fitted
    _live_lock: threading.Lock = field(default_factory=threading.Lock)
    _live_fitting: bool = False

    def update(self, stage: str, done: int, total: int) -> None:
        self.stage, self.done, self.total = stage, done, total

    def on_training(self, progress) -> None:  # core.training.train.TrainProgress
        if progress.stage == "resume":
            self.resumed_after = progress.done
        self.update(f"epoch {progress.epoch + 1}/{progress.epochs}: {progress.stage}", progress.done, progress.total)
        self.epoch, self.epochs = progress.epoch, progress.epochs
        if progress.dev_ccc is not None:
            self.dev_ccc, self.dev_chunk_loss, self.eta_s = progress.dev_ccc, progress.dev_chunk_loss, progress.eta_s
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
            from core.training.epoch_space import epoch_map
            try:
                self.live = LiveMap(space.epoch, epoch_map(space, self.corpus), space.n_utterances, None)
            except Exception as err:  # e.g. too few utterances for a map: said on the page, the training goes on
                self.live = LiveMap(space.epoch, None, space.n_utterances, f"{type(err).__name__}: {err}")


@dataclass(frozen=True)
class LiveMap:
    """A training's map of its latest epoch (`core.training.epoch_space.epoch_map`), or why there is none."""
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


EMBEDDING_FOR_MAP, FITTING_MAP = "embedding the corpus for the map", "fitting the map"  # a job's stages after training


def _train_and_map(job: Job, corpus: pd.DataFrame, cfg) -> Run:
    from core.training.train import run_id_for
    run_id = run_id_for(cfg, corpus)
    warming = warm_map_code()
    job.corpus, job.labels = corpus, cfg.labels  # from now on each epoch's clustering space is drawn (`Job.live`)
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
