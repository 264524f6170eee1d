"""kill -9 in the middle of feature extraction and of training, then the same command again:
nothing half-written is trusted and the results equal an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    from core.data.synthetic import make_demo_corpus
    return make_demo_corpus(tmp_path_factory.mktemp("crash-corpus"), n_train=40, n_dev=10, n_test=10, n_unlabelled=40)


def _cli(args, data, **kwargs):
    env = {**os.environ, "SER_DATA_DIR": str(data), "SER_RUNS_DIR": str(data / "runs")}
    return subprocess.Popen([sys.executable, "-m", "core", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def _kill_when(process, condition, timeout_s=120):
    deadline = time.time() + timeout_s
    while not condition():
        assert process.poll() is None, "finished before it could be killed: " + process.stdout.read()
        assert time.time() < deadline, "the condition to kill never came"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()


def _history(data):
    (run,) = (data / "runs").glob("tiny-*/history.jsonl")
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in run.read_text().splitlines()]


@pytest.mark.slow  # a run killed and resumed, and its uninterrupted twin: 17-47 s on 2 cores
def test_kill_during_training_then_resume_equals_uninterrupted(manifest, tmp_path):
    args = ["train", "--corpus", str(manifest), "--preset", "tiny", "--set", "train.epochs=4"]
    reference = _cli(args, tmp_path / "a")
    assert reference.wait() == 0, reference.stdout.read()
    crashed = tmp_path / "b"
    process = _cli(args, crashed)
    history = lambda: list((crashed / "runs").glob("tiny-*/history.jsonl"))  # noqa: E731
    _kill_when(process, lambda: history() and len(history()[0].read_text().splitlines()) >= 2)
    assert not list((crashed / "runs").glob("tiny-*/COMPLETE"))
    resumed = _cli(args, crashed)
    output = resumed.communicate()[0]
    assert resumed.returncode == 0, output
    assert "resuming after epoch" in output
    assert _history(crashed) == _history(tmp_path / "a")


@pytest.mark.slow  # a run killed and resumed, and its uninterrupted twin: 17-47 s on 2 cores
def test_kill_during_feature_extraction_then_rerun_equals_uninterrupted(manifest, tmp_path):
    reference = _cli(["extract", "--corpus", str(manifest), "--workers", "1"], tmp_path / "a")
    assert reference.wait() == 0, reference.stdout.read()
    crashed = tmp_path / "b"
    process = _cli(["extract", "--corpus", str(manifest), "--workers", "1"], crashed)
    _kill_when(process, lambda: list(crashed.glob("cache/features/*/config.json")) or
               list(crashed.glob("cache/features/*/.shard*")), timeout_s=60)
    rerun = _cli(["extract", "--corpus", str(manifest), "--workers", "1"], crashed)
    assert rerun.wait() == 0, rerun.stdout.read()
    (pack_a,) = (tmp_path / "a").glob("cache/features/*/packs/*.npy")
    (pack_b,) = crashed.glob("cache/features/*/packs/*.npy")
    np.testing.assert_array_equal(np.load(pack_a), np.load(pack_b))
