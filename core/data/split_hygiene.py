"""Leaks between splits, found before training: speakers and audio that a training split shares with an
evaluation split (dev, test, test2, ...). It reads file sizes and bytes, never decodes audio, and refuses
nothing itself (`core.training.checks` does)."""
from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

from core.data.manifest import TEST_SPLITS, known_speakers
from core.store.atomic import file_digest

_SHOWN = 5  # speakers or file pairs named per pair of splits; the rest are counted
_HEAD_BYTES = 1 << 14  # files of one size are first told apart by their first 16 KiB, then by all bytes


@dataclass(frozen=True)
class SharedSpeaker:
    speaker: str
    n_train: int  # utterances in "train"
    n_other: int  # utterances in the evaluation split


@dataclass(frozen=True)
class SpeakerOverlap:
    split: str  # the evaluation split ("dev", "test", "test2", ...); the other side is always "train"
    speakers: tuple[SharedSpeaker, ...]  # most shared utterances first


@dataclass(frozen=True)
class DuplicateAudio:
    training_split: str  # "train" or "unlabelled"
    split: str  # the evaluation split
    pairs: tuple[tuple[str, str], ...]  # (training file id, evaluation file id), same bytes; one per evaluation file


@dataclass(frozen=True)
class SplitOverlap:
    """What a corpus's training splits share with its evaluation splits; empty when the splits are clean."""
    speakers: tuple[SpeakerOverlap, ...] = ()
    duplicates: tuple[DuplicateAudio, ...] = ()

    @property
    def speaker_line(self) -> str | None:
        """One line naming the shared speakers and their utterance counts; None when there are none."""
        if not self.speakers:
            return None
        parts = [f"train/{o.split} share {_count(len(o.speakers), 'speaker')} ("
                 + _listed([f"{s.speaker}: {s.n_train} train, {s.n_other} {o.split}" for s in o.speakers]) + ")"
                 for o in self.speakers]
        return "speaker overlap between splits: " + ", ".join(parts)

    @property
    def duplicate_line(self) -> str | None:
        """One line naming example pairs of identical files and their counts; None when there are none."""
        if not self.duplicates:
            return None
        parts = [f"{d.training_split}/{d.split} share {_count(len(d.pairs), 'file')} ("
                 + _listed([f"{a} = {b}" for a, b in d.pairs]) + ")" for d in self.duplicates]
        return "duplicate audio between splits: " + ", ".join(parts)

    @property
    def message(self) -> str | None:
        """Both lines as one (joined by ". "); None when the splits are clean."""
        lines = [line for line in (self.speaker_line, self.duplicate_line) if line]
        return ". ".join(lines) or None


def is_evaluation_split(split: str) -> bool:
    """True for the splits a model is judged on: "dev" and the test splits (`core.data.manifest.TEST_SPLITS`)."""
    return split == "dev" or split in TEST_SPLITS


def find_split_overlap(corpus: pd.DataFrame) -> SplitOverlap:
    """Speakers and audio files that the training splits share with the evaluation splits.

    Args:
        corpus: an utterance table (`core.data.manifest`).

    Returns:
        The speaker overlaps (`speaker_overlap`) and the duplicate audio (`duplicate_audio`).
    """
    return SplitOverlap(speaker_overlap(corpus), duplicate_audio(corpus))


def speaker_overlap(corpus: pd.DataFrame) -> tuple[SpeakerOverlap, ...]:
    """The known speakers (`core.data.manifest.known_speakers`) of "train" who also speak in an evaluation split.

    Unlabelled rows are left out: an unlabelled pool usually has no speakers, and sharing them with
    training is no leak.

    Args:
        corpus: an utterance table.

    Returns:
        One `SpeakerOverlap` per evaluation split that shares a speaker, in split-name order.
    """
    counts = pd.crosstab(known_speakers(corpus["speaker"]), corpus["split"])  # speaker x split; unknown dropped
    if "train" not in counts.columns:
        return ()
    found = []
    for split in sorted(c for c in counts.columns if is_evaluation_split(c)):
        both = counts[(counts["train"] > 0) & (counts[split] > 0)]
        shared = sorted((SharedSpeaker(str(s), int(n), int(m))
                         for s, n, m in zip(both.index, both["train"], both[split])),
                        key=lambda s: (-(s.n_train + s.n_other), s.speaker))  # the largest leaks are named first
        if shared:
            found.append(SpeakerOverlap(split, tuple(shared)))
    return tuple(found)


def duplicate_audio(corpus: pd.DataFrame) -> tuple[DuplicateAudio, ...]:
    """Evaluation files whose bytes equal a "train" or "unlabelled" file's (sha256 of the whole file).

    Cheap on large corpora: only files whose size occurs on both sides are read, and those first in
    part. Files that cannot be stat'ed or read are skipped; audio loading reports them.

    Args:
        corpus: an utterance table.

    Returns:
        One `DuplicateAudio` per (training split, evaluation split) that share a file, ordered by name.
    """
    files = [(file, split, path) for file, split, path in zip(corpus.index, corpus["split"], corpus["path"])
             if split in ("train", "unlabelled") or is_evaluation_split(split)]
    groups = _regroup([files], _size)
    groups = _regroup(groups, _digest_of_head)
    groups = _regroup(groups, _digest)
    pairs = defaultdict(list)  # (training split, evaluation split) -> [(training file, evaluation file)]
    for group in groups:  # files with the same bytes
        group = sorted(group)
        first = {}  # training split -> its first file of this content
        for file, split, _ in group:
            if not is_evaluation_split(split):
                first.setdefault(split, file)
        for file, split, _ in group:
            if is_evaluation_split(split):
                for training_split, copy in first.items():
                    pairs[training_split, split].append((copy, file))
    return tuple(DuplicateAudio(a, b, tuple(pairs[a, b])) for a, b in sorted(pairs))


def _regroup(groups: Iterable[list], key: Callable[[str], object]) -> list[list]:
    """Split each group by `key(path)`, keeping the parts that hold both a training and an evaluation file."""
    parts = []
    for group in groups:
        by_key = defaultdict(list)
        for row in group:
            if (value := key(row[2])) is not None:
                by_key[value].append(row)
        parts += [part for part in by_key.values() if _both_sides(part)]
    return parts


def _both_sides(rows: list) -> bool:
    sides = {is_evaluation_split(split) for _, split, _ in rows}
    return sides == {True, False}


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def _digest_of_head(path: str) -> str | None:
    """sha256 of the file's first bytes; None if unreadable."""
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read(_HEAD_BYTES)).hexdigest()
    except OSError:
        return None


def _digest(path: str) -> str | None:
    """sha256 of the whole file (`core.store.atomic.file_digest`: once per process while it is unchanged, so a
    second `train` of the same corpus reads nothing again); None if unreadable."""
    try:
        return file_digest(Path(path))["sha256"]
    except OSError:
        return None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _listed(items: list[str]) -> str:
    shown = "; ".join(items[:_SHOWN])
    return shown + (f"; and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")
