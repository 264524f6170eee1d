"""What the CLI shows on a terminal: one line per epoch, live stage bars (tqdm) and core's warnings as plain sentences;
nothing else uses it."""
from __future__ import annotations

import contextlib
import os
import sys
import warnings

from tqdm import tqdm


class TrainPrinter:
    """One line per epoch (dev CCC, the released code's dev chunk loss, whether the run's rule keeps the epoch so far,
    ETA) and a live stage bar on a terminal."""

    def __init__(self):
        self.tty = sys.stderr.isatty()

    def __call__(self, p) -> None:
        if p.stage == "resume":
            print(f"resuming after epoch {p.done}/{p.epochs} (an earlier run of this config was interrupted)",
                  file=sys.stderr, flush=True)
        elif p.stage == "validate" and p.dev_ccc is not None:
            ccc = " ".join(f"{a} {v:.3f}" for a, v in p.dev_ccc.items())
            loss = f", dev chunk loss {p.dev_chunk_loss:.3f}" if p.dev_chunk_loss is not None else ""  # the other rule's
            kept = ", kept" if p.kept else ""
            eta = f", ETA {p.eta_s / 60:.1f} min" if p.eta_s else ""
            print(f"\repoch {p.epoch + 1}/{p.epochs}: dev CCC {ccc}{loss}{kept}{eta}" + " " * 20, file=sys.stderr,
                  flush=True)
        elif p.space is not None:  # the epoch's clustering space, for a live map: nothing to print
            return
        elif self.tty or p.done == p.total:
            end = "\n" if (not self.tty and p.done == p.total) else ""
            print(f"\r  epoch {p.epoch + 1}/{p.epochs} {p.stage}: {p.done}/{p.total}", end=end, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def progress_bar(label: str):
    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=label, unit="file", file=sys.stderr, disable=total == 0)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
    return update


def stage_printer():
    bars = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            bars[stage] = progress_bar(stage)
        bars[stage](done, total)
    return update


CORE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the core package


@contextlib.contextmanager
def plain_warnings():
    """Core's warnings are sentences for the user (a cache left unsaved, clips left out, a run not resumed): printed
    as `warning: <sentence>`, without Python's file, line and category; other libraries' keep Python's format."""
    default = warnings.formatwarning

    def plain(message, category, filename, lineno, line=None):
        if issubclass(category, UserWarning) and os.path.abspath(filename).startswith(CORE_DIR + os.sep):
            return f"warning: {message}\n"
        return default(message, category, filename, lineno, line)
    warnings.formatwarning = plain
    try:
        yield
    finally:
        warnings.formatwarning = default
