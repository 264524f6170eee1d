"""What the code before core/ became packages (issue 30) wrote still loads: a run, its feature store, and its
analysis caches (latent space, map, novelty reference), written by that code itself, run from git history."""
import subprocess
import sys

import pandas as pd
import pytest

from core.config import tiny
from core.data.corpus_formats import load_manifest
from core.data.extraction import extract_features
from core.explore.exploration import explore, novelty, project
from core.model.bundle import load_bundle
from core.model.inference import Predictor
from core.store.feature_store import FeatureStore
from core.store.run_store import RunStore
from core.training.train import train
from tests.conftest import REPO

FLAT_CORE = "4a844ce"  # the last commit whose core/ was one flat folder of modules
OLD_WRITER = """
import sys
from pathlib import Path
from core.config import tiny
from core.explore import explore, novelty, project
from core.manifest import load_manifest
from core.run_store import RunStore
from core.synthetic import make_demo_corpus
from core.train import train
data = Path(sys.argv[1])
corpus = load_manifest(make_demo_corpus(data / "corpus", n_train=16, n_dev=6, n_test=6, n_unlabelled=8))
run = train(tiny(), corpus, RunStore(data / "runs"), data / "cache").run
exploration = explore(run, cache_root=data / "cache")
project(exploration)
novelty(exploration)
print(run.run_id)
"""


@pytest.fixture(scope="module")
def old_data(tmp_path_factory):
    """A data folder written by the flat-core code: its `core/` exported from git and run in a process of its own."""
    old, data = tmp_path_factory.mktemp("flat-core"), tmp_path_factory.mktemp("flat-core-data")
    archive = subprocess.run(["git", "archive", FLAT_CORE, "core"], cwd=REPO, capture_output=True)
    if archive.returncode != 0:  # a clone without that history (shallow): nothing to compare with
        pytest.skip(f"commit {FLAT_CORE} is not in this clone: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
    written = subprocess.run([sys.executable, "-c", OLD_WRITER, str(data)], cwd=old, capture_output=True, text=True,
                             timeout=600)  # `cwd` first on sys.path: the old `core` package, not this one
    assert written.returncode == 0, written.stderr[-3000:]
    return data, written.stdout.split()[-1]


def test_a_run_written_by_the_flat_core_loads_predicts_and_is_found_again(old_data):
    data, run_id = old_data
    (run,) = RunStore(data / "runs").list()
    assert run.run_id == run_id and len(run.history()) == 2
    assert set(load_bundle(run).networks) == set(run.info.networks)
    assert run.test_predictions() is not None
    corpus = load_manifest(data / "corpus" / "manifest.csv")
    again = train(tiny(), corpus, RunStore(data / "runs"), data / "cache")  # the same config and corpus: found
    assert again.run.run_id == run_id and not again.trained
    clip = corpus["path"].iloc[0]
    predicted = Predictor.from_run(run, "cpu").predict_files([clip])
    assert list(predicted.utterances.index) == [clip]


def test_caches_written_by_the_flat_core_are_read_not_recomputed(old_data, monkeypatch):
    data, _ = old_data
    (run,) = RunStore(data / "runs").list()
    cfg = run.config
    corpus = load_manifest(data / "corpus" / "manifest.csv")
    extraction = extract_features(corpus, FeatureStore(data / "cache", cfg.audio, cfg.features, cfg.chunks),
                                  cfg.audio, cfg.features, cfg.chunks, workers=1)
    assert extraction.stats.n_extracted == 0 and len(extraction.features.files) == len(corpus)

    def recomputed(*args, **kwargs):
        raise AssertionError("a cache written by the flat core was recomputed")
    monkeypatch.setattr("core.explore.embedding.compute_latent", recomputed)
    monkeypatch.setattr("core.explore.exploration.corpus_novelty", recomputed)
    monkeypatch.setattr("core.explore.projection.LatentProjector.fit", recomputed)
    exploration = explore(run, cache_root=data / "cache")
    coords, reference = project(exploration), novelty(exploration)
    assert coords.shape == (len(exploration.latent.files), 2) and reference.n_corpus == len(exploration.latent.files)
    assert isinstance(exploration.latent.predictions, pd.DataFrame)
