"""A stored run evaluated on corpora: its own test predictions (stored with the run, or computed once for
runs finished before they were) and cross-corpus tables of CCC with intervals (`core.evaluate.uncertainty`)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

import numpy as np
import pandas as pd

from core.audio.decode import AudioLoadingError
from core.config import LabelConfig, config_hash
from core.data.manifest import TEST_SPLITS, corpus_fingerprint, is_labelled
from core.errors import UserError
from core.evaluate.evaluation import split_estimates
from core.evaluate.uncertainty import RESAMPLES
from core.model.inference import Predictor
from core.represent.predictor import predictor_of
from core.store.evaluation_store import Evaluation
from core.store.evaluation_store import load_evaluation, save_evaluation
from core.store.run_store import Run, RunStore

ALL_LABELLED = "all labelled"  # the split name of a corpus evaluated on every labelled row (it has no test split)


class EvaluationError(UserError, ValueError):
    """A run or corpus that cannot be evaluated (said in words)."""


def run_test_predictions(run: Run, device: str = "auto", progress: Callable[[int, int], None] | None = None
                     ) -> pd.DataFrame:
    """The run's per-utterance test predictions (`core.evaluate.evaluation.prediction_table` rows).

    Runs store them when they finish; for a run finished before runs did, they are computed once from its model
    over the test splits of its corpus and stored with it (`RunStore.add_test_predictions`).

    Raises:
        EvaluationError: an imported model (no corpus of its own), or a corpus without test splits.
        AudioLoadingError: a test clip can no longer be read.
    """
    if (stored := run.test_predictions()) is not None:
        return stored
    corpus = run.corpus()
    if corpus is None:
        raise EvaluationError(f"run {run.run_id} has no corpus of its own (an imported model): "
                              "evaluate it on a corpus (evaluate RUN --corpus PATH)")
    if not _test_splits(corpus):
        raise EvaluationError(f"run {run.run_id}'s corpus has no test split")
    predictions = corpus_predictions(predictor_of(run, device), corpus, progress=progress)
    RunStore(run.dir.parent).add_test_predictions(run, predictions)
    return predictions


def unpredicted_test_clips(run: Run) -> int:
    """How many test clips `run_test_predictions` would predict first: 0 where they are stored (every run finished
    since runs store them) or cannot be computed (an imported model: `test_estimates` says why)."""
    if run.test_predictions() is not None or (corpus := run.corpus()) is None:
        return 0
    return int(corpus["split"].isin(_test_splits(corpus)).sum())


def test_estimates(run: Run, device: str = "auto") -> pd.DataFrame:
    """`core.evaluate.evaluation.split_estimates` of the run's test predictions (`run_test_predictions`).

    Computed from the predictions each time (under a second for 10 000 utterances) rather than read from
    `metrics.json`, so that every run is shown with the current bootstrap, whenever it was trained.

    Raises:
        EvaluationError, AudioLoadingError: as `run_test_predictions`.
    """
    return split_estimates(run_test_predictions(run, device), run.config.model.attributes)


def corpus_predictions(predictor: Predictor, corpus: pd.DataFrame, *, label_range: tuple[float, float] | None = None,
                       run_labels: LabelConfig = LabelConfig(),
                       progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Predictions of a corpus's test splits (every labelled row, as split "all labelled", where it has none).

    Args:
        label_range: the corpus's label scale (minimum, maximum) where it is not the run's: labels are mapped
            linearly onto `run_labels` (a CCC compares values, so both must be on one scale).

    Returns:
        index file; columns split, speaker, then `<a>` (label, NaN = missing) and `<a>_predicted` per attribute
        the predictor predicts.

    Raises:
        EvaluationError: no labelled rows at all.
        AudioLoadingError: a clip could not be read (evaluating a subset would mislead).
    """
    splits = _test_splits(corpus)
    rows = corpus[corpus["split"].isin(splits)] if splits else corpus[is_labelled(corpus)]
    if rows.empty:
        raise EvaluationError("the corpus has no labelled utterances to evaluate on")
    result = predictor.predict_files(rows["path"], progress=progress)
    if result.errors:
        path, reason = next(iter(result.errors.items()))
        raise AudioLoadingError(path, f"{reason} ({len(result.errors)} unreadable evaluation clips)")
    predicted = result.utterances.set_index("path").loc[rows["path"].astype(str)]
    table = pd.DataFrame({"split": rows["split"].to_numpy(object) if splits else ALL_LABELLED,
                          "speaker": rows["speaker"].to_numpy(object) if "speaker" in rows else None},
                         index=rows.index.rename("file"))
    for attribute in predictor.attributes:
        labels = rows[attribute].to_numpy(np.float64)
        table[attribute] = _to_scale(labels, label_range, run_labels) if label_range else labels
        table[f"{attribute}_predicted"] = predicted[attribute].to_numpy(np.float64)
    return table


def evaluate_corpora(run: Run, corpora: dict[str, pd.DataFrame], sources: dict[str, str], *,
                     label_range: tuple[float, float] | None = None, device: str = "auto",
                     resamples: int = RESAMPLES, seed: int = 0,
                     progress: Callable[[str, int, int], None] | None = None) -> Evaluation:
    """The run on each corpus: one table (corpus x split x attribute) of CCC with intervals and n, stored
    beside the run and reused while the corpora are unchanged.

    Args:
        corpora: name -> utterance table (`core.data.manifest.load_corpus`); sources: name -> where it was read.
        label_range: the corpora's label scale, where it differs from the run's (`corpus_predictions`).
        progress: optional callback(corpus name, done, total) of the predictions.
    """
    key = "corpora-" + config_hash({"corpora": {n: corpus_fingerprint(c) for n, c in corpora.items()},
                                     "label_range": label_range, "resamples": resamples, "seed": seed})[:12]
    if (stored := load_evaluation(run.dir, key)) is not None:
        return stored
    predictor, tables, notes = predictor_of(run, device), {}, []
    for name, corpus in corpora.items():
        report = (lambda d, t, name=name: progress(name, d, t)) if progress else None
        tables[name] = corpus_predictions(predictor, corpus, label_range=label_range, run_labels=run.config.labels,
                                          progress=report)
        if not _test_splits(corpus):
            notes.append(f"{name} has no test split: every labelled utterance is evaluated")
    if label_range:
        notes.append(f"labels mapped linearly from {label_range[0]:g}..{label_range[1]:g} onto the run's "
                     f"{run.config.labels.minimum:g}..{run.config.labels.maximum:g}")
    predictions = pd.concat(tables, names=["corpus"])
    table = pd.concat({name: split_estimates(t, predictor.attributes, resamples=resamples, seed=seed)
                       for name, t in tables.items()}, names=["corpus"])
    evaluation = Evaluation(key, sources, label_range, table, predictions, _now(), notes)
    save_evaluation(run.dir, evaluation)
    return evaluation


def _test_splits(corpus: pd.DataFrame) -> list[str]:
    return [s for s in TEST_SPLITS if (corpus["split"] == s).any()]


def _to_scale(values: np.ndarray, label_range: tuple[float, float], target: LabelConfig) -> np.ndarray:
    low, high = label_range
    return target.minimum + (values - low) * (target.maximum - target.minimum) / (high - low)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
