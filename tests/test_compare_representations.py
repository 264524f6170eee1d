"""Runs compared over one corpus (`core.evaluate.representations`): clusters that encode an attribute beat random ones
with an interval excluding 0, random ones sit on their shuffled baseline, the vectorised bootstrap is the statistic it
claims and is seeded, utterances are matched by path; the `compare` command and the report's section."""
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mutual_info_score

from core.cli.main import main
from core.evaluate.representations import (N_BINS, ComparisonError, _bootstrap, categorical_table, compare_clusters,
                                           compare_representations, summary_table)
from core.explore.analysis import kruskal_wallis
from core.explore.exploration import Exploration
from core.store.run_store import RunStore


def _labels(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Arousal (rounded: ties, as rating scales have) and valence with a third unlabelled; clusters that encode arousal."""
    rng = np.random.default_rng(seed)
    arousal = np.round(rng.normal(4, 1, n), 1)
    valence = np.where(rng.random(n) < 1 / 3, np.nan, rng.normal(4, 1, n))
    return pd.DataFrame({"arousal": arousal, "valence": valence}), np.digitize(arousal, [3, 4, 5]) + 10


def _exploration(paths: list[str], clusters, labels: pd.DataFrame, keys: list[str]) -> Exploration:
    """An exploration as `compare_representations` reads one: a corpus (path, labels, emotion) and its clusters."""
    corpus = labels.assign(path=paths, emotion=np.where(labels["arousal"] > 4, "angry", "sad"))
    corpus.index = pd.Index(keys, name="file")
    return Exploration(run=None, network="n", corpus=corpus, latent=SimpleNamespace(cluster=np.asarray(clusters)),
                       folder=Path("."))


def test_compare_clusters_an_arousal_clustering_beats_random_clusters():
    labels, encoding = _labels()
    random = np.random.default_rng(1).integers(0, 4, len(labels))
    found = compare_clusters({"encoding": encoding, "random": random}, labels, resamples=500)
    table, differences = found.dependence, found.differences
    assert table.loc[("encoding", "arousal"), "epsilon2"] > 0.8
    assert table.loc[("encoding", "valence"), "n"] == labels["valence"].notna().sum()  # its labelled rows only
    row = table.loc[("random", "arousal")]  # no dependence: where shuffled clusters are
    assert abs(row.epsilon2 - row.shuffled_epsilon2_mean) < 4 * row.shuffled_epsilon2_std + 1e-3
    gain = differences.loc[("encoding", "random", "arousal", "epsilon2")]
    assert gain.low > 0 and gain.difference == pytest.approx(table.loc[("encoding", "arousal"), "epsilon2"] - row.epsilon2)
    assert differences.loc[("encoding", "random", "arousal", "mutual_info")].low > 0
    valence = differences.loc[("encoding", "random", "valence", "epsilon2")]
    assert valence.low < 0 < valence.high  # neither clustering encodes valence


def test_compare_clusters_interval_is_not_fooled_by_the_number_of_clusters():
    """ε² grows with K by chance alone: random clusterings with K = 3 and K = 64 differ in ε², and the basic interval
    (unlike percentiles of the draws, which sit further off) still holds 0."""
    rng = np.random.default_rng(0)
    labels = pd.DataFrame({"arousal": np.round(rng.normal(4, 1, 1000), 1)})
    found = compare_clusters({"few": rng.integers(0, 3, 1000), "many": rng.integers(0, 64, 1000)}, labels, resamples=500)
    for statistic in ("epsilon2", "mutual_info"):
        row = found.differences.loc[("few", "many", "arousal", statistic)]
        assert row.difference < 0 and row.low < 0 < row.high


def test_bootstrap_is_kruskal_wallis_and_binned_mi_on_each_resample():
    """The vectorised statistic equals scipy's ε² (ties included) and the MI of the observed quantile bins, on the
    very draws of the seeded generator."""
    labels, encoding = _labels(n=120)
    values, clusters = labels["arousal"].to_numpy(), encoding - 10
    eps, mi = _bootstrap({"a": clusters}, values, 3, seed=7)["a"]
    draws = np.random.default_rng(7).integers(0, len(values), size=(3, len(values)))
    bins = np.digitize(values, np.unique(np.quantile(values, np.linspace(0, 1, N_BINS + 1)[1:-1])))
    for j, index in enumerate(draws):
        assert eps[j] == pytest.approx(kruskal_wallis(clusters[index], values[index])[2], rel=1e-9)
        assert mi[j] == pytest.approx(mutual_info_score(clusters[index], bins[index]), rel=1e-9)


def test_compare_clusters_is_reproducible_with_its_seed():
    labels, encoding = _labels()
    clusters = {"a": encoding, "b": np.random.default_rng(2).integers(0, 3, len(labels))}
    first, again = (compare_clusters(clusters, labels, resamples=200, seed=3) for _ in range(2))
    pd.testing.assert_frame_equal(first.differences, again.differences)
    pd.testing.assert_frame_equal(first.dependence, again.dependence)
    other = compare_clusters(clusters, labels, resamples=200, seed=4)
    assert not np.allclose(first.differences["low"], other.differences["low"])


def test_compare_representations_matches_utterances_by_path():
    """Another corpus's keys and row order, a path spelled differently, one utterance only one run holds and one listed
    twice (its first row counts): the same clusters of the same utterances give the same statistics, a difference of 0."""
    labels, encoding = _labels(n=60)
    paths = [f"/corpus/audio/{i:03d}.wav" for i in range(60)]
    a = _exploration(paths, encoding, labels, [f"audio/{i:03d}.wav" for i in range(60)])
    order = np.random.default_rng(0).permutation(60)
    moved = [p.replace("/audio/", "/audio/./") for p in np.asarray(paths)[order]]
    b = _exploration([*moved, "/corpus/audio/extra.wav", moved[0]], np.r_[encoding[order], 99, 98],
                     pd.concat([labels.iloc[order], labels.iloc[:2]]), [f"corrected/{i}" for i in range(62)])
    found = compare_representations({"a": a, "b": b}, {"a": None, "b": None}, n_shuffles=5, resamples=100)
    assert found.n_common == 60 and found.corpus_sizes == {"a": 60, "b": 61} and found.runs == ("a", "b")
    assert found.dependence.loc[("a", "arousal"), "epsilon2"] == pytest.approx(found.dependence.loc[("b", "arousal"), "epsilon2"])
    assert found.differences["difference"].abs().max() < 1e-12 and found.differences["high"].abs().max() < 1e-12
    assert (found.test_ccc["reason"] == "no test predictions").all()  # no predictions: said, never a crash
    assert categorical_table(found).loc["a", "Cramér's V"] == categorical_table(found).loc["b", "Cramér's V"]
    summary = summary_table(found)
    assert summary.loc[("arousal", "a"), "test CCC [95 % CI]"] == "undefined: no test predictions"
    assert ("arousal", "a − b") in summary.index


def test_compare_representations_refuses_one_run_and_disjoint_corpora():
    labels, encoding = _labels(n=20)
    one = _exploration([f"/a/{i}.wav" for i in range(20)], encoding, labels, list(range(20)))
    with pytest.raises(ComparisonError, match="two or more runs"):
        compare_representations({"a": one}, {"a": None})
    other = _exploration([f"/b/{i}.wav" for i in range(20)], encoding, labels, list(range(20)))
    with pytest.raises(ComparisonError, match=r"share no utterance.*a \(20 utterances\), b \(20 utterances\)"):
        compare_representations({"a": one, "b": other}, {})


def test_compare_command_over_a_run_and_its_ablation_partner(app_data, tmp_path, monkeypatch, capsys):
    runs = tmp_path / "runs"  # a private copy: the command caches the partner's latent space in its run folder
    shutil.copytree(app_data / "runs", runs)
    monkeypatch.setenv("SER_DATA_DIR", str(app_data))  # the shared feature cache
    ids = [run.run_id for run in RunStore(runs).list()]
    out = tmp_path / "compared"
    assert main(["--runs-dir", str(runs), "compare", *ids, "--out", str(out), "--resamples", "200"]) == 0
    printed = capsys.readouterr().out
    dependence = pd.read_csv(out / "dependence.csv", index_col=["run", "attribute"])
    assert set(dependence.index.get_level_values("run")) == set(ids)
    assert {"epsilon2", "shuffled_epsilon2_mean", "mutual_info", "shuffled_mi_std", "cramers_v"} <= set(dependence)
    differences = pd.read_csv(out / "differences.csv", index_col=["run", "other", "attribute", "statistic"])
    assert len(differences) == 3 * 2 and (differences["low"] <= differences["high"]).all()  # A/V/D x (ε², MI)
    test_ccc = pd.read_csv(out / "test_ccc.csv", index_col=["run", "split", "attribute"])
    assert test_ccc["ccc"].notna().all() and set(test_ccc.index.get_level_values("split")) == {"test"}
    assert "utterances in common" in printed and "arousal (" in printed and f"{ids[0]} − {ids[1]}" in printed
    assert "ε² shuffled" in printed and "test CCC [95 % CI]" in printed and "Cramér's V" in printed
    assert main(["--runs-dir", str(runs), "compare", ids[0], ids[0], "--out", str(out)]) == 2
    assert "each run may be given once" in capsys.readouterr().err


def test_report_section_says_when_no_other_run_shares_the_corpus(app_data):
    from core.report.representations import TITLE, representations_section
    run = RunStore(app_data / "runs").latest()
    section = representations_section(run, [run], cache_root=app_data / "cache", device="cpu", n_shuffles=5)
    assert section.title == TITLE and section.blocks[0].text.startswith("not available: no other stored run")
