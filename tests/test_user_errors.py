"""One base class for the errors a user can cause (issue 30): the CLI prints any of them as one line, the app shows
any of them as a message, with no list of classes to keep in step; anything else stays a traceback."""
import pytest
from streamlit.testing.v1 import AppTest

from core.cli.main import main
from core.data.manifest import ManifestError
from core.errors import UserError
from tests.conftest import REPO

APP = str(REPO / "app" / "streamlit_app.py")


class NewError(UserError):
    """An error class core does not have yet: neither the CLI nor the app may need to be told of it."""


def test_the_cli_prints_any_user_error_as_one_line_and_exits_2(monkeypatch, capsys, tmp_path):
    def store(*args, **kwargs):
        raise NewError("the store at X is a file, expected a folder")
    monkeypatch.setattr("core.cli.main.RunStore", store)
    assert main(["--runs-dir", str(tmp_path), "runs"]) == 2
    assert capsys.readouterr().err == "error: the store at X is a file, expected a folder\n"
    monkeypatch.setattr("core.cli.main.RunStore", lambda *a, **k: 1 / 0)  # a bug: its traceback, not a line
    with pytest.raises(ZeroDivisionError):
        main(["--runs-dir", str(tmp_path), "runs"])


@pytest.mark.parametrize("error", [NewError("a clip of 0 samples"), ManifestError("manifest.csv: no path column")])
def test_the_app_shows_any_user_error_as_a_message(app_store, monkeypatch, error):
    def broken(*args, **kwargs):
        raise error
    monkeypatch.setattr("app.loaders.explore", broken)
    import streamlit as st
    st.cache_resource.clear()  # explorations cached by earlier tests would hide the failure
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception and at.error[0].value == str(error)
    st.cache_resource.clear()
    st.cache_data.clear()


def test_every_error_class_core_raises_for_a_user_derives_from_user_error():
    """The classes the CLI and the app each listed before (11 and 7), and the others a user's input raises."""
    from core.audio.decode import AudioLoadingError
    from core.data.extraction import CorpusAudioError
    from core.evaluate.cross_corpus import EvaluationError
    from core.explore.agreement import NoCommonUtterances
    from core.explore.exploration import ExploreError
    from core.model.official import OfficialImportError
    from core.runtime.distributed import DistributedError
    from core.store.atomic import CorruptFileError
    from core.store.run_store import RunLockedError, RunNotFoundError
    from core.training.checks import TrainingConfigError
    for cls in (AudioLoadingError, CorpusAudioError, EvaluationError, NoCommonUtterances, ExploreError,
                OfficialImportError, DistributedError, CorruptFileError, RunLockedError, RunNotFoundError,
                TrainingConfigError, ManifestError):
        assert issubclass(cls, UserError), cls
