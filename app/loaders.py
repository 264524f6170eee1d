"""Every Streamlit cache of the app, and the background jobs that must survive reruns."""
from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import streamlit as st

from core.inference import Predictor
from core.manifest import load_manifest
from core.store import RunStore, default_data_dir, default_runs_dir


@dataclass
class Job:
    """A long task in a thread of its own: Streamlit reruns the page script, never the job."""
    label: str
    done: int = 0
    total: int = 0
    result: object = None
    error: str | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total


def _start(job: Job, target, *args, **kwargs) -> Job:
    def run():
        try:
            job.result = target(*args, progress=job.progress, **kwargs)
        except Exception as err:  # shown on the page; the app must outlive a failed job
            job.error = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=3)}"
        finally:
            job.finished.set()
    threading.Thread(target=run, name=job.label, daemon=True).start()
    return job


@st.cache_resource(show_spinner=False)
def demo_corpus_job(root: str) -> Job:
    """Generates the built-in demo corpus once per server process (a no-op when it already exists)."""
    from core.synthetic import make_demo_corpus
    return _start(Job("demo corpus"), make_demo_corpus, Path(root))


def demo_root() -> Path:
    return default_data_dir() / "demo"


@st.cache_data(show_spinner=False)
def load_demo_table(manifest: str) -> pd.DataFrame:
    return load_manifest(manifest)


def list_runs() -> list:
    return RunStore(default_runs_dir()).list()


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def load_predictor(run_id: str) -> Predictor:
    return Predictor.from_run(RunStore(default_runs_dir()).load(run_id), device="auto")
