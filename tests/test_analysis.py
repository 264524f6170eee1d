"""Dependence statistics on constructed data with a known answer."""
import numpy as np
import pandas as pd
import pytest

from core.explore.analysis import analyze, binned_mutual_information, cluster_summary, contingency, dependence, kruskal_wallis


@pytest.fixture
def dependent_data():
    rng = np.random.default_rng(0)
    clusters = rng.integers(0, 4, 600)
    values = pd.DataFrame({
        "arousal": 2.0 + clusters + rng.normal(0, 0.5, 600),  # depends on the cluster
        "valence": rng.normal(4, 1, 600),  # does not
    })
    return clusters, values


def test_dependence_separates_dependent_from_independent_attributes(dependent_data):
    clusters, values = dependent_data
    table = dependence(clusters, values, n_shuffles=10)
    arousal, valence = table.loc["arousal"], table.loc["valence"]
    assert arousal.p_value < 1e-50 and arousal.epsilon2 > 0.7
    assert arousal.epsilon2 > arousal.shuffled_epsilon2_mean + 10 * arousal.shuffled_epsilon2_std
    assert arousal.mutual_info > 0.5 > arousal.shuffled_mi_mean
    assert valence.p_value > 0.01 and valence.epsilon2 < 0.02
    assert abs(valence.epsilon2 - valence.shuffled_epsilon2_mean) < 4 * valence.shuffled_epsilon2_std + 0.01


def test_shuffled_baseline_is_near_zero_effect(dependent_data):
    clusters, values = dependent_data
    table = dependence(clusters, values, n_shuffles=30)
    assert (table.shuffled_epsilon2_mean < 0.02).all() and (table.shuffled_mi_mean < 0.05).all()


def test_kruskal_wallis_epsilon2_extremes():
    clusters = np.repeat([0, 1], 50)
    h, p, eps = kruskal_wallis(clusters, clusters.astype(float) + np.linspace(0, 0.1, 100))
    assert p < 1e-10 and eps == pytest.approx(0.75, abs=0.01)  # fully separated halves: the maximum for 2 groups
    assert kruskal_wallis(clusters, np.ones(100)) == (0.0, 1.0, 0.0)  # constant values: no evidence


def test_binned_mutual_information_bounds():
    x = np.arange(1000) % 5
    assert binned_mutual_information(x, x.astype(float), n_bins=5) == pytest.approx(np.log(5), rel=1e-6)
    assert binned_mutual_information(np.zeros(1000, int), x.astype(float)) == 0.0


def test_cluster_summary_statistics():
    values = pd.DataFrame({"arousal": [1.0, 2.0, 3.0, 4.0, 10.0, np.nan]})
    table = cluster_summary(np.array([0, 0, 0, 0, 1, 1]), values)
    assert list(table["size"]) == [4, 2] and table["share"].sum() == pytest.approx(1.0)
    assert table.loc[0, "arousal_mean"] == 2.5 and table.loc[0, "arousal_median"] == 2.5
    assert table.loc[0, "arousal_iqr"] == pytest.approx(1.5) and table.loc[1, "arousal_mean"] == 10.0


def test_contingency_cramers_v():
    clusters = np.repeat([0, 1, 2], 100)
    table, stats = contingency(clusters, pd.Series(np.repeat(["angry", "happy", "sad"], 100)))
    assert table.shape == (3, 3) and stats["cramers_v"] == pytest.approx(1.0) and stats["p_value"] < 1e-50
    rng = np.random.default_rng(1)
    _, independent = contingency(clusters, pd.Series(rng.choice(["a", "b"], 300)))
    assert independent["cramers_v"] < 0.2


def test_analyze_reports_labels_and_predictions(dependent_data):
    clusters, values = dependent_data
    labels = values.copy()
    labels.loc[:99, "arousal"] = np.nan  # partly unlabelled
    report = analyze(clusters, labels, values, pd.Series(np.where(clusters > 1, "high", "low")), n_shuffles=5)
    assert set(report.dependence.index.get_level_values("source")) == {"label", "prediction"}
    assert report.dependence.loc[("label", "arousal"), "n"] == 500
    assert report.categorical["cramers_v"] == pytest.approx(1.0)
    only_predictions = analyze(clusters, None, values, None, n_shuffles=5)
    assert set(only_predictions.dependence.index.get_level_values("source")) == {"prediction"}
    assert only_predictions.contingency is None
