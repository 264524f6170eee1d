"""The ablations the paper and SPEC 2.4 call for: with vs without the unlabelled stage (and, optionally,
with the released code's frozen regression branch), trained side by side on one corpus, and what the
unlabelled stage bought: the paired difference of test CCC with its bootstrap interval."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from core.config import RunConfig
from core.evaluate.cross_corpus import run_test_predictions
from core.evaluate.uncertainty import RESAMPLES, ccc_difference, speaker_groups
from core.runtime.distributed import World
from core.store.run_store import Run, RunStore
from core.training.train import TrainProgress, train


@dataclass(frozen=True)
class AblationVariant:
    label: str  # e.g. "with unlabelled, frozen regressor"
    config: RunConfig


@dataclass(frozen=True)
class AblationResult:
    runs: dict[str, Run]  # variant label -> its run
    test_ccc: pd.DataFrame  # index (variant, split), one column per attribute
    # "<with> - <without>" -> `paired_difference` table, one per pair differing in `train.use_unlabelled` only
    differences: dict[str, pd.DataFrame]


def ablation_variants(base: RunConfig, *, with_frozen_regressor: bool = False) -> list[AblationVariant]:
    """`base` with and without `train.use_unlabelled`; with `with_frozen_regressor`, both regressor settings."""
    frozen_options = [False, True] if with_frozen_regressor else [base.train.freeze_regressor]
    return [AblationVariant(("with unlabelled" if use else "labelled only") + (", frozen regressor" if frozen else ""),
                            dataclasses.replace(base, train=dataclasses.replace(base.train, use_unlabelled=use,
                                                                                freeze_regressor=frozen)))
            for frozen in frozen_options for use in (True, False)]


def run_ablation(variants: list[AblationVariant], corpus: pd.DataFrame, runs: RunStore, cache_root: Path, *,
                 progress: Callable[[str, TrainProgress], None] | None = None, workers: int | None = None,
                 world: World | None = None, allow_speaker_overlap: bool = False,
                 allow_duplicate_audio: bool = False) -> AblationResult:
    """Train (or load) every variant on `corpus`; their test CCC side by side.

    Args:
        progress: optional callback(variant label, training progress).
        allow_speaker_overlap, allow_duplicate_audio: passed to `core.training.train.train` (leaks between splits).

    Raises:
        TrainingConfigError: a variant cannot be trained on `corpus` (`core.training.train.train`).
    """
    trained = {}
    for variant in variants:
        report = (lambda p, label=variant.label: progress(label, p)) if progress else None
        trained[variant.label] = train(variant.config, corpus, runs, cache_root, progress=report, workers=workers,
                                       world=world, allow_speaker_overlap=allow_speaker_overlap,
                                       allow_duplicate_audio=allow_duplicate_audio)
    pairs = {f"{a} - {b}": (trained[a].run, trained[b].run) for a, b in zip(trained, list(trained)[1:])
             if a.startswith("with unlabelled") and b.startswith("labelled only")}
    return AblationResult({label: r.run for label, r in trained.items()}, ccc_table({k: r.test_ccc for k, r in trained.items()}),
                          {name: paired_difference(*pair) for name, pair in pairs.items()})


def paired_difference(run_a: Run, run_b: Run, *, device: str = "auto", resamples: int = RESAMPLES,
                      seed: int = 0) -> pd.DataFrame:
    """Test CCC of `run_a` minus `run_b` on their common test utterances, per split and attribute, each with
    a paired bootstrap interval (`core.evaluate.uncertainty.ccc_difference`: both runs see the same resamples), and the
    speaker-clustered one where speakers are known.

    Returns:
        index (split, attribute); columns difference, low, high, n, reason, speaker_low, speaker_high.
    """
    a, b = run_test_predictions(run_a, device), run_test_predictions(run_b, device)
    common = a.index.intersection(b.index)
    a, b = a.loc[common], b.loc[common]
    rows = {}
    for split, part in a.groupby("split", sort=False):
        speakers = speaker_groups(part)
        for attribute in [c for c in part if f"{c}_predicted" in part and f"{c}_predicted" in b]:
            y, pa = part[attribute].to_numpy(np.float64), part[f"{attribute}_predicted"].to_numpy(np.float64)
            pb = b.loc[part.index, f"{attribute}_predicted"].to_numpy(np.float64)
            est = ccc_difference(y, pa, pb, resamples=resamples, seed=seed)
            grouped = (ccc_difference(y, pa, pb, groups=speakers, resamples=resamples, seed=seed)
                       if speakers is not None else None)
            rows[(split, attribute)] = {"difference": est.value, "low": est.low, "high": est.high, "n": est.n,
                                        "reason": est.reason, "speaker_low": grouped.low if grouped else np.nan,
                                        "speaker_high": grouped.high if grouped else np.nan}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(["split", "attribute"])


def ccc_table(test_ccc: dict[str, dict[str, dict[str, float]]]) -> pd.DataFrame:
    """name -> split -> attribute -> CCC as a table indexed by (name, split)."""
    rows = {(name, split): values for name, splits in test_ccc.items() for split, values in splits.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(["run", "split"])


def ablation_partner(run: Run, runs: list[Run]) -> Run | None:
    """The run with the same corpus and config except `train.use_unlabelled` (the SSL ablation), if any."""
    if not run.info.trained:
        return None
    flipped = dataclasses.replace(run.config, train=dataclasses.replace(
        run.config.train, use_unlabelled=not run.config.train.use_unlabelled))
    return next((r for r in runs if r.info.trained and r.config == flipped
                 and r.info.corpus_fingerprint == run.info.corpus_fingerprint), None)
