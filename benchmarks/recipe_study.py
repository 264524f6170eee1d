"""`python -m benchmarks.recipe_study`: which options improve the `default` recipe, chosen by evidence.

Every option keeps the network and the two-stage method and changes one config field of `default`. Each is
trained at equal epochs on two corpora from the demo generator: a *selection* corpus (its seed and speakers
are the ones options are chosen on) and a *held-out* corpus (another seed, so other speakers, used for
nothing else) with a large test split, which costs inference only. An option is adopted only if its
paired-bootstrap difference of mean test CCC over the attributes (`core.evaluate.uncertainty.mean_ccc_difference`,
the same resampled utterances for both recipes) against `default` excludes zero on the held-out corpus.

Round 3 asks another question of the `demo` preset: which faster setting loses nothing. Its corpora have the
demo's own size, its runs the demo's 10 epochs unless an option says otherwise, and an option is adopted
only if the lower end of its held-out interval lies above -NONINFERIORITY_MARGIN (it loses at most that
much mean CCC, at 95 %), fixed before the round was run.

Round 4 repeats round 3's adopted option over training seeds, after the demo's own corpus had scored it lower:
every option on every corpus (round 3's two and the built-in demo's) for each seed of `ROUND_SEEDS`. A
single run's interval resamples test utterances only, not the training's own randomness; here the unit is a
(corpus, seed) pair: the option is kept only if the 95 % t-interval of its mean paired difference over those
pairs lies above -NONINFERIORITY_MARGIN (`seed_summary`), fixed before the round was run.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from core import keep_freed_memory
from core.config import RunConfig, apply_overrides, default, demo
from core.data.corpus_formats import load_manifest
from core.data.synthetic import make_demo_corpus
from core.evaluate.evaluation import split_estimates
from core.evaluate.uncertainty import mean_ccc_difference
from core.store.run_store import RunStore
from core.training.train import train
from benchmarks.results import epochs_seconds

ATTRIBUTES = ("arousal", "valence", "dominance")
# Each round compares options with the `default` of its day, written as overrides of today's `default()`.
# Round 1's was power-mel input in batches of 64 utterances; it adopted log-mel input with batches of 16,
# round 2's baseline, which adopted the joint cross-entropy at weight 0.3 with chunk masking. Round 3's was
# the demo preset in float32; it adopted bf16 where the hardware computes it (`train.precision=auto`),
# which round 4, the same over training seeds, withdrew.
_ROUND_2_ADOPTED = ["train.joint_ce_weight=1.0", "train.time_mask_frames=0", "train.freq_mask_bins=0"]
ROUND_BASELINES = {1: ["features.log=false", "train.batch_utterances=64", *_ROUND_2_ADOPTED], 2: _ROUND_2_ADOPTED,
                   3: ["train.precision=fp32"], 4: ["train.precision=fp32"]}
ROUND_PRESETS = {1: default, 2: default, 3: demo, 4: demo}  # the preset a round's "default" starts from
ROUNDS = {  # round -> option -> overrides of that round's baseline ("default")
    1: {"default": [],
        "log-mel input": ["features.log=true"],
        "K = 30 clusters": ["model.n_clusters=30"],
        "5 chunks per utterance": ["chunks.n_chunks=5"],
        "Adam learning rate 2e-3": ["train.lr_adam=2e-3"],
        "batches of 16 utterances": ["train.batch_utterances=16"],  # 4x the steps per epoch, the same chunks
        "log-mel + batches of 16": ["features.log=true", "train.batch_utterances=16"]},  # the two that won selection
    2: {"default": [],
        "cosine learning rate": ["train.lr_schedule=cosine"],
        "cross-entropy weight 0.3": ["train.joint_ce_weight=0.3"],
        "cross-entropy weight 3": ["train.joint_ce_weight=3"],
        "chunk masking (8 frames, 16 mel bins)": ["train.time_mask_frames=8", "train.freq_mask_bins=16"],
        "cross-entropy weight 0.3 + chunk masking": ["train.joint_ce_weight=0.3", "train.time_mask_frames=8",
                                                     "train.freq_mask_bins=16"]},  # the two that won selection
    3: {"default": [],  # the demo preset as it was: fp32, 10 epochs
        "bf16 autocast": ["train.precision=bf16"],
        "7 epochs": ["train.epochs=7"],
        "bf16 autocast + 7 epochs": ["train.precision=bf16", "train.epochs=7"]},
    4: {"default": [],  # the demo preset in float32
        "bf16 autocast": ["train.precision=bf16"]},  # what round 3 adopted, on hardware that computes it
}
ROUND_SEEDS = {4: (0, 1, 2)}  # training seeds (`seed`); the other rounds train with the preset's alone
NONINFERIORITY_MARGIN = 0.02  # rounds 3 and 4: mean test CCC an adopted option may lose at most (95 % interval)
CORPORA = {  # the size: 200 labelled + 200 unlabelled training utterances
    "selection": {"seed": 11, "n_train": 200, "n_dev": 60, "n_test": 300, "n_unlabelled": 200},
    "held-out": {"seed": 101, "n_train": 200, "n_dev": 60, "n_test": 1000, "n_unlabelled": 200},
}
DEMO_CORPORA = {  # round 3: the built-in demo's size (240 labelled + 240 unlabelled), larger test splits
    "selection": {"seed": 11, "n_train": 240, "n_dev": 60, "n_test": 300, "n_unlabelled": 240},
    "held-out": {"seed": 101, "n_train": 240, "n_dev": 60, "n_test": 1000, "n_unlabelled": 240},
}
BUILT_IN_DEMO = {"seed": 0, "n_train": 240, "n_dev": 60, "n_test": 60, "n_unlabelled": 240}  # `python -m core demo-corpus`
ROUND_CORPORA = {1: CORPORA, 2: CORPORA, 3: DEMO_CORPORA, 4: {**DEMO_CORPORA, "demo": BUILT_IN_DEMO}}


@dataclass(frozen=True)
class StudyRow:
    option: str
    corpus: str
    ccc: dict[str, str]  # attribute -> "0.612 [0.571, 0.650]"
    mean_ccc: float
    difference: str  # mean test CCC minus default's, with its paired 95 % interval
    beats_default: bool  # that interval lies above zero
    no_worse: bool  # its lower end lies above -NONINFERIORITY_MARGIN
    train_s: float  # the epochs' stages (embed, K-means, train, validate); not extraction or the test pass
    seed: int | None = None  # the training seed, in rounds that vary it (the preset's otherwise)
    difference_value: float = math.nan  # the difference alone (NaN for "default")


@dataclass(frozen=True)
class SeedSummary:
    """An option's mean paired difference over the (corpus, seed) pairs of a round, with a 95 % t-interval."""
    option: str
    pairs: int
    mean: float
    low: float
    high: float

    @property
    def no_worse(self) -> bool:
        return self.low > -NONINFERIORITY_MARGIN

    def text(self) -> str:
        return (f"{self.option}: {self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}] over {self.pairs} runs"
                f"{_verdict(self.low > 0, self.no_worse)}")


def run_study(work: Path, epochs: int | None = 5, round_number: int = 2, options: dict[str, list[str]] | None = None,
              corpora: dict[str, dict] | None = None) -> list[StudyRow]:
    """Train every option of round `round_number` on every corpus, for each training seed of the round (cached runs
    are reused), and compare each with the round's baseline, "default", of the same corpus and seed. `epochs`
    None keeps the preset's; an option's own epochs win either way."""
    options, corpora = options or ROUNDS[round_number], corpora or ROUND_CORPORA[round_number]
    rows = []
    for corpus_name, params in corpora.items():
        corpus = load_manifest(make_demo_corpus(work / f"corpus-{corpus_name}", **params))
        for seed in ROUND_SEEDS.get(round_number, (None,)):
            predictions = {}
            for option, overrides in options.items():
                seeded = [*ROUND_BASELINES[round_number], *overrides, *([] if seed is None else [f"seed={seed}"])]
                run = train(_config(ROUND_PRESETS[round_number](), epochs, seeded), corpus, RunStore(work / "runs"),
                            work / "cache").run  # a stored run is reused
                seconds = epochs_seconds(run)
                predictions[option] = run.test_predictions()
                rows.append(_row(option, corpus_name, predictions, seconds, seed))
                print(f"{corpus_name:>9} | seed {seed} | {option:<26} | {rows[-1].difference} | {seconds:.0f} s",
                      file=sys.stderr, flush=True)
    return rows


def seed_summary(rows: list[StudyRow]) -> list[SeedSummary]:
    """Each option's differences over every (corpus, seed) pair: their mean and its 95 % t-interval, the
    pairs as the units (so the training's randomness counts, not only the test utterances')."""
    summaries = []
    for option in dict.fromkeys(r.option for r in rows if r.option != "default"):
        values = np.array([r.difference_value for r in rows if r.option == option])
        half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
        summaries.append(SeedSummary(option, len(values), float(values.mean()), float(values.mean() - half),
                                     float(values.mean() + half)))
    return summaries


def _config(base: RunConfig, epochs: int | None, overrides: list[str]) -> RunConfig:
    return apply_overrides(base, [*([] if epochs is None else [f"train.epochs={epochs}"]), *overrides])


def _row(option: str, corpus: str, predictions: dict, seconds: float, seed: int | None = None) -> StudyRow:
    table, base = predictions[option], predictions["default"]
    estimates = split_estimates(table, ATTRIBUTES).loc["test"]
    y, mine = table[list(ATTRIBUTES)].to_numpy(), table[[f"{a}_predicted" for a in ATTRIBUTES]].to_numpy()
    theirs = base.loc[table.index, [f"{a}_predicted" for a in ATTRIBUTES]].to_numpy()
    diff, baseline = mean_ccc_difference(y, mine, theirs), option == "default"
    return StudyRow(option, corpus,
                    {a: f"{estimates.loc[a, 'ccc']:.3f} [{estimates.loc[a, 'low']:.3f}, {estimates.loc[a, 'high']:.3f}]"
                     for a in ATTRIBUTES},
                    float(np.mean([estimates.loc[a, "ccc"] for a in ATTRIBUTES])),
                    "—" if baseline else diff.text(), not baseline and diff.low > 0,
                    not baseline and diff.low > -NONINFERIORITY_MARGIN, seconds, seed,
                    math.nan if baseline else diff.value)


def format_rows(rows: list[StudyRow], epochs: int | None) -> str:
    span = f"{epochs} epochs" if epochs else "the preset's epochs"
    seeded = any(r.seed is not None for r in rows)
    lines = [f"| option | corpus |{' seed |' if seeded else ''} arousal | valence | dominance | mean | "
             f"mean − default [95 % CI] | training ({span}) |", "|---" * (8 + seeded) + "|"]
    lines += [f"| {r.option} | {r.corpus} |{f' {r.seed} |' if seeded else ''} {r.ccc['arousal']} | {r.ccc['valence']} | "
              f"{r.ccc['dominance']} | {r.mean_ccc:.3f} | {r.difference}{_verdict(r.beats_default, r.no_worse)} | {r.train_s:.0f} s |" for r in rows]
    if seeded:
        lines += ["", *(f"- {s.text()}" for s in seed_summary(rows))]
    return "\n".join(lines)


def _verdict(beats_default: bool, no_worse: bool) -> str:
    return " **beats default**" if beats_default else " **no worse**" if no_worse else ""


def main(argv: list[str] | None = None) -> int:
    keep_freed_memory()  # once per process: the training loop's allocation churn (~1.5x faster CPU steps)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recipe_study", description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the corpora, features and runs (kept)")
    parser.add_argument("--epochs", type=int, help="epochs of every run (default: 5; rounds 3 and 4: the demo's 10)")
    parser.add_argument("--round", type=int, choices=sorted(ROUNDS), default=max(ROUNDS),
                        help="which round's options (default: the latest, against today's `default`)")
    parser.add_argument("--out", type=Path, help="JSON file for the rows")
    args = parser.parse_args(argv)
    epochs = args.epochs or (None if ROUND_PRESETS[args.round] is demo else 5)
    rows = run_study(args.work, epochs, args.round)
    print(format_rows(rows, epochs))
    if args.out:
        args.out.write_text(json.dumps([r.__dict__ for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
