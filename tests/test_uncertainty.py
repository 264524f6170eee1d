"""Bootstrap intervals of the CCC (`core.evaluate.uncertainty`): known answers, coverage, pairing, speakers."""
import math

import numpy as np
import pandas as pd
import pytest

from core.evaluate.uncertainty import ccc_difference, ccc_estimate, estimate_table, mean_ccc_difference, speaker_spread
from core.model.metrics import ccc


def _pairs(rng, n, rho=0.6, sd_p=0.8, bias=0.3):
    """n draws of (label, prediction) from a bivariate normal; returns them and the population CCC."""
    cov = [[1.0, rho * sd_p], [rho * sd_p, sd_p ** 2]]
    y, p = rng.multivariate_normal([0.0, bias], cov, size=n).T
    return y, p, 2 * rho * sd_p / (1 + sd_p ** 2 + bias ** 2)


def test_value_is_the_ccc_and_the_interval_contains_it():
    y, p, _ = _pairs(np.random.default_rng(0), 300)
    est = ccc_estimate(y, p)
    assert est.value == pytest.approx(ccc(y, p))
    assert est.low < est.value < est.high and est.n == 300 and est.defined
    assert est == ccc_estimate(y, p)  # seeded: the same interval every time
    assert ccc_estimate(y, p, seed=1).low != est.low


def test_95_percent_interval_covers_the_population_ccc():
    rng = np.random.default_rng(42)
    covered = []
    for _ in range(200):
        y, p, true_ccc = _pairs(rng, 150)
        est = ccc_estimate(y, p, resamples=500, seed=int(rng.integers(1 << 30)))
        covered.append(est.low <= true_ccc <= est.high)
    assert 0.88 <= np.mean(covered) <= 0.99


def test_unlabelled_rows_are_left_out():
    y, p, _ = _pairs(np.random.default_rng(1), 100)
    y_missing = np.concatenate([y, [np.nan] * 20])
    est = ccc_estimate(y_missing, np.concatenate([p, np.ones(20) * 99]))
    assert est.n == 100 and est.value == pytest.approx(ccc(y, p))


@pytest.mark.parametrize("y, p, reason", [
    ([], [], "no labelled utterances"),
    ([np.nan, np.nan], [1.0, 2.0], "no labelled utterances"),
    ([3.0], [2.0], "fewer than 2"),
    ([2.0, 2.0, 2.0], [2.0, 2.0, 2.0], "both constant"),
    ([2.0, 2.0, 2.0], [4.0, 4.0, 4.0], "both constant"),
])
def test_undefined_ccc_says_why(y, p, reason):
    est = ccc_estimate(np.array(y, float), np.array(p, float))
    assert not est.defined and reason in est.reason
    assert math.isnan(est.value) and math.isnan(est.low) and math.isnan(est.high)
    assert est.text().startswith("undefined: ")


def test_one_constant_side_gives_zero():
    est = ccc_estimate(np.array([1.0, 2.0, 3.0, 4.0]), np.full(4, 2.5))
    assert est.defined and est.value == 0.0


def test_paired_difference_of_a_model_with_itself_is_exactly_zero():
    y, p, _ = _pairs(np.random.default_rng(2), 200)
    diff = ccc_difference(y, p, p)
    assert (diff.value, diff.low, diff.high) == (0.0, 0.0, 0.0)


def test_paired_difference_finds_a_better_model_that_unpaired_intervals_miss():
    rng = np.random.default_rng(3)
    y = rng.normal(size=400)
    shared = rng.normal(size=400)  # errors both models make on the same utterances
    a, b = y + shared + 0.3 * rng.normal(size=400), y + shared + 0.6 * rng.normal(size=400)
    diff = ccc_difference(y, a, b)
    assert diff.value == pytest.approx(ccc(y, a) - ccc(y, b))
    assert 0 < diff.low < diff.high
    ea, eb = ccc_estimate(y, a), ccc_estimate(y, b)
    assert ea.low < eb.high  # the separate intervals overlap; the paired one still excludes zero


def test_speaker_clustered_interval_is_wider_when_speakers_differ():
    rng = np.random.default_rng(4)
    speakers = np.repeat([f"s{i}" for i in range(20)], 30)
    offset = dict(zip(np.unique(speakers), rng.normal(0, 0.8, 20)))  # each speaker's own bias
    y = rng.normal(size=600)
    p = y + np.array([offset[s] for s in speakers]) + 0.3 * rng.normal(size=600)
    by_utterance, by_speaker = ccc_estimate(y, p), ccc_estimate(y, p, groups=speakers)
    assert by_speaker.resampled == "speakers" and by_speaker.value == by_utterance.value
    assert by_speaker.high - by_speaker.low > 1.5 * (by_utterance.high - by_utterance.low)


def test_unknown_speakers_are_their_own_groups():
    rng = np.random.default_rng(5)
    y, p, _ = _pairs(rng, 100)
    unknown = np.array([None, "", "Unknown"] * 33 + [None], object)
    # every utterance its own group: the same draws as the utterance bootstrap
    assert ccc_estimate(y, p, groups=unknown).low == pytest.approx(ccc_estimate(y, p).low)


def test_speaker_spread_known_answer():
    rng = np.random.default_rng(6)
    y, p, speakers = [], [], []
    for name, noise in [("good", 0.05), ("mid", 0.5), ("bad", 2.0), ("few", 0.0)]:
        n = 3 if name == "few" else 20
        labels = rng.normal(size=n)
        y += list(labels)
        p += list(labels + noise * rng.normal(size=n))
        speakers += [name] * n
    y += [0.1] * 30
    p += [0.2] * 30
    speakers += ["Unknown"] * 30
    spread = speaker_spread(np.array(y), np.array(p), np.array(speakers, object))
    assert list(spread.per_speaker.index) == ["bad", "mid", "good"]  # "few" has < 10, "Unknown" is no speaker
    assert spread.worst == ["bad", "mid", "good"] and spread.n_speakers == 3
    assert spread.median == pytest.approx(spread.per_speaker.loc["mid", "ccc"])
    assert spread.q1 < spread.median < spread.q3


def test_estimate_table_columns_and_speakers():
    rng = np.random.default_rng(7)
    y, p, _ = _pairs(rng, 200)
    table = pd.DataFrame({"arousal": y, "arousal_predicted": p, "valence": np.nan, "valence_predicted": p,
                          "speaker": np.repeat([f"s{i}" for i in range(10)], 20)})
    out = estimate_table(table, ["arousal", "valence"])
    assert out.loc["arousal", "ccc"] == pytest.approx(ccc(y, p)) and out.loc["arousal", "speakers"] == 10
    assert out.loc["arousal", "speaker_low"] < out.loc["arousal", "ccc"] < out.loc["arousal", "speaker_high"]
    assert out.loc["valence", "reason"] == "no labelled utterances" and out.loc["valence", "n"] == 0


def test_mean_difference_over_attributes_is_the_mean_of_the_paired_ones():
    rng = np.random.default_rng(8)
    y = rng.normal(size=(300, 3))
    a, b = y + 0.5 * rng.normal(size=(300, 3)), y + 0.8 * rng.normal(size=(300, 3))
    mean = mean_ccc_difference(y, a, b)
    parts = [ccc_difference(y[:, j], a[:, j], b[:, j]) for j in range(3)]
    assert mean.value == pytest.approx(np.mean([p.value for p in parts]))
    assert 0 < mean.low < mean.value < mean.high
    assert mean.high - mean.low < max(p.high - p.low for p in parts)  # averaging narrows the interval
    y[0, 1] = np.nan
    assert mean_ccc_difference(y, a, b).n == 299
