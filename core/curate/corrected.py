"""The corrected corpus: a corpus with its curation applied, written as a CSV manifest that `--corpus` reads.

Edited labels replace the corpus's; a clip marked unusable is left out, or kept without labels (split
"unlabelled") so that it still counts as unlabelled audio. The edits log goes beside the manifest, so that the
corrected corpus says how it differs from the original. Training on it is a new run: its fingerprint differs.
"""
from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.config import AVD, LabelConfig
from core.curate.edits import Curation, curation, stale_files
from core.data.manifest import COLUMNS, validate_manifest
from core.errors import UserError
from core.store.atomic import atomic_write_bytes
from core.store.edits_store import Edit

UNUSABLE = ("drop", "unlabelled")  # what becomes of an unusable clip: left out, or kept without labels


@dataclass(frozen=True)
class CorpusExport:
    manifest: Path
    log: Path  # every edit of the corpus's log, with whether it was applied
    n_clips: int
    n_relabelled: int  # clips with at least one edited label
    n_unusable: int  # clips marked unusable: left out or made unlabelled
    stale: list[str]  # clips the edits name that the corpus no longer holds (their edits are not applied)


def corrected_corpus(corpus: pd.DataFrame, state: Curation, unusable: str = "drop") -> pd.DataFrame:
    """`corpus` (an utterance table) with the edited labels, and its unusable clips dropped or unlabelled."""
    if unusable not in UNUSABLE:
        raise ValueError(f"unusable must be one of {UNUSABLE}, got {unusable!r}")
    table = corpus[list(COLUMNS)].copy()
    for (file, attribute), value in state.labels.items():
        if file in table.index:
            table.at[file, attribute] = value
    out = [f for f in state.unusable if f in table.index]
    if unusable == "drop":
        return table.drop(index=out)
    table.loc[out, list(AVD)] = np.nan
    table.loc[out, "split"] = "unlabelled"
    return table


def export_corpus(corpus: pd.DataFrame, log: list[Edit], out: Path, labels: LabelConfig = LabelConfig(),
                  unusable: str = "drop") -> CorpusExport:
    """Write the corrected corpus to the CSV manifest `out` (audio paths relative to its folder) and the edits
    log beside it (`<out stem>.edits.csv`), each atomically.

    Raises:
        UserError: `out` is not a .csv path, or the corrected corpus would leave no clip.
    """
    out = Path(out)
    if out.suffix.lower() != ".csv":
        raise UserError(f"--out {out}: expected a .csv file for the corrected manifest")
    state = curation(log)
    table = corrected_corpus(corpus, state, unusable)
    if table.empty:
        raise UserError(f"every clip of the corpus is marked unusable: {out} would hold no clip; nothing written")
    validate_manifest(table, labels, source=out)
    folder = Path(os.path.abspath(out.parent))
    manifest = table.assign(path=[Path(os.path.relpath(p, folder)).as_posix() for p in table["path"]])
    atomic_write_bytes(out, _csv(manifest.reset_index(drop=True)[list(COLUMNS)]))
    stale = stale_files(state, corpus)
    edits = pd.DataFrame([asdict(e) for e in log], columns=["time", "action", "kind", "file", "key", "old", "new"])
    edits["applied"] = ~edits["file"].isin(stale)
    log_path = out.with_name(f"{out.stem}.edits.csv")
    atomic_write_bytes(log_path, _csv(edits))
    relabelled = {f for f, _ in state.labels if f in corpus.index}
    return CorpusExport(out, log_path, len(table), len(relabelled), len([f for f in state.unusable if f in corpus.index]),
                        stale)


def _csv(table: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    table.to_csv(buffer, index=False)
    return buffer.getvalue().encode()
