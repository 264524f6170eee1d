"""The utterance table: its schema and its validation (the corpus formats that become one: `core.data.corpus_formats`).

Every corpus becomes one table, a DataFrame indexed by `file` (a unique id: the audio path relative to
the corpus root or manifest folder, '/' separated) with the columns of `COLUMNS`. Labels are the
attributes of `AVD` (NaN = no label); a row without any of them has split "unlabelled". This module reads
no file but the audio files' sizes and times (for the corpus fingerprint).
"""
from __future__ import annotations

import hashlib
import json
import math
import os

import numpy as np
import pandas as pd

from core.config import AVD, LabelConfig
from core.errors import UserError

SPLITS = ("train", "dev", "test", "test2", "test3", "unlabelled")
TEST_SPLITS = ("test", "test2", "test3")  # where a model is judged after training (dev picks its epoch)
SPLIT_ALIASES = {  # keys are lower-case: split names are matched case-insensitively
    "train": "train", "training": "train",
    "dev": "dev", "development": "dev", "validation": "dev", "valid": "dev", "val": "dev",
    "test": "test", "test1": "test", "test2": "test2", "test3": "test3",
    "unlabelled": "unlabelled", "unlabeled": "unlabelled", "": "unlabelled",
}
COLUMNS = ("path", "split", *AVD, "speaker", "emotion")
_TEXT_COLUMNS = ("path", "split", "speaker", "emotion")
_MISSING = ("", "nan", "na", "n/a", "null", "none")  # cell texts read as "no value" (lower-case)
UNKNOWN_SPEAKERS = frozenset({*_MISSING, "unknown", "unk", "-"})  # speaker ids naming no one ("Unknown": MSP-Podcast)
_MAX_LISTED = 20


class ManifestError(UserError, ValueError):
    """A corpus or utterance table that does not meet the schema; the message lists every offender."""


def validate_manifest(df: pd.DataFrame, labels: LabelConfig = LabelConfig(), *,
                      source: str | os.PathLike | None = None) -> None:
    """Check the utterance-table invariants.

    Args:
        df: the table to check.
        labels: the allowed label range.
        source: the manifest the table came from, named in error messages.

    Raises:
        ManifestError: wrong index name, duplicate or empty ids, wrong columns or dtypes, missing
            paths, duplicate paths, unknown splits, labels out of range, or a split that disagrees
            with the labels (labelled rows may not be "unlabelled", unlabelled rows must be).
    """
    where = f"{source}: " if source is not None else ""
    if not isinstance(df, pd.DataFrame):
        raise ManifestError(f"{where}expected a pandas DataFrame, found {type(df).__name__}")
    if df.index.name != "file":
        raise ManifestError(f"{where}expected the index to be named 'file', found {df.index.name!r}")
    if tuple(df.columns) != COLUMNS:
        raise ManifestError(f"{where}expected columns {list(COLUMNS)}, found {list(df.columns)}")
    bad = [f"{c} ({df[c].dtype})" for c in AVD if df[c].dtype != np.float64]
    bad += [f"{c} ({df[c].dtype})" for c in _TEXT_COLUMNS if not _is_text(df[c])]
    if not _is_text(pd.Series(df.index)):
        bad.append(f"index ({df.index.dtype})")
    if bad:
        raise ManifestError(f"{where}expected float64 labels and str ids/path/split/speaker/emotion, found {bad}")
    ids, paths, splits = list(df.index), list(df["path"]), list(df["split"])
    _fail([repr(f) for f in ids if pd.isna(f) or f == ""], where, "non-empty file ids", "empty file ids")
    _fail([f for f, d in zip(ids, df.index.duplicated(keep=False)) if d], where, "unique file ids", "duplicate file ids")
    _fail([f for f, p in zip(ids, paths) if pd.isna(p)], where, "an audio path on every row", "rows without a path")
    _fail([f"{f} -> {p}" for f, p, d in zip(ids, paths, df["path"].duplicated(keep=False)) if d], where,
          "each audio file on one row", "rows sharing a file")
    _fail([f"{f}={s!r}" for f, s in zip(ids, splits) if s not in SPLITS], where,
          f"splits in {list(SPLITS)}", "unknown split values")
    _check_range({a: df[a] for a in AVD}, ids, labels, where)
    labelled = is_labelled(df).tolist()
    _fail([f for f, s, has in zip(ids, splits, labelled) if has and s == "unlabelled"], where,
          "labelled rows to have a split other than 'unlabelled'", "rows with labels but split 'unlabelled'")
    _fail([f"{f} ({s})" for f, s, has in zip(ids, splits, labelled) if not has and s != "unlabelled"], where,
          "rows without labels to have split 'unlabelled'", "rows without labels in another split")


def corpus_fingerprint(df: pd.DataFrame) -> str:
    """sha256 over the sorted rows (id, split, labels, speaker, emotion) and each audio file's size and mtime.

    Args:
        df: an utterance table.

    Returns:
        64 hex digits; it changes when a label, split or audio file changes, not when rows are reordered.

    Raises:
        ManifestError: an audio file of the table no longer exists.
    """
    digest, missing = hashlib.sha256(), []
    table = df.sort_index()
    columns = [table[c].tolist() for c in ("path", "split", *AVD, "speaker", "emotion")]
    for file, path, split, *rest in zip(table.index, *columns):
        try:
            stat = os.stat(path)
        except OSError:
            missing.append(f"{file} ({path})")
            continue
        values = [file, split, *[_json_value(v) for v in rest], stat.st_size, stat.st_mtime_ns]
        digest.update(json.dumps(values).encode() + b"\n")
    if missing:
        raise ManifestError(f"expected every audio file to exist, found {len(missing)} missing: {_listing(missing)}")
    return digest.hexdigest()


def is_labelled(df: pd.DataFrame) -> pd.Series:
    """True for rows with at least one of arousal/valence/dominance.

    Args:
        df: an utterance table.

    Returns:
        A bool Series indexed like `df`.
    """
    return df[list(AVD)].notna().any(axis=1)


def known_speakers(speakers: pd.Series) -> pd.Series:
    """The speaker ids that name a speaker; empty, missing and unknown ones (`UNKNOWN_SPEAKERS`, any case) become NaN.

    Args:
        speakers: a `speaker` column (str, None or NaN values; any index).

    Returns:
        An object Series indexed like `speakers`: each id with surrounding whitespace stripped, or NaN.
    """
    text = [None if pd.isna(s) else str(s).strip() for s in speakers]
    return pd.Series([np.nan if t is None or t.lower() in UNKNOWN_SPEAKERS else t for t in text],
                     index=speakers.index, name=speakers.name, dtype=object)


def _check_range(values: dict[str, pd.Series], rows: list[str], labels: LabelConfig, where: str) -> None:
    found = []
    for name, column in values.items():
        col = np.asarray(column, dtype=np.float64)
        outside = ~np.isnan(col) & ~((col >= labels.minimum) & (col <= labels.maximum))
        found += [f"{rows[i]} {name}={col[i]:g}" for i in np.flatnonzero(outside)]
    _fail(found, where, f"labels in [{labels.minimum:g}, {labels.maximum:g}]", "labels outside")


def _fail(found: list[str], where: str, expected: str, what: str) -> None:
    """Raise one error listing every offender, if there is any."""
    if found:
        raise ManifestError(f"{where}expected {expected}, found {len(found)} {what}: {_listing(found)}")


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f" ... and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


def _is_text(column: pd.Series) -> bool:
    if pd.api.types.is_string_dtype(column.dtype) and column.dtype != object:
        return True
    return column.dtype == object and all(isinstance(v, str) for v in column.dropna())


def _json_value(value):
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value) if isinstance(value, (float, np.floating)) else str(value)
