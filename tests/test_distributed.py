"""The method on several processes (issue 11): torchrun with gloo on CPU reproduces one process.

Each test launches real `torchrun` jobs; they bind loopback ports only (torchrun's --standalone rendezvous).
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    from core.data.synthetic import make_demo_corpus
    return make_demo_corpus(tmp_path_factory.mktemp("dist-corpus"), n_train=8, n_dev=4, n_test=4, n_unlabelled=8)


def _env(data: Path) -> dict[str, str]:
    return {**os.environ, "SER_DATA_DIR": str(data), "PYTHONWARNINGS": "ignore::FutureWarning", "OMP_NUM_THREADS": "1"}


def _core(ranks: int, *args: str) -> list[str]:
    if ranks == 1:
        return [sys.executable, "-m", "core", *args]
    return [str(TORCHRUN), "--standalone", f"--nproc_per_node={ranks}", "-m", "core", *args]


def _train(ranks: int, corpus: Path, runs: Path, data: Path, *sets: str, check: bool = True):
    sets = [item for s in ("train.epochs=2", *sets) for item in ("--set", s)]
    result = subprocess.run(_core(ranks, "--runs-dir", str(runs), "train", "--corpus", str(corpus), "--preset", "tiny",
                                  *sets), env=_env(data), capture_output=True, text=True, timeout=300, cwd=REPO)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def _run(runs: Path) -> dict:
    (folder,) = [p for p in runs.iterdir() if (p / "COMPLETE").exists()]
    state = torch.load(folder / "model.pt", weights_only=True)["networks"]["joint"]["state_dict"]
    return {"assignments": np.load(folder / "assignments.npy"), "history": pd.read_json(folder / "history.jsonl", lines=True),
            "state": state, "folder": folder}


@pytest.mark.parametrize("micro", [pytest.param("4", marks=pytest.mark.slow), "none"])  # micro-batches (default/demo presets), whole batch (paper presets)
def test_distributed_two_ranks_reproduce_one_process(corpus, tmp_path, micro):
    """Two gloo processes and one process, the same config (tiny preset, two epochs): the same run id and
    pseudo-labels, the same losses and dev CCC to 1e-6, the same weights to 1e-3 (Adam moves a weight whose
    gradient is float-rounding noise by up to one learning rate, 5e-4, per step)."""
    _train(1, corpus, tmp_path / "one", tmp_path / "data-one", f"train.micro_batch_chunks={micro}")
    _train(2, corpus, tmp_path / "two", tmp_path / "data-two", f"train.micro_batch_chunks={micro}")
    one, two = _run(tmp_path / "one"), _run(tmp_path / "two")
    assert one["folder"].name == two["folder"].name  # the run id does not depend on the world size
    assert np.array_equal(one["assignments"][0], two["assignments"][0])  # the first epoch's pseudo-labels
    assert np.array_equal(one["assignments"], two["assignments"])
    for column in ("cluster_loss", "joint_ce", "joint_ccc_loss"):
        np.testing.assert_allclose(two["history"][column], one["history"][column], atol=1e-6, rtol=0)
    for a, b in zip(one["history"]["dev_ccc"], two["history"]["dev_ccc"]):
        assert set(a) == set(b) and all(abs(a[k] - b[k]) <= 1e-6 for k in a)
    for name, value in one["state"].items():
        if value.is_floating_point():  # weights and BatchNorm running statistics
            assert (value.double() - two["state"][name].double()).abs().max() <= 1e-3, name


@pytest.mark.parametrize("ranks,micro", [pytest.param(3, "4", marks=pytest.mark.slow), (2, "none")])
def test_distributed_first_step_gradient_equals_one_process(tmp_path, ranks, micro):
    """One joint batch (22 chunks: uneven slices, and with 3 ranks of micro-batches of 4 a rank short of
    one): the gradient after DDP's averaging and the BatchNorm running statistics equal one process's."""
    script = str(REPO / "tests" / "distributed_step.py")
    env = {**_env(tmp_path), "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, script, str(tmp_path / "one.pt"), micro], env=env, check=True, timeout=120)
    job = subprocess.run([str(TORCHRUN), "--standalone", f"--nproc_per_node={ranks}", script, str(tmp_path / "many.pt"),
                          micro], env=env, timeout=180, capture_output=True, text=True)
    assert job.returncode == 0, job.stderr[-4000:]
    one, many = (torch.load(tmp_path / f"{n}.pt", weights_only=True) for n in ("one", "many"))
    np.testing.assert_allclose(many["loss"], one["loss"], atol=1e-6)
    scale = max(g.abs().max().item() for g in one["grads"].values())
    assert set(many["grads"]) == set(one["grads"])
    for name, grad in one["grads"].items():
        assert (many["grads"][name] - grad).abs().max() <= 1e-5 * scale, name
    for name, value in one["buffers"].items():
        if value.is_floating_point():
            assert (many["buffers"][name] - value).abs().max() <= 1e-5, name


@pytest.mark.slow  # three torchrun jobs: about 35 s on 2 cores
def test_distributed_killed_rank_then_rerun_resumes_and_equals_an_uninterrupted_run(corpus, tmp_path):
    """kill -9 of one rank in the second epoch: torchrun ends the job; the same command resumes after the
    first epoch and finishes with the history of an uninterrupted two-process run."""
    sets = ["--set", "train.epochs=4"]
    _train(2, corpus, tmp_path / "whole", tmp_path / "data", *sets[1:])
    runs = tmp_path / "killed"
    command = _core(2, "--runs-dir", str(runs), "train", "--corpus", str(corpus), "--preset", "tiny", *sets)
    job = subprocess.Popen(command, env=_env(tmp_path / "data"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True, cwd=REPO)
    deadline = time.monotonic() + 240
    while not any(runs.glob("*/checkpoints/last.pt")):  # the first epoch is saved: its checkpoint is written last
        assert time.monotonic() < deadline and job.poll() is None, "the job ended before its first epoch"
        time.sleep(0.02)
    ranks = subprocess.run(["pgrep", "-P", str(job.pid)], capture_output=True, text=True).stdout.split()
    os.kill(int(ranks[-1]), signal.SIGKILL)
    _, err = job.communicate(timeout=120)
    assert job.returncode != 0 and not any(runs.glob("*/COMPLETE")), err[-2000:]
    resumed = _train(2, corpus, runs, tmp_path / "data", *sets[1:])
    assert "resuming after epoch" in resumed.stderr
    whole, again = _run(tmp_path / "whole"), _run(runs)
    pd.testing.assert_frame_equal(whole["history"].drop(columns="seconds"), again["history"].drop(columns="seconds"))
    assert np.array_equal(whole["assignments"], again["assignments"])


@pytest.mark.slow  # two torchrun jobs on a real tmpfs: about 30 s on 2 cores
def test_distributed_training_on_a_disk_that_fills_up_says_so_once_and_resumes_once_there_is_room(corpus, tmp_path,
                                                                                                  small_disk):
    """The disk fills after the first epoch: rank 0 says so in one line naming the file and the room needed, torchrun
    ends the job, nothing half-written is trusted; with room again, the same command resumes after that epoch."""
    from tests.disks import fill
    runs = small_disk / "runs"
    command = _core(2, "--runs-dir", str(runs), "train", "--corpus", str(corpus), "--preset", "tiny",
                    "--set", "train.epochs=6")
    job = subprocess.Popen(command, env=_env(tmp_path / "data"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True, cwd=REPO)
    deadline = time.monotonic() + 240
    while not any(runs.glob("*/checkpoints/last.pt")):  # the first epoch is saved
        assert time.monotonic() < deadline and job.poll() is None, "the job ended before its first epoch"
        time.sleep(0.02)
    filler = fill(small_disk)
    _, err = job.communicate(timeout=180)
    said = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("error:")]
    assert job.returncode != 0 and len(said) == 1, err[-3000:]
    assert said[0].startswith(f"error: cannot write {runs}/") and "the disk is full" in said[0] and "free" in said[0]
    assert not any(runs.glob("*/COMPLETE")) and not [p for p in runs.rglob("*") if ".tmp-" in p.name]
    filler.unlink()
    resumed = _train(2, corpus, runs, tmp_path / "data", "train.epochs=6")
    assert "resuming after epoch" in resumed.stderr and len(list(runs.glob("*/COMPLETE"))) == 1


def test_distributed_more_ranks_than_clips_is_refused_on_rank_0_before_any_work(tmp_path):
    from core.data.synthetic import make_demo_corpus
    small = make_demo_corpus(tmp_path / "small", n_train=2, n_dev=2, n_test=2, n_unlabelled=4)
    result = _train(3, small, tmp_path / "runs", tmp_path / "data", "train.batch_utterances=2", check=False)
    assert result.returncode != 0
    assert result.stderr.count("3 processes but only 2 labelled train clips") == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_distributed_ranks_with_different_configs_are_refused(corpus, tmp_path):
    command = [str(TORCHRUN), "--standalone", "--nproc_per_node=2", "--no-python", "bash", "-c",
               f'"{sys.executable}" -m core --runs-dir "{tmp_path / "runs"}" train --corpus "{corpus}" --preset tiny '
               '--set seed=$RANK']
    result = subprocess.run(command, env=_env(tmp_path / "data"), capture_output=True, text=True, timeout=180)
    assert result.returncode != 0
    assert result.stderr.count("error: the ranks disagree on the config and corpus") == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_distributed_nccl_without_cuda_and_a_missing_rendezvous_are_one_line_errors(corpus, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: NCCL would work")
    nccl = subprocess.run(_core(2, "--dist-backend", "nccl", "--runs-dir", str(tmp_path / "runs"), "train", "--corpus",
                                str(corpus), "--preset", "tiny"), env=_env(tmp_path / "data"), capture_output=True,
                          text=True, timeout=180, cwd=REPO)
    assert nccl.returncode != 0 and nccl.stderr.count("error: the NCCL backend needs CUDA GPUs") == 1
    env = {k: v for k, v in _env(tmp_path / "data").items() if k not in ("MASTER_ADDR", "MASTER_PORT")}
    lone = subprocess.run(_core(1, "--runs-dir", str(tmp_path / "runs"), "train", "--corpus", str(corpus), "--preset",
                                "tiny"), env={**env, "WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"},
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert lone.returncode == 2 and lone.stderr.startswith("error: cannot join the distributed job (WORLD_SIZE=2)")
    assert len(lone.stderr.strip().splitlines()) == 1
