"""AppTest of every page: empty store (first start), a tiny trained run, the imported published models."""
import ast
import os
import subprocess
import sys
import time

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO

APP = str(REPO / "app" / "streamlit_app.py")
PAGES = ["app_pages/latent_map.py", "app_pages/clusters.py", "app_pages/review.py", "app_pages/locate.py", "app_pages/compare.py",
         "app_pages/runs.py", "app_pages/export.py"]


def test_first_start_builds_the_demo_and_opens_the_explorer(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SER_RUNS_DIR", str(tmp_path / "data" / "runs"))
    monkeypatch.setenv("SER_DEMO_PRESET", "tiny")
    at = AppTest.from_file(APP, default_timeout=600)
    at.run()
    assert not at.exception and at.title[0].value == "DeepEmoCluster Explorer"  # getting started, with progress
    deadline = time.monotonic() + 600
    while not any(box.key == "run" for box in at.selectbox) and time.monotonic() < deadline:
        time.sleep(1.0)  # the page's progress fragment polls the job; the whole app reruns once it is done
        at.run()
        assert not at.exception, at.exception
    assert (tmp_path / "data" / "demo" / "manifest.csv").is_file()
    assert at.selectbox(key="run").value.startswith("tiny-")
    assert at.selectbox(key="latent.color_by").value == "cluster"  # the latent map is the default page


MAP_SPY = """
import sys, threading
from streamlit.testing.v1 import AppTest
HEAVY, importer = ("torch", "sklearn", "scipy.stats", "librosa", "umap", "numba"), {}

class Spy:  # records which thread first imports each heavy module
    def find_spec(self, name, path=None, target=None):
        if name in HEAVY:
            importer.setdefault(name, threading.current_thread().name)

sys.meta_path.insert(0, Spy())
at = AppTest.from_file(sys.argv[1], default_timeout=120).run()
assert not at.exception, at.exception
assert at.title[0].value == "Latent map", at.title
for thread in threading.enumerate():
    if thread.name == "clip-code warm-up":
        thread.join()
print(sorted(importer.items()))
"""


def test_the_map_of_a_cached_run_is_drawn_without_torch_or_scikit_learn(app_store):
    """The cached start (server start to visible map, issue 12: <= 5 s) rests on the map page only reading cached
    results: torch, scikit-learn, scipy.stats and librosa (~3 s of imports on two cores) are imported after the map,
    by the warm-up thread, for the first click on a point; UMAP and numba not at all."""
    done = subprocess.run([sys.executable, "-c", MAP_SPY, APP], cwd=REPO, env=os.environ, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    imported = dict(ast.literal_eval(done.stdout.splitlines()[-1]))  # [(module, thread name), ...]
    assert set(imported) == {"torch", "sklearn", "scipy.stats", "librosa"}
    assert set(imported.values()) == {"clip-code warm-up"}


@pytest.mark.parametrize("page", PAGES)
def test_pages_with_a_trained_run(app_store, page):
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert at.title[0].value


def test_latent_map_colours_searches_and_filters(app_store):
    """Every colour option draws; a search with no match and filters that keep nothing are messages, not errors."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert "utterances in the clustering space" in at.caption[0].value
    options = at.selectbox(key="latent.color_by").options
    assert {"cluster", "arousal true", "arousal predicted", "arousal error", "split"} <= set(options)
    for option in ("arousal_predicted", "dominance_error", "split"):
        at.selectbox(key="latent.color_by").select(option).run()
        assert not at.exception, at.exception
    at.text_input(key="latent.search").input("no-such-file").run()
    assert not at.exception and "No file or speaker contains 'no-such-file'" in at.warning[0].value
    first = at.text_input(key="latent.inspect").placeholder.rsplit(" ", 1)[-1]
    at.text_input(key="latent.search").input(first[-9:]).run()
    assert not at.exception and any("match" in c.value for c in at.caption)
    at.text_input(key="latent.search").input("").run()
    low = at.slider(key="latent.range_arousal_predicted").min
    at.slider(key="latent.range_arousal_predicted").set_value((low, low)).run()
    assert not at.exception and any("No utterance passes the filters" in w.value for w in at.warning)


def test_latent_map_offers_a_colouring_added_as_one_row(app_store, monkeypatch):
    """Issue 30: a new way to colour the map is one row of `core.explore.colourings.COLOURINGS`: the map offers it,
    draws it and filters by it."""
    from core.explore import colourings
    row = colourings.Colouring(name="chunk_agreement", column="chunks_in_cluster", kind="continuous",
                               label="chunks in its cluster", palette=("#000000", "#ffffff"), missing="no chunks",
                               limits=(0.0, 1.0))
    monkeypatch.setattr(colourings, "COLOURINGS", (*colourings.COLOURINGS, row))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert "chunks in its cluster" in at.selectbox(key="latent.color_by").options
    at.selectbox(key="latent.color_by").select("chunk_agreement").run()
    assert not at.exception, at.exception
    assert at.slider(key="latent.range_chunk_agreement").label == "chunks in its cluster"


def test_filters_say_what_an_empty_choice_keeps(app_store):
    """Issue 30: the "Splits" filter read "Choose options" when it meant every split."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    placeholders = {box.key: box.proto.placeholder for box in at.multiselect}
    assert placeholders["latent.splits"] == "all splits" and placeholders["latent.clusters"] == "all clusters"
    assert all(text.startswith("all ") for text in placeholders.values()), placeholders
    at.switch_page("app_pages/clusters.py").run()
    assert not at.exception, at.exception
    assert at.multiselect(key="clusters.splits").proto.placeholder == "all splits"


def test_clusters_page_names_the_dependence_statistics_for_readers(app_store):
    """Issue 30: the dependence table showed `kruskal_h`, `shuffled_h_mean` and n = "360.000"."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/clusters.py").run()
    assert not at.exception, at.exception
    table = next(frame.value for frame in at.dataframe if "Kruskal–Wallis H" in frame.value.columns)
    assert {"H with shuffled clusters (mean)", "p-value", "n"} <= set(table.columns)
    assert not any("_" in column for column in table.columns), list(table.columns)
    assert table["n"].dtype.kind == "i" and (table["n"] > 0).all()


@pytest.mark.parametrize("store", ["app_store", "official_app_store"])
def test_clip_inspector_shows_a_clip_its_chunks_and_neighbours(store, request):
    """Issue 12: the inspector of any corpus point (trained runs and the imported three-network models)."""
    request.getfixturevalue(store)
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.text_input(key="latent.inspect").input("nowhere.wav").run()
    assert not at.exception and "No utterance named 'nowhere.wav'" in at.warning[0].value
    first = at.text_input(key="latent.inspect").placeholder.rsplit(" ", 1)[-1]
    at.text_input(key="latent.inspect").input(first).run()
    assert not at.exception, at.exception
    assert at.subheader[-1].value == f"Clip {first}"
    chunks = at.radio(key="latent.chunk")
    assert len(chunks.options) >= 2
    chunks.set_value(1).run()
    assert not at.exception, at.exception
    assert any("Nearest corpus clips" in m.value for m in at.markdown)


def test_runs_page_shows_curves_and_the_ssl_ablation(app_store):
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/runs.py").run()
    assert not at.exception
    assert any("SSL ablation" in m.value for m in at.markdown)
    assert any("Dev CCC per epoch" in m.value for m in at.markdown)
    assert any(c.value.startswith("Training passes ran in fp32 (`train.precision` = 'fp32'") for c in at.caption)
    tables = [d.value for d in at.dataframe]
    test_ccc = next(t for t in tables if "CCC [95 % CI]" in t)  # every test CCC with its interval
    assert test_ccc["CCC [95 % CI]"].str.contains(r"\[").all()
    assert any("CCC difference [95 % CI]" in t for t in tables)  # what the unlabelled stage bought
    at.text_input(key="runs.corpus").input("/nowhere/manifest.csv")
    at.button[0].click().run()  # a bad corpus path: an error on the page, the session goes on
    assert not at.exception
    assert "found nothing at /nowhere/manifest.csv" in at.error[0].value


def test_runs_page_predicts_an_older_runs_test_clips_on_request_not_on_the_visit(app_store, tmp_path, monkeypatch):
    """A run stored before runs kept their test predictions: the page says so and offers to predict them (for a
    large corpus, minutes: never inside a visit), then shows the test CCC from the stored predictions."""
    import shutil

    from core.store.atomic import write_marker
    from core.store.run_store import COMPLETE, TEST_PREDICTIONS
    runs = tmp_path / "runs"
    shutil.copytree(app_store / "runs", runs)
    for stored in runs.glob(f"*/{TEST_PREDICTIONS}"):  # as runs were stored before they kept them
        stored.unlink()
        write_marker(stored.parent / COMPLETE, [p for p in stored.parent.iterdir() if p.is_file() and p.name != COMPLETE])
    monkeypatch.setenv("SER_RUNS_DIR", str(runs))
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.switch_page("app_pages/runs.py").run()
    assert not at.exception, at.exception
    assert any("stored before runs kept their test predictions" in i.value for i in at.info)
    assert not any("CCC [95 % CI]" in d.value for d in at.dataframe)
    assert not any("CCC difference [95 % CI]" in d.value for d in at.dataframe)  # the ablation's partner: the same
    at.button(key="runs.predict_test").click().run()
    assert not at.exception, at.exception
    assert len(list(runs.glob(f"*/{TEST_PREDICTIONS}"))) == 1  # stored with the run: once
    at.button(key="runs.predict_partner_test").click().run()
    assert not at.exception, at.exception
    assert not any("stored before" in i.value for i in at.info)
    assert any("CCC difference [95 % CI]" in d.value for d in at.dataframe)
    test_ccc = next(d.value for d in at.dataframe if "CCC [95 % CI]" in d.value)
    assert test_ccc["CCC [95 % CI]"].str.contains(r"\[").all()


@pytest.mark.parametrize("page", PAGES)
def test_pages_with_the_published_models(official_app_store, page):
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    assert at.selectbox(key="network").value == "arousal"
    at.switch_page(page).run()
    assert not at.exception, at.exception


def test_streamlit_config_file_is_in_effect():
    out = subprocess.run([sys.executable, "-m", "streamlit", "config", "show"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    assert "maxUploadSize = 300" in out and "maxMessageSize = 400" in out and 'primaryColor = "#c2185b"' in out


@pytest.mark.parametrize("error", ["ExploreError", "CorruptFileError"])
def test_a_core_error_is_shown_as_a_message_not_a_traceback(app_store, monkeypatch, error):
    from core.explore.exploration import ExploreError
    from core.store.atomic import CorruptFileError
    raised = {"ExploreError": ExploreError("run x has no corpus of its own"),
              "CorruptFileError": CorruptFileError("runs/x/model.pt", "changed since it was written")}[error]

    def broken(*args, **kwargs):
        raise raised
    monkeypatch.setattr("app.loaders.explore", broken)
    import streamlit as st
    st.cache_resource.clear()  # the explorations cached by earlier tests would hide the failure
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception
    assert at.error[0].value == str(raised)
    st.cache_resource.clear()
    st.cache_data.clear()


def test_compare_two_runs_over_one_corpus(app_store):
    """Issue 12: the agreement of the SSL run's clusters with its ablation partner's, over their common utterances."""
    from core.store.run_store import RunStore
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception, at.exception
    nmi = float(next(m for m in at.metric if m.label == "NMI").value)
    common = int(next(m for m in at.metric if m.label == "common utterances").value.replace(",", ""))
    assert 0.0 <= nmi <= 1.0
    assert common == len(RunStore(app_store / "runs").list()[0].corpus())  # the same corpus: every utterance
    contingency = at.dataframe[0].value
    assert contingency.to_numpy().sum() == common


def test_a_training_job_draws_its_latest_epochs_clustering_space(tmp_path):
    """A job relays each epoch's clustering space (`core.training.train.TrainProgress.space`); a thread of its own fits its
    map, and the job's progress shows it, coloured by pseudo-label or by a true attribute."""
    import numpy as np
    import pandas as pd

    from app import trainings
    from core.training.epoch_space import epoch_space
    from core.training.train import TrainProgress
    from tests.helpers import chunk_set_without_frames
    n = 30
    chunks = chunk_set_without_frames([f"audio/clip_{i:02d}.wav" for i in range(n)], 1)
    corpus = pd.DataFrame({"split": "train", "speaker": "spk", "emotion": "calm", "arousal": np.linspace(1, 7, n),
                           "valence": 4.0, "dominance": np.nan}, index=chunks.files)
    vectors = np.random.default_rng(0).standard_normal((n, 8)).astype(np.float32)
    job = trainings.Job("live test", corpus=corpus)
    job.on_training(TrainProgress("clustered", 1, 4, 1, 1, space=epoch_space(1, chunks, vectors, np.arange(n) % 3, 3)))
    deadline = time.monotonic() + 300  # the first UMAP fit of this process compiles numba's code
    while job.live is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.live.error is None and job.live.epoch == 1 and len(job.live.table) == n
    assert job.live.table["cluster"].tolist() == (np.arange(n) % 3).tolist()

    def page(job):
        from app import widgets
        widgets.job_progress_ui(job)
    at = AppTest.from_function(page, args=(job,), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert at.subheader[0].value == "The latent space as epoch 2 clustered it"
    colour = at.radio(key="live.live test.colour")
    # the map's colourings the table holds: no dominance label, so not offered
    assert colour.options == ["pseudo-label", "arousal true", "valence true", "emotion", "speaker"]
    colour.set_value("arousal").run()
    assert not at.exception, at.exception
