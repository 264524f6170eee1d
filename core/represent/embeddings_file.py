"""Embeddings a researcher computed elsewhere (WavLM, wav2vec 2.0, ...), read and matched to a corpus's clips.

Two forms: a Parquet table with a `path` column and either one column holding each clip's vector or numbered
columns (`0, 1, ...`, `e0, e1, ...`, `dim_0, ...`: one dimension each, in numeric order); or a `.npy` matrix
with a CSV beside it whose `path` column names each row's clip. A path is matched to the corpus by its key
(the audio path relative to the corpus folder, as in every exported table), else as an audio file (absolute,
or relative to the embeddings file's folder). Every problem is found before anything is stored and reported
in one message, with counts and example paths.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import UserError

_NUMBERED = re.compile(r"^\D*?(\d+)$")  # "12", "e12", "dim_12"
_EXAMPLES = 3


class EmbeddingsFileError(UserError, ValueError):
    """An embeddings file that cannot be used: unreadable, or not one finite vector per clip of the corpus."""


def read_embeddings(source: str | os.PathLike, corpus: pd.DataFrame,
                    paths: str | os.PathLike | None = None) -> tuple[np.ndarray, list[str]]:
    """(N, D) float32 vectors in `corpus`'s row order, and the D dimension names.

    Args:
        source: a .parquet table, or a .npy matrix (then `paths`: a CSV with a `path` column, one row per vector).

    Raises:
        EmbeddingsFileError: unreadable; missing or extra clips, duplicate paths, NaN or infinite values,
            ragged or zero-length vectors, or no clip of the corpus at all (all problems in one message).
    """
    source = Path(source)
    if not source.is_file():
        raise EmbeddingsFileError(f"{source}: no such file")
    names, matrix, columns = _read(source, paths)
    keys = _match(names, corpus, source.parent)
    problems = []
    if keys.isna().all():
        raise EmbeddingsFileError(f"{source}: none of its {len(names):,} paths is a clip of this corpus "
                                  f"({len(corpus):,} clips), e.g. {_some(names)}: is it this corpus's embeddings?")
    if (duplicated := pd.Series(names)[pd.Series(names).duplicated(keep=False)]).any():
        problems.append(f"{duplicated.nunique():,} paths appear more than once, e.g. {_some(duplicated.unique())}")
    elif (again := keys[keys.duplicated(keep=False) & keys.notna()]).any():
        problems.append(f"{again.nunique():,} clips are named by two paths, e.g. {_some(again.unique())}")
    if (extra := pd.Series(names)[keys.isna().to_numpy()]).any():
        problems.append(f"{len(extra):,} paths are not clips of this corpus, e.g. {_some(extra)}")
    if len(missing := corpus.index.difference(keys.dropna())):
        problems.append(f"{len(missing):,} clips of the corpus have no vector, e.g. {_some(missing)}")
    if (bad := ~np.isfinite(matrix).all(1)).any():
        problems.append(f"{int(bad.sum()):,} vectors hold NaN or infinite values, e.g. {_some(np.asarray(names)[bad])}")
    if problems:
        raise EmbeddingsFileError(f"{source}: " + "; ".join(problems) + "; nothing was stored")
    order = pd.Series(np.arange(len(keys)), index=keys.to_numpy()).loc[corpus.index].to_numpy()
    return matrix[order].astype(np.float32), columns


def _read(source: Path, paths: str | os.PathLike | None) -> tuple[list[str], np.ndarray, list[str]]:
    try:
        if source.suffix.lower() == ".npy":
            if paths is None:
                raise EmbeddingsFileError(f"{source}: a .npy file needs the CSV of its rows' paths (--paths FILE.csv)")
            matrix = np.load(source, allow_pickle=False)
            names = pd.read_csv(paths, dtype=str, keep_default_na=False)
            if "path" not in names.columns:
                raise EmbeddingsFileError(f"{paths}: expected a 'path' column, found {list(names.columns)}")
            if matrix.ndim != 2 or len(matrix) != len(names):
                raise EmbeddingsFileError(f"{source}: expected a 2-d matrix with one row per path of {paths} "
                                          f"({len(names):,}), found shape {matrix.shape}")
            return names["path"].tolist(), _numbers(matrix, source), [f"e{i}" for i in range(matrix.shape[1])]
        table = pd.read_parquet(source)
    except EmbeddingsFileError:
        raise
    except (OSError, ValueError) as err:
        raise EmbeddingsFileError(f"{source}: unreadable ({str(err).splitlines()[0]})") from None
    if "path" not in table.columns:
        raise EmbeddingsFileError(f"{source}: expected a 'path' column, found {list(table.columns)[:10]}")
    names = table["path"].astype(str).tolist()
    rest = [c for c in table.columns if c not in ("path", "file")]
    numbered = sorted((int(m.group(1)), c) for c in rest if (m := _NUMBERED.match(str(c))))
    is_vector = table[rest[0]].map(lambda v: isinstance(v, (list, tuple, np.ndarray))) if len(rest) == 1 else None
    if len(rest) == 1 and not numbered and is_vector.all():  # one column of vectors
        lengths = table[rest[0]].map(len)
        if (lengths <= 0).any() or lengths.nunique() > 1:
            counts = lengths.value_counts().head(4).to_dict()
            raise EmbeddingsFileError(f"{source}: column {rest[0]!r} holds ragged or zero-length vectors (lengths and "
                                      f"their counts: {counts}), e.g. {_some(pd.Series(names)[lengths != lengths.mode()[0]])}")
        matrix = np.stack(table[rest[0]].map(lambda v: np.asarray(v, np.float64)).to_list())
        return names, _numbers(matrix, source), [f"{rest[0]}{i}" for i in range(matrix.shape[1])]
    if not numbered or len(numbered) != len(rest):
        raise EmbeddingsFileError(f"{source}: expected one vector column or numbered columns (0, 1, ... or e0, e1, ...) "
                                  f"beside 'path', found {rest[:10]}")
    columns = [c for _, c in numbered]
    return names, _numbers(table[columns].to_numpy(), source), [str(c) for c in columns]


def _numbers(matrix: np.ndarray, source: Path) -> np.ndarray:
    try:
        matrix = np.asarray(matrix, np.float64)
    except (TypeError, ValueError):
        raise EmbeddingsFileError(f"{source}: the vectors are not numbers") from None
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise EmbeddingsFileError(f"{source}: expected vectors of at least one dimension, found shape {matrix.shape}")
    return matrix


def _match(names: list[str], corpus: pd.DataFrame, folder: Path) -> pd.Series:
    """Each name's corpus key: the key itself, else its audio file; NaN where it is no clip of the corpus."""
    by_file = {os.path.abspath(p): key for key, p in corpus["path"].items()}
    keys = set(corpus.index)
    return pd.Series([n if n in keys else by_file.get(os.path.abspath(folder / n)) for n in names], dtype=object)


def _some(values) -> str:
    values = list(values)
    return ", ".join(map(str, values[:_EXAMPLES])) + (", ..." if len(values) > _EXAMPLES else "")
