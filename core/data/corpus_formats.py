"""The corpus formats read into utterance tables (`core.data.manifest`): a CSV manifest, an MSP-Podcast release,
a folder of clips, and a corpus with an unlabelled folder beside it. Only CSVs are read and files listed; no audio
is decoded.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from core.audio.decode import AUDIO_EXTENSIONS
from core.config import AVD, LabelConfig
from core.data.manifest import (COLUMNS, SPLIT_ALIASES, ManifestError, _check_range, _fail, _MISSING, known_speakers,
                                validate_manifest)  # the schema's own checks, shared inside the package

_MSP_LABEL_FILES = ("labels_consensus.csv", "labels_concensus.csv")  # older releases misspell it
_MSP_AUDIO_DIRS = ("Audios", "Audio")
_MSP_COLUMNS = {"filename": "FileName", "split_set": "Split_Set", "emoact": "EmoAct", "emoval": "EmoVal",
                "emodom": "EmoDom", "emoclass": "EmoClass", "spkrid": "SpkrID"}
_MSP_REQUIRED = ("filename", "split_set", "emoact", "emoval", "emodom")


def load_manifest(path: str | os.PathLike, labels: LabelConfig = LabelConfig()) -> pd.DataFrame:
    """Read the generic CSV manifest.

    Args:
        path: CSV with a `path` column (audio, absolute or relative to the CSV's folder) and optional
            `split`, `arousal`, `valence`, `dominance`, `speaker`, `emotion` columns (names case-insensitive).
        labels: the allowed label range.

    Returns:
        The utterance table; ids are the audio paths relative to the CSV's folder.

    Raises:
        ManifestError: unreadable or empty CSV, no `path` column, empty paths, non-numeric or
            out-of-range labels, unknown split names, labelled rows without a split column,
            duplicate files or missing audio files.
    """
    source = Path(path)
    raw = _read_csv(source)
    if "path" not in raw.columns:
        raise ManifestError(f"{source}: expected a 'path' column, found columns {list(raw.columns)}")
    rows = [f"line {i + 2}" for i in range(len(raw))]
    _require_values(raw["path"], rows, "path", source)
    folder = Path(os.path.abspath(source.parent))
    paths = [Path(os.path.abspath(folder / p.strip())) for p in raw["path"]]
    files = [_relative_id(p, folder) for p in paths]
    return _build(source, rows, files, paths, raw.get("split"), {a: raw.get(a) for a in AVD},
                  raw.get("speaker"), raw.get("emotion"), labels)


def load_msp_podcast(root: str | os.PathLike, labels: LabelConfig = LabelConfig()) -> pd.DataFrame:
    """Read an MSP-Podcast release: `Labels/labels_consensus.csv` and the audio in `Audios/`.

    Args:
        root: the release folder (also accepted: `labels_concensus.csv`, an `Audio/` folder).
        labels: the allowed label range.

    Returns:
        The utterance table; ids are the `FileName` values, EmoAct/EmoVal/EmoDom the attributes,
        EmoClass the emotion and SpkrID the speaker ("Unknown" = missing).

    Raises:
        ManifestError: no label file or audio folder, missing columns, bad labels or split names,
            duplicate or missing audio files.
    """
    root = Path(os.path.abspath(root))
    source = _first_existing([root / "Labels" / name for name in _MSP_LABEL_FILES], "label file")
    audio_dir = _first_existing([root / name for name in _MSP_AUDIO_DIRS], "audio folder")
    raw = _read_csv(source)
    missing = [_MSP_COLUMNS[c] for c in _MSP_REQUIRED if c not in raw.columns]
    if missing:
        raise ManifestError(f"{source}: expected columns {[_MSP_COLUMNS[c] for c in _MSP_REQUIRED]}, "
                            f"missing {missing}; found columns {list(raw.columns)}")
    rows = [f"line {i + 2}" for i in range(len(raw))]
    _require_values(raw["filename"], rows, "FileName", source)
    files = [f.strip() for f in raw["filename"]]
    speakers = raw.get("spkrid")
    if speakers is not None:
        speakers = known_speakers(speakers).fillna("")
    attributes = dict(zip(AVD, (raw["emoact"], raw["emoval"], raw["emodom"])))
    return _build(source, rows, files, [audio_dir / f for f in files], raw["split_set"], attributes,
                  speakers, raw.get("emoclass"), labels)


def load_folder(folder: str | os.PathLike) -> pd.DataFrame:
    """List every audio file under a folder (recursively, by extension) as unlabelled rows.

    Hidden files and folders (names starting with '.') are skipped.

    Args:
        folder: the folder to scan.

    Returns:
        The utterance table, sorted by id (the path relative to `folder`), all rows "unlabelled".

    Raises:
        ManifestError: `folder` is not a folder or holds no audio file.
    """
    root = Path(os.path.abspath(folder))
    if not root.is_dir():
        raise ManifestError(f"expected a folder of audio files, found no folder at {root}")
    found = {p.relative_to(root).as_posix(): p for p in root.rglob("*")
             if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(root).parts)}
    if not found:
        raise ManifestError(f"expected audio files, found no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {root}")
    files = sorted(found)
    table = _table(files, [str(found[f]) for f in files], ["unlabelled"] * len(files),
                   {a: np.full(len(files), np.nan) for a in AVD}, [None] * len(files), [None] * len(files))
    validate_manifest(table, source=root)
    return table


def load_corpus(path: str | os.PathLike, *, unlabelled: str | os.PathLike | None = None,
                labels: LabelConfig = LabelConfig()) -> pd.DataFrame:
    """Read any corpus: a `.csv` manifest, an MSP-Podcast folder (has `Labels/`) or a folder of audio.

    Args:
        path: the manifest file or corpus folder.
        unlabelled: optional folder of extra unlabelled audio; its ids are prefixed with `unlabelled/`.
        labels: the allowed label range.

    Returns:
        The utterance table.

    Raises:
        ManifestError: `path` does not exist or is not a CSV/folder, or any reader's error; ids
            clashing between the corpus and the unlabelled folder.
    """
    source = Path(path)
    if source.is_file() and source.suffix.lower() == ".csv":
        table = load_manifest(source, labels)
    elif source.is_dir() and (source / "Labels").is_dir():
        table = load_msp_podcast(source, labels)
    elif source.is_dir():
        table = load_folder(source)
    elif source.exists():
        raise ManifestError(f"expected a .csv manifest or a corpus folder, found the file {source}")
    else:
        raise ManifestError(f"expected a .csv manifest or a corpus folder, found nothing at {source}")
    if unlabelled is not None:
        extra = load_folder(unlabelled)
        extra.index = ("unlabelled/" + extra.index).rename("file")
        table = pd.concat([table, extra])
        validate_manifest(table, labels, source=f"{source} + {unlabelled}")
    return table


def _build(source: Path, rows: list[str], files: list[str], paths: list[Path], split_raw: pd.Series | None,
           label_raw: dict[str, pd.Series | None], speaker_raw: pd.Series | None,
           emotion_raw: pd.Series | None, labels: LabelConfig) -> pd.DataFrame:
    """Turn the text columns of a manifest into a validated table, reporting problems by CSV line."""
    n = len(files)
    values = _parse_labels(label_raw, rows, source)
    _check_range(values, rows, labels, f"{source}: ")
    labelled = ~np.isnan(np.column_stack([values[a] for a in AVD])).all(axis=1)
    if split_raw is None:
        if labelled.any():
            _fail([r for r, has in zip(rows, labelled) if has], f"{source}: ",
                  "a 'split' column (train/dev/test...) since rows have labels", "labelled rows and no split column")
        split_raw = pd.Series([""] * n)
    keys = split_raw.fillna("").str.strip().str.lower()
    _fail([f"{r}={v!r}" for r, k, v in zip(rows, keys, split_raw) if k not in SPLIT_ALIASES], f"{source}: ",
          f"split names among {sorted(set(SPLIT_ALIASES) - {''})} (any case) or empty", "unknown split names")
    splits = np.where(labelled, keys.map(SPLIT_ALIASES), "unlabelled")  # label-less rows are unlabelled
    _fail([f"{r}={v!r}" for r, v, has, k in zip(rows, split_raw, labelled, keys) if has and SPLIT_ALIASES[k] == "unlabelled"],
          f"{source}: ", "a train/dev/test split on every labelled row", "labelled rows with an empty or unlabelled split")
    duplicated = pd.Series(files).duplicated(keep=False)
    _fail([f"{r}: {f}" for r, f, d in zip(rows, files, duplicated) if d], f"{source}: ", "each file once",
          "duplicate files")
    _fail([str(p) for p in paths if not p.is_file()], f"{source}: ", "every audio file to exist", "missing audio files")
    table = _table(files, [str(p) for p in paths], list(splits), values,
                   _optional_text(speaker_raw, n), _optional_text(emotion_raw, n))
    validate_manifest(table, labels, source=source)
    return table


def _table(files, paths, splits, values, speakers, emotions) -> pd.DataFrame:
    data = {"path": pd.Series(paths, dtype="str"), "split": pd.Series(splits, dtype="str"),
            **{a: pd.Series(np.asarray(values[a], dtype=np.float64)) for a in AVD},
            "speaker": pd.Series(speakers, dtype="str"), "emotion": pd.Series(emotions, dtype="str")}
    table = pd.DataFrame(data, columns=list(COLUMNS))
    table.index = pd.Index(files, dtype="str", name="file")
    return table


def _read_csv(source: Path) -> pd.DataFrame:
    """Every cell as text ("" when empty), column names stripped and lower-cased."""
    if not source.is_file():
        raise ManifestError(f"expected a CSV file, found {'a folder' if source.is_dir() else 'no file'} at {source}")
    try:
        raw = pd.read_csv(source, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, OSError) as err:
        raise ManifestError(f"{source}: expected a readable CSV with a header row, found an error: {err}") from None
    names = [str(c).strip().lower() for c in raw.columns]
    repeated = sorted({c for c in names if names.count(c) > 1})
    if repeated:
        raise ManifestError(f"{source}: expected distinct column names (case-insensitive), found repeated {repeated}")
    raw.columns = names
    if raw.empty:
        raise ManifestError(f"{source}: expected at least one row, found only the header {list(raw.columns)}")
    return raw


def _parse_labels(raw: dict[str, pd.Series | None], rows: list[str], source: Path) -> dict[str, np.ndarray]:
    """Label texts as float64 (NaN for empty cells or absent columns), every non-number reported."""
    values, bad = {}, []
    for name, column in raw.items():
        if column is None:
            values[name] = np.full(len(rows), np.nan)
            continue
        text = column.fillna("").str.strip()
        empty = text.str.lower().isin(_MISSING)
        numbers = pd.to_numeric(text.mask(empty, ""), errors="coerce").astype(np.float64)
        bad += [f"{rows[i]} {name}={column.iloc[i]!r}" for i in np.flatnonzero(numbers.isna() & ~empty)]
        values[name] = numbers.to_numpy()
    _fail(bad, f"{source}: ", "numeric labels or empty cells", "non-numeric label values")
    return values


def _require_values(column: pd.Series, rows: list[str], name: str, source: Path) -> None:
    _fail([r for r, v in zip(rows, column.fillna("").str.strip()) if v == ""], f"{source}: ",
          f"a value in every '{name}' cell", "empty cells")


def _first_existing(candidates: list[Path], what: str) -> Path:
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise ManifestError(f"expected an MSP-Podcast {what} at one of {[str(c) for c in candidates]}, found none")


def _relative_id(path: Path, folder: Path) -> str:
    """The path relative to `folder` with '/' separators; the absolute path when outside it."""
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return path.as_posix()


def _optional_text(raw: pd.Series | None, n: int) -> list[str | None]:
    if raw is None:
        return [None] * n
    text = raw.fillna("").str.strip()
    return [None if t.lower() in _MISSING else t for t in text]
