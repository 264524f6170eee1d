"""Runs set side by side over one corpus: how much each one's clusters depend on emotion (beside shuffled clusters),
the paired difference between runs with a bootstrap interval over utterances, and each run's test CCC. Pure: no disk.

"Clusters depend on emotion" means little alone: an acoustic baseline (eGeMAPS functionals, log-mel statistics) or an
imported embedding clustered the same way may depend as much. So every run is judged on the same utterances (matched
by audio path) against the same labels (the first run's corpus), and each paired difference draws the *same*
resamples of utterances for both runs, so what they share (which utterances are easy to group) cancels out.

The differences' intervals are basic (reverse-percentile) bootstrap intervals, not plain percentiles: ε² and MI are
biased upwards by about (K - 1) / n, and a resample with its repeated utterances adds as much again, so the draws of
two runs with different K sit off-centre. Reflecting the draws about the observed difference cancels that shift: two
random clusterings with K = 3 and K = 64 (n = 1 000) get an interval around 0, where percentiles excluded 0 in every
one of 40 simulated samples.
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.config import AVD
from core.errors import UserError
from core.evaluate.evaluation import estimate_text, split_estimates
from core.evaluate.uncertainty import LEVEL, RESAMPLES
from core.explore.analysis import contingency, dependence
from core.explore.exploration import Exploration
from core.store.evaluation_store import ESTIMATE_COLUMNS

N_BINS = 5  # quantile bins of an attribute for its mutual information (`core.explore.analysis.binned_mutual_information`)
_CELLS = 2_500_000  # resampled utterances per block: (block, N) float64 arrays of ~20 MB each


class ComparisonError(UserError, ValueError):
    """Runs that cannot be compared: fewer than two, or no utterance in common."""


@dataclass(frozen=True)
class ClusterComparison:
    """The dependence of several clusterings of the same utterances on the same labels."""
    # index (run, attribute): n, kruskal_h, p_value, epsilon2, mutual_info, the shuffled_* mean and std of H, ε² and MI
    # (`core.explore.analysis.dependence`); and a row (run, "emotion") with n, cramers_v, shuffled_cramers_v_{mean,std}
    dependence: pd.DataFrame
    # index (run, other, attribute, statistic ∈ {epsilon2, mutual_info}): value_run, value_other, difference
    # (run - other), low, high (its paired basic-bootstrap 95 % interval), n
    differences: pd.DataFrame


@dataclass(frozen=True)
class RepresentationComparison:
    """`compare_representations`: the runs' dependence statistics, their paired differences and test CCC."""
    runs: tuple[str, ...]  # in the order given; differences are earlier minus later
    corpus_sizes: dict[str, int]  # run -> utterances of its exploration
    n_common: int  # utterances every run holds (matched by audio path): the statistics' sample
    dependence: pd.DataFrame  # `ClusterComparison.dependence`
    differences: pd.DataFrame  # `ClusterComparison.differences`
    test_ccc: pd.DataFrame  # index (run, split, attribute); ESTIMATE_COLUMNS (`split_estimates`); "none" split = absent
    n_shuffles: int
    resamples: int


def compare_representations(explorations: dict[str, Exploration], test_predictions: dict[str, pd.DataFrame | None], *,
                            n_shuffles: int = 20, resamples: int = RESAMPLES, seed: int = 0) -> RepresentationComparison:
    """Two or more runs' latent clusters over one corpus, set beside shuffled clusters and each other.

    Args:
        explorations: run id -> its exploration (`core.explore.exploration.explore`) over the same corpus, or over
            copies of it (a corrected corpus written elsewhere): utterances are matched by their audio `path`.
            The labels and emotions judged are the first exploration's.
        test_predictions: run id -> its per-utterance test predictions (`Run.test_predictions`), or None where
            it has none (an imported model): its test CCC rows then say so.
        n_shuffles: shuffled-cluster baselines per statistic; resamples: bootstrap resamples; seed: of both.

    Returns:
        the comparison over the utterances every run holds; differences for every pair, earlier minus later.

    Raises:
        ComparisonError: fewer than two runs, no utterance held by every run, or `n_shuffles` or `resamples` below 1.
    """
    if len(explorations) < 2:
        raise ComparisonError(f"expected two or more runs to compare, got {len(explorations)}: {list(explorations)}")
    paths = {run: _paths(e.corpus) for run, e in explorations.items()}
    common = pd.Index(next(iter(paths.values()))).unique()
    for found in paths.values():
        common = common[common.isin(found)]
    sizes = {run: len(set(found)) for run, found in paths.items()}
    if common.empty:
        raise ComparisonError("the runs share no utterance (matched by audio path): " + ", ".join(
            f"{run} ({n} utterances)" for run, n in sizes.items()))
    reference = next(iter(explorations.values())).corpus
    rows = _positions(paths[next(iter(paths))], common)
    labels = reference.iloc[rows][[a for a in AVD if a in reference]].reset_index(drop=True)
    emotions = reference["emotion"].iloc[rows].reset_index(drop=True) if "emotion" in reference else None
    clusters = {run: np.asarray(e.latent.cluster)[_positions(paths[run], common)]
                for run, e in explorations.items()}
    found = compare_clusters(clusters, labels, emotions, n_shuffles=n_shuffles, resamples=resamples, seed=seed)
    return RepresentationComparison(tuple(explorations), sizes, len(common), found.dependence, found.differences,
                                    _test_ccc(list(explorations), test_predictions, resamples, seed), n_shuffles, resamples)


def compare_clusters(clusters: dict[str, np.ndarray], labels: pd.DataFrame, emotions: pd.Series | None = None, *,
                     n_shuffles: int = 20, resamples: int = RESAMPLES, seed: int = 0) -> ClusterComparison:
    """The statistical heart of `compare_representations`, on plain arrays of one set of utterances.

    Args:
        clusters: run -> (N,) cluster of each utterance (any integer ids; runs may have different numbers).
        labels: (N, A) attributes, NaN = unlabelled (each attribute is judged on its labelled rows).
        emotions: (N,) categorical emotion (NaN = none), or None: Cramér's V rows where there are any.
        n_shuffles: permutations of the cluster labels for each baseline; resamples: bootstrap resamples of
            utterances (with replacement, the same for every run); seed: of both.

    Returns:
        the dependence table and every pair's paired differences (`ClusterComparison`).

    Raises:
        ComparisonError: `n_shuffles` or `resamples` below 1.
    """
    if n_shuffles < 1 or resamples < 1:
        raise ComparisonError(f"expected n_shuffles >= 1 and resamples >= 1, got {n_shuffles} and {resamples}")
    codes = {run: pd.factorize(np.asarray(c))[0] for run, c in clusters.items()}
    tables, draws = {}, {}
    for run, c in codes.items():
        tables[run] = dependence(c, labels, n_shuffles=n_shuffles, n_bins=N_BINS, seed=seed)
    for attribute in labels.columns:
        keep = labels[attribute].notna().to_numpy()
        if keep.sum() < 3:  # as `dependence`: no test of fewer
            continue
        values = labels[attribute].to_numpy(np.float64)[keep]
        draws[attribute] = _bootstrap({run: c[keep] for run, c in codes.items()}, values, resamples, seed)
    if emotions is not None and emotions.notna().sum() >= 2:
        for run, c in codes.items():
            row = _cramers_row(c, emotions, n_shuffles, seed)
            tables[run] = pd.concat([tables[run], row]) if len(tables[run]) else row
    table = pd.concat(tables, names=["run", "attribute"])
    if "n" in table:
        table["n"] = table["n"].astype("int64")
    return ClusterComparison(table, _differences(table, draws, list(clusters)))


def summary_table(comparison: RepresentationComparison, digits: int = 3) -> pd.DataFrame:
    """The comparison as people read it: per attribute, each run's ε² and MI beside the shuffled clusters' (mean ±
    std) and its test CCC with its interval; then each pair's difference with its paired 95 % interval.

    Returns:
        index (attribute, row: a run, or "<run> − <other>"); text columns n, "ε²", "ε² shuffled", "MI (nats)",
        "MI shuffled", "test CCC [95 % CI]" (a difference's row: its ε² and MI columns hold "difference [low, high]").
    """
    table, rows = comparison.dependence, {}
    ccc = _ccc_text(comparison.test_ccc)
    for attribute in [a for a in AVD if a in table.index.get_level_values("attribute")]:
        for run in comparison.runs:
            if (run, attribute) not in table.index:
                continue
            r = table.loc[(run, attribute)]
            rows[(attribute, run)] = {
                "n": int(r["n"]), "ε²": f"{r.epsilon2:.{digits}f}",
                "ε² shuffled": f"{r.shuffled_epsilon2_mean:.{digits}f} ± {r.shuffled_epsilon2_std:.{digits}f}",
                "MI (nats)": f"{r.mutual_info:.{digits}f}",
                "MI shuffled": f"{r.shuffled_mi_mean:.{digits}f} ± {r.shuffled_mi_std:.{digits}f}",
                "test CCC [95 % CI]": ccc.get((run, attribute), "—")}
        differences = comparison.differences
        pairs = differences.xs(attribute, level="attribute") if attribute in differences.index.get_level_values(
            "attribute") else differences.iloc[:0]  # too few labels for this attribute: no pair either
        for (run, other), pair in pairs.groupby(level=["run", "other"], sort=False):
            eps, mi = (pair.loc[(run, other, s)] for s in ("epsilon2", "mutual_info"))
            rows[(attribute, f"{run} − {other}")] = {
                "n": int(eps.n), "ε²": _interval(eps.difference, eps.low, eps.high, digits), "ε² shuffled": "",
                "MI (nats)": _interval(mi.difference, mi.low, mi.high, digits), "MI shuffled": "",
                "test CCC [95 % CI]": ""}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index = pd.MultiIndex.from_tuples(list(rows), names=["attribute", "row"])
    return out


def categorical_table(comparison: RepresentationComparison, digits: int = 3) -> pd.DataFrame:
    """Cramér's V of each run's clusters with the emotion categories beside shuffled clusters' (empty without
    categories). Returns: index run; columns n, "Cramér's V", "Cramér's V shuffled"."""
    table = comparison.dependence
    if "cramers_v" not in table:
        return pd.DataFrame(columns=["n", "Cramér's V", "Cramér's V shuffled"])
    found = table.xs("emotion", level="attribute")
    return pd.DataFrame({"n": found["n"].astype(int), "Cramér's V": [f"{v:.{digits}f}" for v in found["cramers_v"]],
                         "Cramér's V shuffled": [f"{m:.{digits}f} ± {s:.{digits}f}" for m, s in
                                                 zip(found["shuffled_cramers_v_mean"], found["shuffled_cramers_v_std"])]},
                        index=found.index)


# --- the bootstrap --------------------------------------------------------------------------------------

def _bootstrap(codes: dict[str, np.ndarray], values: np.ndarray, resamples: int, seed: int
               ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Run -> (resamples,) ε² and (resamples,) binned MI of its clusters, every run on the same resamples.

    Ranks depend on the values alone, so each resample ranks once for all runs: the count of each distinct value
    gives its mid-rank (ties share the average rank) and the tie correction; per-cluster rank sums are then one
    `np.bincount` per run. The MI's quantile bins are the observed sample's, fixed across resamples.
    """
    distinct, value_codes = np.unique(values, return_inverse=True)
    edges = np.unique(np.quantile(values, np.linspace(0, 1, N_BINS + 1)[1:-1]))
    bins, n_bins = np.digitize(values, edges), len(edges) + 1
    n, n_distinct = len(values), len(distinct)
    sizes = {run: int(c.max()) + 1 for run, c in codes.items()}
    out = {run: (np.empty(resamples), np.empty(resamples)) for run in codes}
    rng, block = np.random.default_rng(seed), max(1, min(250, _CELLS // n))
    for start in range(0, resamples, block):
        b = min(block, resamples - start)
        index = rng.integers(0, n, size=(b, n))  # (b, N) utterances drawn with replacement
        row = np.arange(b)[:, None]
        counts = np.bincount((row * n_distinct + value_codes[index]).ravel(), minlength=b * n_distinct)
        counts = counts.reshape(b, n_distinct).astype(np.float64)  # (b, U) draws of each distinct value
        mid_rank = np.cumsum(counts, axis=1) - (counts - 1) / 2  # (b, U)
        ranks = np.take_along_axis(mid_rank, value_codes[index], axis=1)  # (b, N)
        ties = 1 - (counts ** 3 - counts).sum(1) / (n ** 3 - n)  # (b,) Kruskal-Wallis tie correction
        drawn_bins = bins[index]
        for run, c in codes.items():
            k = sizes[run]
            cells = row * k + c[index]  # (b, N) resample x cluster
            members = np.bincount(cells.ravel(), minlength=b * k).reshape(b, k)
            sums = np.bincount(cells.ravel(), weights=ranks.ravel(), minlength=b * k).reshape(b, k)
            h = 12 / (n * (n + 1)) * (sums ** 2 / np.maximum(members, 1)).sum(1) - 3 * (n + 1)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[run][0][start:start + b] = np.where(ties > 0, h / ties / (n - 1), 0.0)  # all values equal: none
            joint = np.bincount((cells * n_bins + drawn_bins).ravel(), minlength=b * k * n_bins)
            out[run][1][start:start + b] = _mutual_information(joint.reshape(b, k, n_bins) / n)
    return out


def _mutual_information(joint: np.ndarray) -> np.ndarray:
    """(B,) mutual information (nats) of (B, K, bins) joint probabilities."""
    outer = joint.sum(2, keepdims=True) * joint.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log(joint / outer), 0.0)
    return np.maximum(terms.sum((1, 2)), 0.0)


def _basic_interval(observed: float, draws: np.ndarray) -> tuple[float, float]:
    """The basic bootstrap interval [2 x - q_high, 2 x - q_low] of an observed value and its draws (the module says
    why not the percentiles q themselves)."""
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(2 * observed - high), float(2 * observed - low)


def _differences(table: pd.DataFrame, draws: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]],
                 runs: list[str]) -> pd.DataFrame:
    """Every pair (earlier, later) and attribute: the difference of ε² and of MI, and its paired interval."""
    rows = {}
    for run, other in itertools.combinations(runs, 2):
        for attribute, by_run in draws.items():
            for j, statistic in enumerate(("epsilon2", "mutual_info")):
                a, b = table.loc[(run, attribute), statistic], table.loc[(other, attribute), statistic]
                low, high = _basic_interval(a - b, by_run[run][j] - by_run[other][j])
                rows[(run, other, attribute, statistic)] = {"value_run": a, "value_other": b, "difference": a - b,
                                                            "low": low, "high": high,
                                                            "n": int(table.loc[(run, attribute), "n"])}
    columns = ["value_run", "value_other", "difference", "low", "high", "n"]
    out = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    out.index = pd.MultiIndex.from_tuples(list(rows), names=["run", "other", "attribute", "statistic"])
    return out.astype({"n": "int64"})


def _cramers_row(codes: np.ndarray, emotions: pd.Series, n_shuffles: int, seed: int) -> pd.DataFrame:
    """One row "emotion": Cramér's V of the clusters with the categories, and its shuffled-cluster baseline."""
    rng = np.random.default_rng(seed)
    observed = contingency(codes, emotions)[1]["cramers_v"]
    shuffled = np.array([contingency(rng.permutation(codes), emotions)[1]["cramers_v"] for _ in range(n_shuffles)])
    return pd.DataFrame({"n": [int(emotions.notna().sum())], "cramers_v": [observed],
                         "shuffled_cramers_v_mean": [shuffled.mean()], "shuffled_cramers_v_std": [shuffled.std()]},
                        index=pd.Index(["emotion"], name="attribute"))


# --- matching, test CCC and text ----------------------------------------------------------------------

def _paths(corpus: pd.DataFrame) -> list[str]:
    """Each utterance's audio path, normalised, as the key that matches utterances across corpora."""
    return [os.path.normpath(os.path.abspath(str(p))) for p in corpus["path"]]


def _positions(paths: list[str], common: pd.Index) -> np.ndarray:
    """(len(common),) the row of each common path in `paths` (a file listed twice: its first row)."""
    index = pd.Index(paths)
    first = ~index.duplicated()
    return np.flatnonzero(first)[index[first].get_indexer(common)]


def _test_ccc(runs: list[str], predictions: dict[str, pd.DataFrame | None], resamples: int, seed: int) -> pd.DataFrame:
    parts = {}
    for run in runs:
        table = predictions.get(run)
        found = split_estimates(table, AVD, resamples=resamples, seed=seed) if table is not None else None
        if found is None or found.empty:  # one row per attribute that says why, so every run has its rows
            index = pd.MultiIndex.from_product([["none"], list(AVD)], names=["split", "attribute"])
            found = pd.DataFrame({"ccc": np.nan, "low": np.nan, "high": np.nan, "n": 0,
                                  "reason": "no test predictions"}, index=index).reindex(columns=ESTIMATE_COLUMNS)
        parts[run] = found
    return pd.concat(parts, names=["run"])


def _ccc_text(test_ccc: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(run, attribute) -> "0.612 [0.571, 0.650]", prefixed by the split where a run has several."""
    text = estimate_text(test_ccc).iloc[:, 0]
    out = {}
    for (run, attribute), part in text.groupby(level=["run", "attribute"], sort=False):
        splits = part.index.get_level_values("split")
        out[(run, attribute)] = part.iloc[0] if len(part) == 1 else "; ".join(
            f"{s}: {t}" for s, t in zip(splits, part))
    return out


def _interval(value: float, low: float, high: float, digits: int) -> str:
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
