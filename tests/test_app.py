"""AppTest of every page against temporary stores, and the Streamlit configuration in effect."""
import subprocess
import sys

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO

APP = str(REPO / "app" / "streamlit_app.py")


@pytest.fixture
def empty_store(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SER_RUNS_DIR", str(tmp_path / "data" / "runs"))
    return tmp_path


def test_predict_page_with_empty_store_says_how_to_start(empty_store):
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/predict.py").run()
    assert not at.exception
    assert "import-official" in at.info[0].value


def test_predict_page_offers_the_imported_run(official_run, monkeypatch):
    monkeypatch.setenv("SER_RUNS_DIR", str(official_run.dir.parent))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/predict.py").run()
    assert not at.exception
    assert at.selectbox(key="predict.run").value == official_run.run_id


def test_streamlit_config_file_is_in_effect():
    out = subprocess.run([sys.executable, "-m", "streamlit", "config", "show"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    assert "maxUploadSize = 300" in out and "maxMessageSize = 400" in out and 'primaryColor = "#c2185b"' in out


def test_demo_page_generates_the_corpus_on_first_start(empty_store):
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()  # the page reruns itself while the background job synthesises the corpus
    assert not at.exception
    assert [m.value for m in at.metric] == ["360", "240"]
    assert (empty_store / "data" / "demo" / "manifest.csv").is_file()
    at.segmented_control(key="demo.split").set_value("test").run()
    assert not at.exception and at.selectbox(key="demo.clip").options[0].startswith("audio/")
