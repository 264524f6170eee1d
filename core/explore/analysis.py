"""How much the latent clusters depend on emotion (SPEC 7): per-cluster distributions, dependence
tests with a shuffled-cluster baseline, and the categorical contingency. Pure statistics, no disk.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import mutual_info_score


@dataclass(frozen=True)
class DependenceReport:
    per_cluster: pd.DataFrame  # index (source, cluster): size, share, <attribute>_{mean,std,median,iqr}
    dependence: pd.DataFrame  # index (source, attribute): kruskal_h, p_value, epsilon2, mutual_info + shuffled_*
    contingency: pd.DataFrame | None  # cluster x emotion counts, when categorical emotions exist
    categorical: dict[str, float] | None  # chi2, p_value, dof, cramers_v


def cluster_summary(clusters: np.ndarray, values: pd.DataFrame) -> pd.DataFrame:
    """Size, share and mean/std/median/IQR of each attribute per cluster (NaN values ignored)."""
    frame = values.assign(cluster=np.asarray(clusters))
    grouped = frame.groupby("cluster")
    out = pd.DataFrame({"size": grouped.size()})
    out["share"] = out["size"] / out["size"].sum()
    for attribute in values.columns:
        g = grouped[attribute]
        out[f"{attribute}_mean"] = g.mean()
        out[f"{attribute}_std"] = g.std(ddof=0)
        out[f"{attribute}_median"] = g.median()
        out[f"{attribute}_iqr"] = g.quantile(0.75) - g.quantile(0.25)
    return out


def kruskal_wallis(clusters: np.ndarray, values: np.ndarray) -> tuple[float, float, float]:
    """Kruskal-Wallis H, its p-value, and the effect size epsilon^2 = H / (n - 1) (0 none, 1 total)."""
    groups = [values[clusters == k] for k in np.unique(clusters)]
    groups = [g for g in groups if len(g)]
    if len(groups) < 2 or np.ptp(values) == 0:
        return 0.0, 1.0, 0.0
    h, p = stats.kruskal(*groups)
    return float(h), float(p), float(h / (len(values) - 1))


def binned_mutual_information(clusters: np.ndarray, values: np.ndarray, n_bins: int = 5) -> float:
    """Mutual information (nats) between the cluster and the attribute cut into quantile bins."""
    edges = np.unique(np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1]))
    return float(mutual_info_score(clusters, np.digitize(values, edges)))


def dependence(clusters: np.ndarray, values: pd.DataFrame, *, n_shuffles: int = 20, n_bins: int = 5,
               seed: int = 0) -> pd.DataFrame:
    """Per attribute: Kruskal-Wallis H, p, epsilon^2 and binned MI, and the same for shuffled clusters.

    The shuffled baseline permutes the cluster labels `n_shuffles` times (keeping cluster sizes):
    its mean and std say what "no dependence" looks like at this sample size.
    """
    rng = np.random.default_rng(seed)
    clusters = np.asarray(clusters)
    rows = {}
    for attribute in values.columns:
        keep = values[attribute].notna().to_numpy()
        c, v = clusters[keep], values[attribute].to_numpy(float)[keep]
        if len(v) < 3:
            continue
        h, p, eps = kruskal_wallis(c, v)
        shuffled = np.array([_statistics(rng.permutation(c), v, n_bins) for _ in range(n_shuffles)])
        rows[attribute] = {
            "n": len(v), "kruskal_h": h, "p_value": p, "epsilon2": eps, "mutual_info": binned_mutual_information(c, v, n_bins),
            "shuffled_h_mean": shuffled[:, 0].mean(), "shuffled_h_std": shuffled[:, 0].std(),
            "shuffled_epsilon2_mean": shuffled[:, 1].mean(), "shuffled_epsilon2_std": shuffled[:, 1].std(),
            "shuffled_mi_mean": shuffled[:, 2].mean(), "shuffled_mi_std": shuffled[:, 2].std()}
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("attribute")
    return table.astype({"n": "int64"}) if len(table) else table  # a count, not "360.000"


# the dependence table's columns as a reader names them (the app); exports keep the names above
DEPENDENCE_COLUMNS = {"n": "n", "kruskal_h": "Kruskal–Wallis H", "p_value": "p-value", "epsilon2": "ε² (effect size)",
                      "mutual_info": "MI (nats)", "shuffled_h_mean": "H with shuffled clusters (mean)",
                      "shuffled_h_std": "H with shuffled clusters (std)",
                      "shuffled_epsilon2_mean": "ε² with shuffled clusters (mean)",
                      "shuffled_epsilon2_std": "ε² with shuffled clusters (std)",
                      "shuffled_mi_mean": "MI with shuffled clusters (mean)",
                      "shuffled_mi_std": "MI with shuffled clusters (std)"}
CONTINGENCY_STATISTICS = {"chi2": "χ²", "p_value": "p-value", "dof": "degrees of freedom", "cramers_v": "Cramér's V"}


def _statistics(clusters: np.ndarray, values: np.ndarray, n_bins: int) -> tuple[float, float, float]:
    h, _, eps = kruskal_wallis(clusters, values)
    return h, eps, binned_mutual_information(clusters, values, n_bins)


def contingency(clusters: np.ndarray, emotions: pd.Series) -> tuple[pd.DataFrame, dict[str, float]]:
    """Cluster x emotion counts, chi^2 test of independence and Cramér's V."""
    keep = emotions.notna().to_numpy()
    table = pd.crosstab(pd.Series(np.asarray(clusters)[keep], name="cluster"),
                        pd.Series(emotions.to_numpy()[keep], name="emotion"))
    if min(table.shape) < 2:
        return table, {"chi2": 0.0, "p_value": 1.0, "dof": 0, "cramers_v": 0.0}
    chi2, p, dof, _ = stats.chi2_contingency(table)
    v = np.sqrt(chi2 / (table.to_numpy().sum() * (min(table.shape) - 1)))
    return table, {"chi2": float(chi2), "p_value": float(p), "dof": int(dof), "cramers_v": float(v)}


def analyze(clusters: np.ndarray, labels: pd.DataFrame | None, predictions: pd.DataFrame,
            emotions: pd.Series | None = None, *, n_shuffles: int = 20, seed: int = 0) -> DependenceReport:
    """The full report for one set of utterances: true labels where present, and predictions.

    Args:
        clusters: (N,) cluster of each utterance.
        labels: (N, A) true attributes (NaN where unlabelled), or None (e.g. an unlabelled corpus).
        predictions: (N, A) predicted attributes.
        emotions: (N,) categorical emotion, or None.
    """
    summaries, tests = {}, {}
    sources = {"prediction": predictions}
    if labels is not None and labels.notna().any().any():
        sources = {"label": labels, **sources}
    for source, values in sources.items():
        rows = values.notna().any(axis=1).to_numpy()
        summaries[source] = cluster_summary(np.asarray(clusters)[rows], values[rows])
        tests[source] = dependence(np.asarray(clusters)[rows], values[rows], n_shuffles=n_shuffles, seed=seed)
    table, categorical = (None, None)
    if emotions is not None and emotions.notna().any():
        table, categorical = contingency(clusters, emotions)
    return DependenceReport(pd.concat(summaries, names=["source"]), pd.concat(tests, names=["source"]), table, categorical)


def compare_selection(table: pd.DataFrame, selected: pd.Index, attributes: list[str]) -> pd.DataFrame:
    """Mean and std of each attribute in a selection of utterances vs all of `table`, and the difference.

    Returns:
        one row per attribute; NaN values are left out of every statistic.
    """
    rows = {}
    for attribute in attributes:
        chosen, everything = table.loc[selected, attribute].dropna(), table[attribute].dropna()
        rows[attribute] = {"selection mean": chosen.mean(), "all mean": everything.mean(),
                           "difference": chosen.mean() - everything.mean(), "selection std": chosen.std(),
                           "all std": everything.std(), "n selected": len(chosen)}
    return pd.DataFrame.from_dict(rows, orient="index")
