"""A training started by the app runs in a process of its own, `python -m app.trainer`, as does the demo
corpus's synthesis.

In a thread of the server a training shared one interpreter lock with every rerun of every page, and the demo's
epochs took two to three times as long as on the command line. The child is a fresh interpreter, not a
multiprocessing child: those re-run the server's `__main__`, which under Streamlit is the app script. It
reads its job (pickled) on stdin and reports its progress (`core.training.train.TrainProgress`, or clips done) through a
pipe of its own. It ends with the server: seeing its parent gone, it exits within a second, as a crash would, and the run stays
resumable from its last finished epoch (`RunStore.interrupted`).
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import pandas as pd

from core.config import RunConfig
from core.errors import UserError
from core.runtime.process import keep_freed_memory
from core.store.run_store import Run, RunStore

if TYPE_CHECKING:
    from core.training.train import TrainProgress

_WATCH_EVERY_S = 0.5  # how often a child looks for its parent


class TrainingProcessError(RuntimeError):
    """The training failed in its process; the message holds its error and traceback, or how it ended."""


def train_in_process(cfg: RunConfig, corpus: pd.DataFrame, runs_dir: Path, cache_root: Path,
                     progress: Callable[[TrainProgress], None]) -> Run:
    """`core.training.train.train` of `cfg` on `corpus` in a child process; `progress` is called in this process.

    Returns:
        The completed run.

    Raises:
        TrainingProcessError: the training raised (its type, message and traceback) or its process died.
    """
    run_id = _in_process(("train", (cfg, corpus, str(runs_dir), str(cache_root))), progress)
    return RunStore(runs_dir).load(run_id)


def demo_corpus_in_process(root: Path, progress: Callable[[int, int], None], **counts: int) -> Path:
    """`core.data.synthetic.make_demo_corpus(root, **counts)` in a child process; `progress(done, total)` is called here.

    In a thread of the server the synthesis shared the interpreter lock with UMAP's compilation, which the
    first start runs beside it: that step took 30 s instead of 17 s (docs/benchmarks.md, "The fresh start").

    Returns:
        The corpus's manifest.

    Raises:
        TrainingProcessError: the synthesis raised (e.g. libespeak-ng missing) or its process died.
    """
    return Path(_in_process(("demo corpus", (str(root), counts)), lambda p: progress(*p)))


def _in_process(job: tuple[str, tuple], progress: Callable) -> str:
    """Run `job` in `python -m app.trainer`, relaying its progress messages; return what it sends when done."""
    read_fd, write_fd = os.pipe()
    try:
        child = subprocess.Popen([sys.executable, "-m", "app.trainer", str(write_fd)], stdin=subprocess.PIPE,
                                 pass_fds=(write_fd,))
    finally:
        os.close(write_fd)  # the child holds the only writer: its end reads as end-of-file here
    messages = Connection(read_fd, writable=False)
    try:
        with child.stdin:  # read by the child as it starts (a large corpus is more than a pipe holds)
            pickle.dump((job, os.getpid()), child.stdin)
        while True:
            try:
                kind, payload = messages.recv()
            except EOFError:
                raise TrainingProcessError(f"the {job[0]} process ended without a result "
                                           f"(exit code {child.wait()})") from None
            if kind == "progress":
                progress(payload)
            elif kind == "error":
                raise TrainingProcessError(payload)
            else:
                return payload
    finally:
        messages.close()  # a child still working (this caller failed) stops at its next report
        child.wait()


def _main(fd: int) -> None:
    keep_freed_memory()  # as `python -m core` does: the demo epoch in the app took 24.2 s without it, 20.3 s with
    (kind, args), parent = pickle.load(sys.stdin.buffer)
    threading.Thread(target=_exit_without, args=(parent,), name="parent watch", daemon=True).start()
    messages, sending = Connection(fd, readable=False), threading.Lock()  # progress may come from many threads

    def send(message: tuple) -> None:
        with sending:
            messages.send(message)
    try:
        send(("done", _JOBS[kind](*args, lambda p: send(("progress", p)))))
    except BrokenPipeError:  # the server stopped reading: it is gone
        os._exit(1)
    except UserError as err:  # what the user can fix (a full or read-only disk, a bad corpus): its message alone
        send(("error", str(err)))
    except Exception as err:
        send(("error", f"{type(err).__name__}: {err}\n\n{traceback.format_exc(limit=4)}"))


def _train(cfg: RunConfig, corpus: pd.DataFrame, runs_dir: str, cache_root: str, progress) -> str:
    from core.training.train import train
    return train(cfg, corpus, RunStore(Path(runs_dir)), Path(cache_root), progress=progress).run.run_id


def _demo_corpus(root: str, counts: dict[str, int], progress) -> str:
    from core.data.synthetic import make_demo_corpus
    return str(make_demo_corpus(Path(root), **counts, progress=lambda done, total: progress((done, total))))


_JOBS = {"train": _train, "demo corpus": _demo_corpus}


def _exit_without(parent: int) -> None:
    """A killed server cannot stop its child: the child stops itself, as a crash would (its last finished
    epoch is on disk; the run folder's lock goes with the process)."""
    while os.getppid() == parent:
        time.sleep(_WATCH_EVERY_S)
    os._exit(1)


if __name__ == "__main__":
    _main(int(sys.argv[1]))
