"""Where the data folder, the run store and the feature cache live by default (environment or repository).

Only storage modules and entry points (CLI, app, benchmarks) ask; library functions take folders as arguments.
"""
from __future__ import annotations

import os
from pathlib import Path


def default_data_dir() -> Path:
    """`$SER_DATA_DIR`, else the repository's `data/` folder (the package is installed editable)."""
    return Path(os.environ.get("SER_DATA_DIR") or Path(__file__).resolve().parents[2] / "data")


def default_runs_dir() -> Path:
    """`$SER_RUNS_DIR`, else `<data>/runs`."""
    return Path(os.environ.get("SER_RUNS_DIR") or default_data_dir() / "runs")


def default_cache_dir() -> Path:
    """`<data>/cache`: the feature store's root."""
    return default_data_dir() / "cache"


def default_demo_dir() -> Path:
    """`<data>/demo`: the built-in demo corpus (`core.data.synthetic.make_demo_corpus`)."""
    return default_data_dir() / "demo"
