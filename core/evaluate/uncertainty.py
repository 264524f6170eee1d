"""How certain a test CCC is: percentile bootstrap intervals, paired differences and per-speaker spread.

Every interval resamples utterances (or, with `groups`, whole speakers) with replacement, 1 000 times by
default, from an explicit seed, and takes the percentiles of the resampled CCCs. The resamples are computed
a block at a time as arrays, never in a Python loop: utterance draws gather (block, N) labels and
predictions and reduce them row-wise; speaker draws count how often each speaker was drawn, and one matrix
product of those counts with [1, y, p, y^2, p^2, yp] gives every resample's weighted moments (SPEC 2.5's
population moments). 10 000 utterances x 1 000 resamples take ~0.1-0.3 s on 2 cores
(`python -m benchmarks`). A paired difference applies the *same* draws to both models' predictions, so
what the two share (which utterances are hard) cancels out of its interval.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd

from core.data.manifest import known_speakers
from core.model.metrics import ccc

RESAMPLES = 1000
LEVEL = 0.95
MIN_SPEAKER_UTTERANCES = 10  # speakers with fewer test utterances get no CCC of their own
# A speaker-resampled interval from a handful of speakers is too narrow (the few draws cannot show how much
# speakers differ), so it is given from this many known speakers on.
MIN_RESAMPLED_SPEAKERS = 10
_BLOCK = 250  # resamples per count matrix: (250, N) float64 is 20 MB at N = 10 000


@dataclass(frozen=True)
class CccEstimate:
    """A CCC (or a difference of two) with its bootstrap interval; undefined ones say why."""
    value: float  # NaN exactly when `reason` is set
    low: float
    high: float
    n: int  # labelled utterances it was computed on
    reason: str | None = None  # why the CCC is undefined (too few utterances, both sides constant, ...)
    resampled: str = "utterances"  # what the bootstrap drew: "utterances" or "speakers"

    @property
    def defined(self) -> bool:
        return self.reason is None

    def text(self, digits: int = 3) -> str:
        """"0.612 [0.571, 0.650]", or "undefined: <reason>"."""
        if not self.defined:
            return f"undefined: {self.reason}"
        if math.isnan(self.low):
            return f"{self.value:.{digits}f} [interval undefined]"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def ccc_estimate(y_true: np.ndarray, y_pred: np.ndarray, *, groups: np.ndarray | None = None,
                 resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> CccEstimate:
    """The CCC of one attribute with its percentile bootstrap interval.

    Args:
        y_true, y_pred: (N,) labels (NaN = unlabelled: left out) and predictions.
        groups: (N,) speaker of each utterance (None/NaN = unknown: a group of its own) to resample whole
            speakers (a speaker-clustered bootstrap) instead of utterances.
        resamples: bootstrap resamples; seed: their generator's seed; level: the interval's coverage.
    """
    return _estimate(np.asarray(y_true, np.float64), [np.asarray(y_pred, np.float64)], groups, resamples, seed, level)


def ccc_difference(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, *, groups: np.ndarray | None = None,
                   resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> CccEstimate:
    """CCC(a) - CCC(b) of two models' predictions of the same utterances, with a paired bootstrap interval
    (each resample draws the same utterances for both). An interval excluding 0 means a difference."""
    return _estimate(np.asarray(y_true, np.float64), [np.asarray(pred_a, np.float64), np.asarray(pred_b, np.float64)],
                     groups, resamples, seed, level)


def mean_ccc_difference(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, *, resamples: int = RESAMPLES,
                        seed: int = 0, level: float = LEVEL) -> CccEstimate:
    """The mean over attributes of CCC(a) - CCC(b), with a paired bootstrap interval: every resample draws
    the same utterances for every attribute and both models (how a recipe study compares two recipes).

    Args:
        y_true, pred_a, pred_b: (N, A) labels and two models' predictions; rows missing any label leave.
    """
    y_true, pred_a, pred_b = (np.asarray(x, np.float64) for x in (y_true, pred_a, pred_b))
    complete = ~np.isnan(y_true).any(axis=1)
    y_true, pred_a, pred_b = y_true[complete], pred_a[complete], pred_b[complete]
    for j in range(y_true.shape[1]):
        for p in (pred_a[:, j], pred_b[:, j]):
            if (reason := undefined_reason(y_true[:, j], p)) is not None:
                return CccEstimate(math.nan, math.nan, math.nan, len(y_true), reason)
    # the same seed and the same n give every attribute the same index draws: one set of resamples
    parts = [_draws(y_true[:, j], [pred_a[:, j], pred_b[:, j]], None, resamples, seed) for j in range(y_true.shape[1])]
    return _interval(float(np.mean([v for v, _ in parts])), np.mean([d for _, d in parts], axis=0), len(y_true),
                     "utterances", level)


def undefined_reason(y_true: np.ndarray, y_pred: np.ndarray) -> str | None:
    """Why the CCC of these labelled (N,) pairs is undefined, or None when it is defined. One side constant
    is defined (CCC 0, SPEC 2.5's formula); both constant is not (0 / 0 where they agree, and no agreement
    to measure where they do not)."""
    n = len(y_true)
    if n == 0:
        return "no labelled utterances"
    if n < 2:
        return "fewer than 2 labelled utterances (1)"
    if np.ptp(y_true) == 0 and np.ptp(y_pred) == 0:
        return "labels and predictions are both constant"
    return None


def estimate_table(table: pd.DataFrame, attributes: list[str] | tuple[str, ...], *, speakers: bool = True,
                   resamples: int = RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """CCC with intervals per attribute of a predictions table.

    Args:
        table: one row per utterance: `<attribute>` (label, NaN = missing) and `<attribute>_predicted`
            columns, and optionally `speaker` (`core.data.manifest.known_speakers` decides which are speakers).
        speakers: also count the known speakers, and give the speaker-clustered interval where there are
            at least `MIN_RESAMPLED_SPEAKERS`.

    Returns:
        index attribute; columns ccc, low, high, n, reason, and speaker_low, speaker_high, speakers where
        asked (NaN where the speakers are unknown).
    """
    groups = speaker_groups(table) if speakers else None
    rows = {}
    for attribute in attributes:
        y, p = table[attribute].to_numpy(np.float64), table[f"{attribute}_predicted"].to_numpy(np.float64)
        est = ccc_estimate(y, p, resamples=resamples, seed=seed)
        row = {"ccc": est.value, "low": est.low, "high": est.high, "n": est.n, "reason": est.reason}
        if speakers:
            by_speaker = ccc_estimate(y, p, groups=groups, resamples=resamples, seed=seed) if groups is not None else None
            row |= {"speaker_low": by_speaker.low if by_speaker else np.nan,
                    "speaker_high": by_speaker.high if by_speaker else np.nan,
                    "speakers": _n_speakers(table["speaker"].to_numpy(object), y) if "speaker" in table else 0}
        rows[attribute] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("attribute")


def speaker_groups(table: pd.DataFrame) -> np.ndarray | None:
    """(N,) the `speaker` column of a predictions table where at least `MIN_RESAMPLED_SPEAKERS` speakers are
    known (the `groups` of a speaker-clustered bootstrap), else None."""
    if "speaker" not in table:
        return None
    speakers = table["speaker"].to_numpy(object)
    return speakers if known_speakers(pd.Series(speakers)).nunique() >= MIN_RESAMPLED_SPEAKERS else None


@dataclass(frozen=True)
class SpeakerSpread:
    """How the CCC of one attribute varies between speakers (those with enough test utterances)."""
    per_speaker: pd.DataFrame  # index speaker; columns n, ccc (NaN where undefined), ascending by ccc
    median: float
    q1: float  # the interquartile range is [q1, q3]
    q3: float
    worst: list[str]  # the lowest-CCC speakers, worst first

    @property
    def n_speakers(self) -> int:
        return len(self.per_speaker)


def speaker_spread(y_true: np.ndarray, y_pred: np.ndarray, speakers: pd.Series | np.ndarray,
                   min_utterances: int = MIN_SPEAKER_UTTERANCES, n_worst: int = 3) -> SpeakerSpread:
    """Each known speaker's own CCC (speakers with >= `min_utterances` labelled utterances), and their spread.

    Args:
        y_true, y_pred: (N,) labels (NaN = unlabelled: left out) and predictions.
        speakers: (N,) speaker ids; unknown ones (`core.data.manifest.known_speakers`) are left out.
    """
    frame = pd.DataFrame({"y": np.asarray(y_true, np.float64), "p": np.asarray(y_pred, np.float64),
                          "speaker": known_speakers(pd.Series(np.asarray(speakers, object)))}).dropna()
    rows = {speaker: (len(g), ccc(g["y"].to_numpy(), g["p"].to_numpy()))
            for speaker, g in frame.groupby("speaker", sort=True) if len(g) >= min_utterances}
    per_speaker = pd.DataFrame.from_dict(rows, orient="index", columns=["n", "ccc"]).rename_axis("speaker")
    per_speaker = per_speaker.sort_values("ccc", kind="stable")
    values = per_speaker["ccc"].dropna().to_numpy()
    q1, median, q3 = np.percentile(values, [25, 50, 75]) if len(values) else (np.nan,) * 3
    return SpeakerSpread(per_speaker, float(median), float(q1), float(q3),
                         [str(s) for s in per_speaker["ccc"].dropna().index[:n_worst]])


# --- the bootstrap -----------------------------------------------------------------------------------

def _estimate(y: np.ndarray, predictions: list[np.ndarray], groups, resamples: int, seed: int,
              level: float) -> CccEstimate:
    """One prediction: its CCC; two: CCC(first) - CCC(second). Unlabelled rows leave first."""
    labelled = ~np.isnan(y)
    y, predictions = y[labelled], [p[labelled] for p in predictions]
    groups = None if groups is None else np.asarray(groups, object)[labelled]
    resampled = "speakers" if groups is not None else "utterances"
    for p in predictions:
        if (reason := undefined_reason(y, p)) is not None:
            return CccEstimate(math.nan, math.nan, math.nan, len(y), reason, resampled)
    value, draws = _draws(y, predictions, groups, resamples, seed)
    return _interval(value, draws, len(y), resampled, level)


def _draws(y: np.ndarray, predictions: list[np.ndarray], groups, resamples: int, seed: int
           ) -> tuple[float, np.ndarray]:
    """The CCC (or difference) of labelled rows and its (resamples,) bootstrap draws."""
    value = _combine([ccc(y, p) for p in predictions])
    shift = y.mean()  # CCC is unchanged by one shift of both sides; centring keeps E[x^2] - E[x]^2 accurate
    y, predictions = y - shift, [p - shift for p in predictions]
    blocks = (_utterance_draws(y, predictions, resamples, seed) if groups is None else
              _speaker_draws(y, predictions, _group_codes(groups), resamples, seed))
    return value, np.concatenate([_combine(list(block)) for block in blocks])


def _interval(value: float, draws: np.ndarray, n: int, resampled: str, level: float) -> CccEstimate:
    if np.isnan(draws).mean() > 1 - level:  # too many degenerate resamples (e.g. one speaker drawn)
        return CccEstimate(value, math.nan, math.nan, n, None, resampled)
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(draws, [tail, 100 - tail])
    return CccEstimate(value, float(low), float(high), n, None, resampled)


def _combine(values: list) -> np.ndarray | float:
    return values[0] if len(values) == 1 else values[0] - values[1]


def _utterance_draws(y: np.ndarray, predictions: list[np.ndarray], resamples: int, seed: int
                     ) -> Iterator[list[np.ndarray]]:
    """Per block of resamples: (block,) CCC of each prediction over the same n draws with replacement."""
    rng, n = np.random.default_rng(seed), len(y)
    for start in range(0, resamples, _BLOCK):
        index = rng.integers(0, n, size=(min(_BLOCK, resamples - start), n))
        labels = y[index]
        yield [_row_ccc(labels, p[index]) for p in predictions]


def _speaker_draws(y: np.ndarray, predictions: list[np.ndarray], groups: tuple[np.ndarray, int], resamples: int,
                   seed: int) -> Iterator[list[np.ndarray]]:
    """Per block: (block,) CCC of each prediction when as many speakers as there are are drawn with
    replacement, each bringing all of its utterances (weights = how often its speaker was drawn)."""
    codes, n_groups = groups
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, _BLOCK):
        block = min(_BLOCK, resamples - start)
        drawn = rng.integers(0, n_groups, size=(block, n_groups)) + np.arange(block)[:, None] * n_groups
        counts = np.bincount(drawn.ravel(), minlength=block * n_groups).reshape(block, n_groups)
        weights = counts[:, codes].astype(np.float64)  # (block, N)
        yield [_weighted_ccc(weights @ np.stack([np.ones_like(y), y, p, y * y, p * p, y * p], 1)) for p in predictions]


def _row_ccc(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """(B,) CCC of each row of (B, N) labels and predictions; NaN where 0 / 0."""
    my, mp = y.mean(1), p.mean(1)
    dy, dp = y - my[:, None], p - mp[:, None]
    cov, vy, vp = (np.einsum("ij,ij->i", a, b) / y.shape[1] for a, b in ((dy, dp), (dy, dy), (dp, dp)))
    return _ratio(2 * cov, vy + vp + (my - mp) ** 2)


def _weighted_ccc(sums: np.ndarray) -> np.ndarray:
    """(B,) CCC from (B, 6) weighted sums of [1, y, p, y^2, p^2, yp]; NaN where 0 / 0 or < 2 utterances."""
    total = sums[:, 0]
    my, mp = sums[:, 1] / total, sums[:, 2] / total
    vy, vp = sums[:, 3] / total - my ** 2, sums[:, 4] / total - mp ** 2
    out = _ratio(2 * (sums[:, 5] / total - my * mp), vy + vp + (my - mp) ** 2)
    out[total < 2] = np.nan
    return out


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = numerator / denominator
    out[~(denominator > 1e-12)] = np.nan  # a resample whose labels and predictions are all one value
    return out


def _group_codes(groups: np.ndarray) -> tuple[np.ndarray, int]:
    """(N,) integer speaker codes, unknown speakers numbered one each after the known ones."""
    known = known_speakers(pd.Series(groups))
    codes, uniques = pd.factorize(known)
    unknown = codes < 0
    codes[unknown] = len(uniques) + np.arange(unknown.sum())
    return codes, len(uniques) + int(unknown.sum())


def _n_speakers(groups: np.ndarray, y: np.ndarray) -> int:
    return int(known_speakers(pd.Series(groups[~np.isnan(y)])).nunique())
