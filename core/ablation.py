"""The ablations the paper and SPEC 2.4 call for: with vs without the unlabelled stage (and, optionally,
with the released code's frozen regression branch), trained side by side on one corpus."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from core.config import RunConfig
from core.distributed import World
from core.run_store import Run, RunStore
from core.train import TrainProgress, train


@dataclass(frozen=True)
class AblationVariant:
    label: str  # e.g. "with unlabelled, frozen regressor"
    config: RunConfig


@dataclass(frozen=True)
class AblationResult:
    runs: dict[str, Run]  # variant label -> its run
    test_ccc: pd.DataFrame  # index (variant, split), one column per attribute


def ablation_variants(base: RunConfig, *, with_frozen_regressor: bool = False) -> list[AblationVariant]:
    """`base` with and without `train.use_unlabelled`; with `with_frozen_regressor`, both regressor settings."""
    frozen_options = [False, True] if with_frozen_regressor else [base.train.freeze_regressor]
    return [AblationVariant(("with unlabelled" if use else "labelled only") + (", frozen regressor" if frozen else ""),
                            dataclasses.replace(base, train=dataclasses.replace(base.train, use_unlabelled=use,
                                                                                freeze_regressor=frozen)))
            for frozen in frozen_options for use in (True, False)]


def run_ablation(variants: list[AblationVariant], corpus: pd.DataFrame, runs: RunStore, cache_root: Path, *,
                 progress: Callable[[str, TrainProgress], None] | None = None, workers: int | None = None,
                 world: World | None = None) -> AblationResult:
    """Train (or load) every variant on `corpus`; their test CCC side by side.

    Args:
        progress: optional callback(variant label, training progress).
    """
    trained = {}
    for variant in variants:
        report = (lambda p, label=variant.label: progress(label, p)) if progress else None
        trained[variant.label] = train(variant.config, corpus, runs, cache_root, progress=report, workers=workers,
                                       world=world)
    return AblationResult({label: r.run for label, r in trained.items()}, ccc_table({k: r.test_ccc for k, r in trained.items()}))


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
