"""Exports of an exploration: the cluster-emotion table, the per-utterance table, the embeddings.

CSV, Parquet or JSON, written atomically. CSV text cells that a spreadsheet would run as a formula
(starting with =, +, -, @, tab or carriage return) are prefixed with a quote (OWASP CSV injection).
"""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from core.explore.analysis import DependenceReport
from core.explore.colourings import column_notes
from core.explore.exploration import Exploration, utterance_table
from core.store.atomic import atomic_write_bytes

FORMATS = ("csv", "parquet", "json")
DESCRIPTIONS = {  # what each exported table holds, as the app lists them
    "cluster_emotion": "per cluster (true labels and predictions): size, share, and each attribute's mean, std, median, IQR",
    "dependence": "per attribute: Kruskal-Wallis H, p-value, epsilon squared, mutual information, and the same with "
                  "shuffled clusters (mean, std)",
    "contingency": "utterances per cluster and emotion category",
    "utterances": "per utterance: file (its key, relative to the corpus folder), path (its audio, relative to the same "
                  "folder unless absolute), split, speaker, emotion, cluster, map position, true and predicted attributes, error, "
                  "and the tags and unusable marks given while curating (the corpus's own labels: the corrected ones "
                  "are in export-corpus's manifest)",
    "embeddings": "per utterance: its 256-d embedding (the mean of its chunks) in the clustering space",
}


def map_columns(name: str) -> str:
    """For the exported utterances, what each column the map is coloured by holds, as the map's colourings say it
    (`core.explore.colourings`); "" for the other tables."""
    return column_notes() if name == "utterances" else ""


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(table: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells (index included) cannot start a spreadsheet formula; numbers untouched."""
    def clean(value):
        return "'" + value if isinstance(value, str) and value.startswith(_FORMULA_START) else value

    out = table.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(clean)
    if isinstance(out.index, pd.MultiIndex):
        out.index = pd.MultiIndex.from_tuples([tuple(map(clean, t)) for t in out.index], names=out.index.names)
    else:
        out.index = pd.Index([clean(v) for v in out.index], name=out.index.name)
    out.columns = [clean(str(c)) for c in out.columns]
    return out


def write_table(table: pd.DataFrame, path: Path, fmt: str) -> Path:
    """Write one table as csv, parquet or json (records with the index as columns); returns the path."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {list(FORMATS)}, got {fmt!r}")
    path = Path(path).with_suffix(f".{fmt}")
    if fmt == "csv":
        data = neutralise_formulas(table).to_csv().encode()
    elif fmt == "parquet":
        buffer = io.BytesIO()
        table.to_parquet(buffer)
        data = buffer.getvalue()
    else:
        data = table.reset_index().to_json(orient="records", indent=1, double_precision=10).encode()
    atomic_write_bytes(path, data)
    return path


def embeddings_table(files: pd.Index, embeddings: np.ndarray, prefix: str = "e") -> pd.DataFrame:
    """(N, D) utterance embeddings as a table indexed by file, columns e000 ... e255."""
    return pd.DataFrame(embeddings, index=pd.Index(files, name="file"),
                        columns=[f"{prefix}{i:03d}" for i in range(embeddings.shape[1])])


def corpus_folder(files: pd.Index, paths: pd.Series) -> Path:
    """The folder the utterances' keys are relative to (`file`, e.g. "audio/demo_0000.wav"): the folder whose
    join with each key is its audio `path` (a manifest's folder, an MSP-Podcast folder, a folder of clips). Keys
    that are not such a relative path (a manifest listing absolute paths) fall back to the deepest folder
    holding every clip."""
    folders = set()
    for file, path in zip(files, paths):
        key, full = Path(str(file)).parts, Path(path).parts
        if Path(str(file)).is_absolute() or full[len(full) - len(key):] != key:
            break
        folders.add(Path(*full[:len(full) - len(key)]))
    else:
        if len(folders) == 1:
            return folders.pop()
    return Path(os.path.commonpath([str(Path(p).parent) for p in paths])) if len(paths) else Path(".")


def corpus_relative_paths(table: pd.DataFrame) -> list[str]:
    """`table`'s audio paths (column `path`) relative to the folder its keys (index `file`) are relative to
    (`corpus_folder`): one convention for both, in every table a user is given."""
    root = corpus_folder(table.index, table["path"])
    return [os.path.relpath(p, root) for p in table["path"]]


def export_exploration(exploration: Exploration, report: DependenceReport, coords: np.ndarray | None, out_dir: Path,
                       fmt: str, space: str = "cluster", absolute_paths: bool = False,
                       annotations: pd.DataFrame | None = None) -> list[Path]:
    """Write every export of an exploration in one format (`DESCRIPTIONS`); returns the files.

    Files: cluster_emotion (per source and cluster), dependence (per source and attribute, with the
    shuffled baseline), contingency (when categorical emotions exist), utterances, embeddings.
    `absolute_paths`: the utterances' audio paths as stored; default relative to `corpus_folder`, the folder
    the `file` keys are relative to, so that `path` and `file` follow one convention and the tables can be shared.
    `annotations`: per-utterance columns a person added (tags, unusable marks: `core.curate.edits.annotations`),
    joined to the utterances table.
    """
    out_dir = Path(out_dir)
    utterances = utterance_table(exploration, coords)
    if not absolute_paths:
        utterances["path"] = corpus_relative_paths(utterances)
    if annotations is not None:
        utterances = utterances.join(annotations)
    tables = {"cluster_emotion": report.per_cluster, "dependence": report.dependence, "utterances": utterances,
              "embeddings": embeddings_table(exploration.latent.files, exploration.latent.embeddings[space])}
    if report.contingency is not None:
        tables["contingency"] = report.contingency
    return [write_table(table, out_dir / name, fmt) for name, table in tables.items()]


def zip_files(paths: list[Path]) -> bytes:
    """The files in one zip archive (deflated), each under its own name."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in paths:
            archive.write(path, Path(path).name)
    return buffer.getvalue()
