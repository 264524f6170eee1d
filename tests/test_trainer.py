"""The app's trainings in a process of their own (`app.trainer`): results, errors and a killed server."""
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from app.trainer import TrainingProcessError, demo_corpus_in_process, train_in_process
from core.config import apply_overrides, tiny
from core.data.corpus_formats import load_manifest
from core.data.synthetic import make_demo_corpus
from core.store.run_store import RunStore
from core.training.train import TrainProgress
from tests.conftest import REPO


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    return make_demo_corpus(tmp_path_factory.mktemp("corpus"), n_train=16, n_dev=6, n_test=6, n_unlabelled=12)


def test_a_training_in_a_child_process_reports_progress_and_returns_the_stored_run(manifest, tmp_path):
    seen: list[TrainProgress] = []
    run = train_in_process(tiny(), load_manifest(manifest), tmp_path / "runs", tmp_path / "cache", seen.append)
    assert run.run_id == RunStore(tmp_path / "runs").list()[0].run_id
    assert len(run.history()) == tiny().train.epochs
    stages = {p.stage for p in seen}
    assert {"features", "train joint", "validate"} <= stages
    assert seen[-1].epoch == tiny().train.epochs - 1 and seen[-1].dev_ccc is not None
    spaces = [p.space for p in seen if p.space is not None]  # each epoch's clustering space crossed the pipe
    assert [s.epoch for s in spaces] == [0, 1] and all(len(s.files) == 16 for s in spaces)


def test_an_error_in_the_child_reaches_the_caller_with_its_message(manifest, tmp_path):
    too_many = apply_overrides(tiny(), ["model.n_clusters=5000"])
    with pytest.raises(TrainingProcessError, match="n_clusters=5000") as raised:
        train_in_process(too_many, load_manifest(manifest), tmp_path / "runs", tmp_path / "cache", lambda p: None)
    assert "Traceback" not in str(raised.value)  # a user's error (`core.errors.UserError`) is its message alone
    assert not RunStore(tmp_path / "runs").list()


def test_the_demo_corpus_made_in_a_child_process_is_the_one_made_here(tmp_path):
    seen = []
    sizes = {"n_train": 3, "n_dev": 1, "n_test": 1, "n_unlabelled": 2}
    manifest = demo_corpus_in_process(tmp_path / "child", lambda done, total: seen.append((done, total)), **sizes)
    assert manifest == tmp_path / "child" / "manifest.csv" and seen[-1] == (7, 7)
    here = make_demo_corpus(tmp_path / "here", **sizes)
    assert manifest.read_text() == here.read_text()
    for clip in sorted((tmp_path / "here" / "audio").iterdir()):
        assert (tmp_path / "child" / "audio" / clip.name).read_bytes() == clip.read_bytes(), clip.name


def test_a_failed_synthesis_reaches_the_caller_with_its_message(tmp_path):
    (tmp_path / "taken").write_text("a file where the corpus folder would go")
    with pytest.raises(TrainingProcessError, match="^(FileExistsError|NotADirectoryError): .*taken"):
        demo_corpus_in_process(tmp_path / "taken", lambda d, t: None)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads a process's children from /proc (Linux)")
def test_the_child_stops_itself_when_its_parent_is_killed(manifest, tmp_path):
    """A server killed with SIGKILL runs no clean-up: its training process must notice and exit, or the next
    server could not resume the run (its lock held by an orphan)."""
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        from app.trainer import train_in_process
        from core.config import apply_overrides, tiny
        from core.data.corpus_formats import load_manifest
        cfg = apply_overrides(tiny(), ["train.epochs=200"])
        train_in_process(cfg, load_manifest({str(manifest)!r}), {str(tmp_path / 'runs')!r},
                         {str(tmp_path / 'cache')!r}, lambda p: print(p.stage, flush=True))
        """)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        for line in parent.stdout:  # the child trains: it has sent an epoch's progress
            if line.startswith("train joint"):
                break
        children = [int(pid) for task in Path(f"/proc/{parent.pid}/task").iterdir()
                    for pid in (task / "children").read_text().split()]
        assert children, "no training process"
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.time() + 15
    while any(_alive(pid) for pid in children):
        assert time.time() < deadline, "the training process outlived its parent"
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
