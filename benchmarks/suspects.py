"""Does the suspicious-label ranking find wrong labels? A demo corpus with a known 10 % of its train labels moved
to the far side of the scale, a `demo` run trained on it, and the ranking (`core.explore.suspects`) scored
against the known corruptions. The corruption and the scoring are pure functions; only `bench_suspects` trains."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.config import AVD, LabelConfig
from core.data.manifest import COLUMNS as MANIFEST_COLUMNS
from benchmarks.results import NO_TARGET, BenchResult

CORRUPTED_SHARE = 0.10  # the 10 %: also the top share scored, so random precision = recall = 0.10
FAR_SIDE = 0.75  # a corrupted label lies at least this far across the scale from the end it came from
TARGET_PRECISION = 0.5  # combined precision@10 % for arousal (the target)
RANKINGS = {"combined": "score", "neighbour gap alone": "neighbour_gap_z", "prediction gap alone": "prediction_gap_z"}


@dataclass(frozen=True)
class Corruption:
    table: pd.DataFrame  # the utterance table with the corrupted labels (index `file`)
    files: frozenset[str]  # the corrupted utterances (train rows only)


@dataclass(frozen=True)
class RankingScore:
    precision: float  # share of the top rows that are corrupted
    recall: float  # share of the corrupted rows that are in the top
    n_top: int  # train rows taken from the top of the ranking
    n_corrupted: int


def far_side(values: np.ndarray, labels: LabelConfig = LabelConfig()) -> np.ndarray:
    """Each label moved to the far side of the scale: mirrored around the midpoint, then pushed at least
    `FAR_SIDE` of the way across from the end it was near (on 1-7: 6.2 -> 1.8, 4.3 -> 2.5, 3.9 -> 5.5).

    A mirror alone barely moves a label near the midpoint (4.1 -> 3.9), which no method could be asked to
    find; the push makes every corruption move at least a quarter of the scale. A label exactly at the
    midpoint goes up. The result stays inside the scale and is rounded to 0.01, as the demo's labels are.

    Args:
        values: (N,) labels inside `labels`' range.

    Returns:
        (N,) the corrupted labels.
    """
    low, high = labels.minimum, labels.maximum
    values = np.asarray(values, float)
    mirrored = low + high - values
    span = FAR_SIDE * (high - low)
    moved = np.where(values >= (low + high) / 2, np.minimum(mirrored, high - span), np.maximum(mirrored, low + span))
    return np.round(np.clip(moved, low, high), 2)


def corrupt_labels(table: pd.DataFrame, share: float, seed: int, labels: LabelConfig = LabelConfig(),
                   attributes: tuple[str, ...] = AVD) -> Corruption:
    """Move every attribute's label of round(`share` x n) train utterances to the far side (`far_side`).

    The same utterances for every attribute, as one careless annotator would give; the corrupted labels are
    drawn without replacement from the train rows only (dev and test stay clean, so they still judge the model).

    Args:
        table: the utterance table (`core.data.manifest`), index `file`.
        share: the share of train utterances to corrupt, in [0, 1].
        seed: picks the utterances.
        labels: the label scale.
        attributes: the attributes to corrupt (NaN labels stay NaN).

    Returns:
        The corrupted copy of `table` and the corrupted files.

    Raises:
        ValueError: `share` outside [0, 1].
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share}")
    train = table.index[table["split"] == "train"]
    picked = np.random.default_rng(seed).choice(len(train), size=round(share * len(train)), replace=False)
    files = train[np.sort(picked)]
    corrupted = table.copy()
    for attribute in attributes:
        corrupted.loc[files, attribute] = far_side(table.loc[files, attribute].to_numpy(float), labels)
    return Corruption(corrupted, frozenset(files))


def write_manifest(table: pd.DataFrame, path: Path) -> Path:
    """Write `table` as a generic manifest CSV that `load_manifest` reads back: `path` relative to the CSV's
    folder where the audio lies under it (so the file ids stay those of `table`), absolute otherwise."""
    folder = path.parent.resolve()
    out = table.reset_index(drop=True)[list(MANIFEST_COLUMNS)].copy()
    out["path"] = [_relative_or_absolute(Path(p), folder) for p in out["path"]]
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False, float_format="%.2f")
    return path


def score_ranking(ranked: pd.DataFrame, attribute: str, column: str, corrupted: frozenset[str],
                  share: float = CORRUPTED_SHARE) -> RankingScore:
    """Precision and recall of the top `share` of an attribute's train rows, ranked by `column` (high first).

    Train rows only: the corruption is in train, so dev and test rows could only dilute the top. A random
    ranking's expected precision is the corrupted share among train rows (0.10 in the benchmark).

    Args:
        ranked: `core.explore.suspects.suspect_labels`' output (index `file`).
        attribute: whose rows to score.
        column: the ranking signal: `score`, `neighbour_gap_z` or `prediction_gap_z`.
        corrupted: the corrupted files.
        share: the share of train rows taken from the top (at least one row).

    Returns:
        The precision and recall of those top rows (recall NaN where nothing was corrupted).
    """
    rows = ranked[(ranked["attribute"] == attribute) & (ranked["split"] == "train")]
    n_top = max(1, round(share * len(rows)))
    # a stable sort: ties keep the ranking's order, as `suspect_labels`' rank does
    top = rows.sort_values(column, ascending=False, kind="stable").index[:n_top]
    hits = len(set(top) & corrupted)
    return RankingScore(precision=hits / n_top, recall=hits / len(corrupted) if corrupted else float("nan"),
                        n_top=n_top, n_corrupted=len(corrupted))


def bench_suspects(work: Path, seed: int = 0) -> list[BenchResult]:
    """The demo corpus (seed `seed`) with 10 % of its train labels corrupted, the `demo` preset trained on it,
    and the precision@10 % of its suspicious-label ranking for each attribute and signal."""
    from core import RunStore
    from core.config import demo
    from core.data.corpus_formats import load_manifest
    from core.data.synthetic import make_demo_corpus
    from core.explore.exploration import explore, utterance_table
    from core.explore.suspects import suspect_labels
    from core.training.train import train
    t0 = time.perf_counter()
    cfg = demo()
    clean = load_manifest(make_demo_corpus(work / "suspects-demo", seed=seed), cfg.labels)
    corruption = corrupt_labels(clean, CORRUPTED_SHARE, seed, cfg.labels)
    corpus = load_manifest(write_manifest(corruption.table, work / "suspects-demo" / "manifest-corrupted.csv"), cfg.labels)
    t1 = time.perf_counter()
    run = train(cfg, corpus, RunStore(work / "suspects-runs"), work / "suspects-cache").run
    t2 = time.perf_counter()
    exploration = explore(run, cache_root=work / "suspects-cache")
    table = utterance_table(exploration)
    attributes = [a for a in AVD if a in exploration.latent.predictions.columns]
    ranked = suspect_labels(exploration.latent.embeddings["cluster"], table, attributes)
    t3 = time.perf_counter()
    n_train = int((corpus["split"] == "train").sum())
    setting = f"{len(corruption.files)} of {n_train} train labels corrupted (seed {seed}); random 0.10"
    results = []
    for attribute in attributes:
        scores = {name: score_ranking(ranked, attribute, column, corruption.files) for name, column in RANKINGS.items()}
        combined = scores["combined"]
        target, met = (f">= {TARGET_PRECISION}", combined.precision >= TARGET_PRECISION) if attribute == "arousal" \
            else (NO_TARGET, None)
        results.append(BenchResult(f"suspects: {attribute} precision@10% (combined)", combined.precision, "",
                                   target, setting, met=met))
        results.append(BenchResult(f"suspects: {attribute} recall@10% (combined)", combined.recall, "", NO_TARGET,
                                   f"top {combined.n_top} train rows of {n_train}; random 0.10"))
        for name in ("neighbour gap alone", "prediction gap alone"):
            results.append(BenchResult(f"suspects: {attribute} precision@10% ({name})", scores[name].precision, "",
                                       NO_TARGET, f"recall {scores[name].recall:.2f}; random 0.10"))
    results.append(BenchResult("suspects: corpus, corrupt, train demo preset, explore, rank", t3 - t0, "s", NO_TARGET,
                               f"corpus {t1 - t0:.0f} s, training {t2 - t1:.0f} s ({cfg.train.epochs} epochs), "
                               f"explore and rank {t3 - t2:.0f} s"))
    return results


def _relative_or_absolute(path: Path, folder: Path) -> str:
    try:
        return path.resolve().relative_to(folder).as_posix()
    except ValueError:
        return str(path)
