"""Refuse, before any work, a corpus and config that cannot be trained together (every problem named)."""
from __future__ import annotations

import pandas as pd

from core.config import RunConfig
from core.data.split_hygiene import SplitOverlap, find_split_overlap
from core.errors import UserError


class TrainingConfigError(UserError, ValueError):
    """A configuration or corpus that cannot be trained, found before any work starts."""


def check_trainable(cfg: RunConfig, corpus: pd.DataFrame, world_size: int = 1) -> None:
    """Refuse, with every problem named, a corpus and config that cannot be trained together."""
    problems = []
    splits = corpus["split"]
    train_rows = corpus[splits == "train"]
    attributes = list(cfg.model.attributes)
    if len(train_rows) == 0:
        problems.append("no labelled 'train' split")
    if (splits == "dev").sum() == 0:
        problems.append("no 'dev' split (validation picks the best epoch)")
    for split in ("train", "dev"):
        rows = corpus[splits == split]
        missing = rows.index[rows[attributes].isna().any(axis=1)]
        if len(missing):
            problems.append(f"{len(missing)} {split} clips lack a label for {attributes} "
                            f"(e.g. {', '.join(map(str, missing[:3]))}); set model.attributes to the labelled ones")
    n_train_chunks = len(train_rows) * cfg.chunks.n_chunks
    if 0 < n_train_chunks <= cfg.model.n_clusters:
        problems.append(f"model.n_clusters={cfg.model.n_clusters} needs more labelled train chunks than clusters, "
                        f"found {n_train_chunks} ({len(train_rows)} clips x {cfg.chunks.n_chunks} chunks)")
    if len(train_rows) and len(train_rows) < cfg.train.batch_utterances:
        problems.append(f"train.batch_utterances={cfg.train.batch_utterances} exceeds the {len(train_rows)} train clips")
    if cfg.train.use_unlabelled:
        n_unlabelled = min(int((splits == "unlabelled").sum()), cfg.train.max_unlabelled)
        if n_unlabelled == 0:
            problems.append("train.use_unlabelled is true but the corpus has no unlabelled clips "
                            "(add a folder with --unlabelled, or --set train.use_unlabelled=false)")
        elif n_unlabelled * cfg.chunks.n_chunks <= cfg.model.n_clusters:
            problems.append(f"model.n_clusters={cfg.model.n_clusters} needs more unlabelled chunks than clusters, "
                            f"found {n_unlabelled * cfg.chunks.n_chunks}")
    if world_size > len(train_rows) > 0:
        problems.append(f"{world_size} processes but only {len(train_rows)} labelled train clips: "
                        "start fewer processes (torchrun --nproc_per_node)")
    if problems:
        raise TrainingConfigError("cannot train this corpus with this config:\n  " + "\n  ".join(problems))


def check_split_hygiene(corpus: pd.DataFrame, *, allow_speaker_overlap: bool = False,
                        allow_duplicate_audio: bool = False) -> SplitOverlap:
    """Refuse a corpus whose training splits leak into its dev or test splits (`core.data.split_hygiene`).

    A train speaker who also speaks in dev or a test split, or an evaluation clip whose bytes are also
    a train or unlabelled clip, would make the dev/test CCC judge the model on what it trained on.

    Args:
        corpus: the utterance table to train on.
        allow_speaker_overlap: train anyway when "train" shares speakers with dev/test.
        allow_duplicate_audio: train anyway when dev/test clips duplicate train or unlabelled clips.

    Returns:
        The overlap found; every part of it was allowed (empty when the splits are clean).

    Raises:
        TrainingConfigError: an overlap that was not allowed; one line per kind, naming speakers or files.
    """
    overlap = find_split_overlap(corpus)
    problems = []
    if overlap.speakers and not allow_speaker_overlap:
        problems.append(f"{overlap.speaker_line}; pass --allow-speaker-overlap to train anyway")
    if overlap.duplicates and not allow_duplicate_audio:
        problems.append(f"{overlap.duplicate_line}; pass --allow-duplicate-audio to train anyway")
    if problems:
        raise TrainingConfigError("\n".join(problems))
    return overlap
