"""Shared fixtures: generated audio, the published checkpoints (when present) and temporary stores."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests import disks
from tests.helpers import sine, write_wav

REPO = Path(__file__).resolve().parents[1]
OFFICIAL = REPO.parent / "shared" / "official"


def pytest_configure(config):
    """The test session sets glibc's malloc options as the CLI, the app server and the benchmarks do
    (`core.runtime.process`), so in-process training and embedding run at the speed users see."""
    from core.runtime.process import keep_freed_memory
    keep_freed_memory()


@pytest.fixture(scope="session")
def official_dir() -> Path:
    """The authors' published checkpoints and reference outputs, beside the repository.

    A user's clone may not have them: the tests that need them skip there. CI sets
    SER_REQUIRE_OFFICIAL=1, which turns that skip into a failure.
    """
    if not (OFFICIAL / "reference" / "predictions.csv").is_file():
        message = f"published checkpoints not found at {OFFICIAL}"
        if os.environ.get("SER_REQUIRE_OFFICIAL") == "1":
            pytest.fail(message + " (SER_REQUIRE_OFFICIAL=1)")
        pytest.skip(message)
    return OFFICIAL


@pytest.fixture(scope="session")
def official_run(official_dir, tmp_path_factory):
    """The published models imported into a temporary run store."""
    from core.model.official import find_official_files, import_official
    from core.store.run_store import RunStore
    store = RunStore(tmp_path_factory.mktemp("official-runs"))
    files = find_official_files(official_dir)
    checkpoints, norm_dir = files.checkpoints, files.norm_dir
    return import_official(checkpoints, norm_dir, store)


@pytest.fixture
def speechlike_clips(tmp_path) -> list[Path]:
    """Five short clips with different pitch, length and noise (0.3 s to 3 s)."""
    rng = np.random.default_rng(0)
    clips = []
    for i, (duration, f0) in enumerate([(0.3, 150), (1.0, 220), (1.7, 180), (2.4, 300), (3.0, 120)]):
        signal = sine(duration, frequency_hz=f0) * (1 + 0.5 * sine(duration, frequency_hz=4.0))
        signal += 0.01 * rng.standard_normal(len(signal)).astype(np.float32)
        clips.append(write_wav(tmp_path / "clips" / f"clip_{i}.wav", signal))
    return clips


@pytest.fixture(scope="session")
def app_data(tmp_path_factory):
    """A data folder with a small demo corpus, a tiny trained run (with its latent space and map) and the
    same run without the unlabelled stage."""
    from core.config import apply_overrides, tiny
    from core.explore.exploration import explore, project
    from core.data.corpus_formats import load_manifest
    from core.store.run_store import RunStore
    from core.data.synthetic import make_demo_corpus
    from core.training.train import train
    data = tmp_path_factory.mktemp("app-data")
    manifest = make_demo_corpus(data / "demo", n_train=30, n_dev=10, n_test=10, n_unlabelled=30)
    labelled_only = apply_overrides(tiny(), ["train.use_unlabelled=false"])  # the SSL-ablation partner
    train(labelled_only, load_manifest(manifest), RunStore(data / "runs"), data / "cache")
    result = train(tiny(), load_manifest(manifest), RunStore(data / "runs"), data / "cache")  # newest: shown first
    project(explore(result.run, cache_root=data / "cache"))
    return data


@pytest.fixture
def app_store(app_data, monkeypatch):
    monkeypatch.setenv("SER_DATA_DIR", str(app_data))
    monkeypatch.setenv("SER_RUNS_DIR", str(app_data / "runs"))
    return app_data


@pytest.fixture
def official_app_store(app_data, official_run, monkeypatch):
    """The published models, explored over the small demo corpus of `app_data`."""
    monkeypatch.setenv("SER_DATA_DIR", str(app_data))
    monkeypatch.setenv("SER_RUNS_DIR", str(official_run.dir.parent))
    return official_run


@pytest.fixture(scope="session")
def one_hour_wav(tmp_path_factory) -> Path:
    """A one-hour 8-kHz 16-bit clip (58 MB), written a minute at a time: a warbling tone."""
    from benchmarks.long_inputs import long_wav
    return long_wav(tmp_path_factory.mktemp("long") / "one hour.wav", 60, 8_000)


@pytest.fixture
def small_disk(tmp_path):
    """A real 32 MB file system (tmpfs), unmounted afterwards; skipped where this machine does not let the test mount."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if os.geteuid() != 0 and not shutil.which("sudo"):
        pytest.skip("mounting a tmpfs needs root or sudo")
    done = disks.as_root("mount", "-t", "tmpfs", "-o", f"size=32m,uid={os.getuid()},gid={os.getgid()}",
                         "tmpfs", str(folder), check=False)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        disks.as_root("umount", "-l", str(folder))
