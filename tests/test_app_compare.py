"""AppTest of Compare runs against other representations (issue 32, items 4 and 5): two trained runs, the demo's runs
with a baseline of each kind and imported embeddings on every page, and the newcomer's one-click baselines."""
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.store.run_store import RunStore
from tests.test_app import APP, PAGES


@pytest.fixture
def store_copy(app_data, tmp_path, monkeypatch):
    """A private copy of `app_data` (these tests add runs; the others share it), the app pointed at it. The app's
    caches are keyed by run id and the copy's runs have the shared store's ids: emptied before and after."""
    data = tmp_path / "data"
    shutil.copytree(app_data, data)
    monkeypatch.setenv("SER_DATA_DIR", str(data))
    monkeypatch.setenv("SER_RUNS_DIR", str(data / "runs"))
    st.cache_data.clear()
    st.cache_resource.clear()
    yield data
    st.cache_data.clear()
    st.cache_resource.clear()


def _compare_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception, at.exception
    return at


TABLES = {"runs": "kind", "summary": "ε² shuffled", "differences": "ε² says"}  # AppTest's tables have no key: a column each


def _table(at: AppTest, name: str) -> pd.DataFrame:
    return next(frame.value for frame in at.dataframe if TABLES[name] in frame.value.columns)


def test_compare_two_trained_runs_against_each_other(store_copy):
    newest, older = (r.run_id for r in RunStore(store_copy / "runs").list())
    at = _compare_page()
    assert at.multiselect(key=f"compare.against.{newest}").value == [older]  # every other run over the corpus
    assert list(_table(at, "runs").index) == [newest, older]
    differences = _table(at, "differences")
    assert len(differences) == 3 and set(differences["ε² says"]) <= {f"{newest} more", f"{older} more", "no clear difference"}
    assert len(_table(at, "summary")) == 6  # two runs x three attributes
    assert at.download_button(key="compare.download")


def test_every_page_takes_imported_embeddings_and_compare_lists_the_baselines(store_copy):
    from core.training.representations import baseline_run, embeddings_run
    runs = RunStore(store_copy / "runs")
    corpus = runs.list()[0].corpus()
    baselines = [baseline_run(corpus, features, runs, store_copy / "cache").run_id for features in ("egemaps", "logmel-stats")]
    vectors = np.random.default_rng(0).standard_normal((len(corpus), 8))
    pd.DataFrame({"path": corpus.index, "vector": list(vectors)}).to_parquet(store_copy / "model.parquet")
    embeddings = embeddings_run(corpus, store_copy / "model.parquet", runs).run_id
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.selectbox(key="run").set_value(embeddings).run()
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
        if page == "app_pages/locate.py":
            assert "cannot be located" in at.info[0].value
        if page == "app_pages/compare.py":
            compared = _table(at, "runs")
            assert compared.index[0] == embeddings and set(baselines) <= set(compared.index)
            assert {"embeddings", "baseline (egemaps)", "baseline (logmel-stats)", "trained"} == set(compared["kind"])


def test_one_run_over_the_demo_gets_its_baselines_with_one_click(store_copy):
    runs = RunStore(store_copy / "runs")
    newest = _newcomer(store_copy)
    at = _compare_page()
    assert not at.multiselect and "only run over its corpus" in at.info[0].value
    at.button(key="compare.build").click().run()
    assert not at.exception, at.exception
    made = {r.info.representation for r in runs.list() if r.info.kind == "baseline"}
    assert made == {"egemaps", "logmel-stats"}
    assert set(at.multiselect(key=f"compare.against.{newest}").value) == {
        r.run_id for r in runs.list() if r.info.kind == "baseline"}
    assert len(_table(at, "differences")) == 3 * 3  # three pairs x three attributes


def _newcomer(store: Path) -> str:
    """The store holding the demo run alone (the older run's folder removed); returns its id."""
    newest, older = RunStore(store / "runs").list()
    shutil.rmtree(older.dir)
    return newest.run_id


def test_without_opensmile_only_the_log_mel_baseline_is_built_and_why_is_said(store_copy, monkeypatch):
    monkeypatch.setattr("core.represent.vectors.opensmile_missing", lambda: "eGeMAPS needs the `opensmile` package")
    run_id = _newcomer(store_copy)
    at = _compare_page()
    assert "eGeMAPS needs the `opensmile` package" in at.caption[0].value
    at.button(key="compare.build").click().run()
    assert not at.exception, at.exception
    assert [r.info.representation for r in RunStore(store_copy / "runs").list() if r.info.kind == "baseline"] == ["logmel-stats"]
    assert len(at.multiselect(key=f"compare.against.{run_id}").value) == 1 and len(_table(at, "differences")) == 3


def test_a_baseline_that_cannot_be_built_is_an_error_message_and_the_other_is_kept(store_copy, monkeypatch):
    from core.represent.vectors import RepresentationError
    from core.training import representations
    build = representations.baseline_run

    def refuse_egemaps(corpus, features, *args, **kwargs):
        if features == "egemaps":
            raise RepresentationError("2 clips could not be read: a.wav, b.wav")
        return build(corpus, features, *args, **kwargs)
    monkeypatch.setattr(representations, "baseline_run", refuse_egemaps)
    _newcomer(store_copy)
    at = _compare_page()
    at.button(key="compare.build").click().run()
    assert not at.exception, at.exception
    assert at.error[0].value == "eGeMAPS baseline: 2 clips could not be read: a.wav, b.wav"
    assert at.button(key="compare.show")  # the log-mel baseline was built: one click shows the comparison
    at.button(key="compare.show").click().run()
    assert len(_table(at, "differences")) == 3


def test_the_published_models_get_baselines_of_the_demo_corpus_they_are_explored_over(store_copy, official_run, monkeypatch):
    """An imported model has no corpus (nor fingerprint): its baselines are of the demo corpus, and are found as runs
    over the same corpus as it."""
    shutil.copytree(official_run.dir, store_copy / "official" / official_run.run_id)
    monkeypatch.setenv("SER_RUNS_DIR", str(store_copy / "official"))
    at = _compare_page()
    at.button(key="compare.build").click().run()
    assert not at.exception, at.exception
    compared = _table(at, "runs")
    assert compared["kind"].iloc[0] == "official"
    assert set(compared["kind"].iloc[1:]) == {"baseline (egemaps)", "baseline (logmel-stats)"}
    assert "no test predictions" in _table(at, "summary").loc[("arousal", official_run.run_id), "test CCC [95 % CI]"]
