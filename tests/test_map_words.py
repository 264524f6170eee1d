"""What the map explains (issue 12, item 5): clusters in words, two clusterings compared, out of distribution."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from core.explore.agreement import NoCommonUtterances, best_matches, cluster_agreement
from core.explore.cluster_words import cluster_centres, cluster_descriptions
from core.explore.exploration import distinct_names, find_utterance
from core.explore.novelty import corpus_novelty, nearest_corpus_distance


def test_cluster_descriptions_name_the_attributes_a_cluster_departs_on():
    clusters = np.repeat([0, 1, 2], 200)
    spread = np.tile([-1.0, 1.0], 300)  # every cluster: variance 1 around its offset
    offsets = {"arousal": [2, -1, -1], "valence": [-1, 0.5, 0.5], "dominance": [0.5, -1, 0.5]}
    # corpus shifts in standard deviations: arousal +1.15 / -0.58 / -0.58, valence -0.82 / +0.41 / +0.41,
    # dominance +0.41 / -0.82 / +0.41: words for |shift| >= 0.5, the largest first
    values = pd.DataFrame({a: spread + np.asarray(o, float)[clusters] for a, o in offsets.items()})
    values.loc[5, "valence"] = np.nan  # an unknown value is left out, not a NaN mean
    table = cluster_descriptions(clusters, values, n_clusters=4)
    assert list(table["label"]) == ["0 · high arousal, low valence", "1 · low dominance, low arousal",
                                   "2 · low arousal", "3 · empty"]
    assert list(table["n"]) == [200, 200, 200, 0]
    expected = values["arousal"][clusters == 0].mean()
    assert table.at[0, "arousal_mean"] == pytest.approx(expected)
    assert table.at[0, "arousal_shift"] == pytest.approx((expected - values["arousal"].mean()) / values["arousal"].std(ddof=0))
    assert np.isfinite(table.loc[:2, "valence_mean"]).all() and np.isnan(table.at[3, "valence_mean"])


def test_a_cluster_like_the_corpus_is_said_to_be_average_and_constant_attributes_earn_no_word():
    values = pd.DataFrame({"arousal": np.tile([0.0, 1.0], 50), "valence": np.full(100, 2.0)})
    table = cluster_descriptions(np.repeat([0, 1], 50), values)
    assert list(table["label"]) == ["0 · near the corpus average", "1 · near the corpus average"]


def test_clusters_with_the_same_words_are_told_apart_by_the_attribute_that_differs_most():
    """Issue 29: clusters 1 and 4 were both "high arousal, high dominance, high valence"."""
    clusters = np.repeat([0, 1, 2, 3, 4], 100)
    spread = np.tile([-0.2, 0.2], 250)
    offsets = {"arousal": [-4, 1.5, 1.4, 1.6, 1.5], "valence": [0, 0, 0, 0, 0], "dominance": [-4, 1.2, 1.5, 1.8, 2.4]}
    values = pd.DataFrame({a: spread + np.asarray(o, float)[clusters] for a, o in offsets.items()})
    labels = list(cluster_descriptions(clusters, values, shift=0.25)["label"])
    assert labels[0] == "0 · low arousal, low dominance"  # its words are its own: unchanged
    assert [label.split(", ")[-1] for label in labels[1:]] == ["lowest dominance", "3rd highest dominance",
                                                              "2nd highest dominance", "highest dominance"]
    assert all({"high arousal", "high dominance"} < set(label.split(" · ")[1].split(", ")) for label in labels[1:])
    # two clusters with the same words in another order ("high arousal, high dominance" and "high dominance,
    # high arousal"): lower and higher on the attribute that differs more between them
    two = list(cluster_descriptions(np.repeat([0, 1, 2], 100), values.iloc[:300].assign(
        dominance=spread[:300] + np.repeat([-4.0, 1.0, 1.5], 100)))["label"])
    assert two[1].endswith(", lower dominance") and two[2].endswith(", higher dominance"), two
    assert len(set(labels)) == len(labels)


def test_cluster_centres_are_the_medians_of_their_points():
    coords = np.array([[0, 0], [1, 1], [2, 2], [100, 100], [5, 5]], float)
    centres = cluster_centres(coords, np.array([0, 0, 0, 0, 1]), 3)
    np.testing.assert_array_equal(centres[:2], [[1.5, 1.5], [5, 5]])
    assert np.isnan(centres[2]).all()


def test_cluster_agreement_is_sklearns_over_the_common_utterances_with_its_contingency():
    rng = np.random.default_rng(1)
    files = [f"u{i}" for i in range(300)]
    first = pd.Series(rng.integers(0, 4, 300), index=files)
    second = pd.Series((first.to_numpy() + (rng.random(300) < 0.2)) % 5, index=files)[::-1]  # another order
    second = pd.concat([second, pd.Series([0], index=["only-second"])])
    agreement = cluster_agreement(first, second.drop("u0"))
    common = [f for f in files if f != "u0"]
    a, b = first.loc[common].to_numpy(), second.loc[common].to_numpy()
    assert agreement.nmi == pytest.approx(normalized_mutual_info_score(a, b))
    assert agreement.ari == pytest.approx(adjusted_rand_score(a, b))
    assert (agreement.n_common, agreement.n_only_first, agreement.n_only_second) == (299, 1, 1)
    assert agreement.contingency.to_numpy().sum() == 299
    assert agreement.contingency.at[2, 2] == ((a == 2) & (b == 2)).sum()
    matches = best_matches(agreement.contingency)
    assert (matches["match"] == matches.index).all() and (matches["share"] > 0.6).all()
    same = cluster_agreement(first, (first + 7).rename(None))  # renamed clusters: the same partition
    assert same.nmi == pytest.approx(1.0) and same.ari == pytest.approx(1.0)
    with pytest.raises(NoCommonUtterances):
        cluster_agreement(first, pd.Series([1], index=["elsewhere"]))


def test_novelty_is_the_percentile_of_nearest_other_utterance_distances():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(400, 8)).astype(np.float32)
    X[1] = X[0]  # a duplicate: its nearest other utterance is at distance 0, never itself
    novelty = corpus_novelty(X)
    d = np.linalg.norm(X[:, None] - X[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    nearest = d.min(1)
    np.testing.assert_allclose(novelty.distances, nearest, rtol=1e-4, atol=1e-5)
    assert novelty.distances[0] == novelty.distances[1] == 0
    assert novelty.threshold == pytest.approx(np.percentile(nearest, 99), rel=1e-4)
    assert novelty.n_corpus == 400 and (novelty.is_out(nearest).mean()) <= 0.011
    far, near = np.full((1, 8), 10.0, np.float32), X[3:4] + 1e-3
    distance, index = nearest_corpus_distance(X, np.concatenate([far, near]))
    assert list(novelty.is_out(distance)) == [True, False] and index[1] == 3


def test_novelty_samples_large_corpora_seeded_and_refuses_a_single_utterance():
    X = np.random.default_rng(3).normal(size=(3000, 4)).astype(np.float32)
    sampled = corpus_novelty(X, max_queries=500, seed=1)
    assert len(sampled.distances) == 500 and sampled.n_corpus == 3000
    assert corpus_novelty(X, max_queries=500, seed=1).threshold == sampled.threshold
    assert sampled.threshold == pytest.approx(corpus_novelty(X).threshold, rel=0.2)
    with pytest.raises(ValueError, match="at least 2"):
        corpus_novelty(X[:1])


def test_uploads_with_the_same_name_are_told_apart():
    assert distinct_names(["a.wav", "b.wav", "a.wav", "a.wav"]) == ["a.wav", "b.wav", "a.wav (2)", "a.wav (3)"]
    names = distinct_names(["a.wav", "a.wav", "a.wav (2)"])  # a file really named "a.wav (2)" keeps its name
    assert names == ["a.wav", "a.wav (3)", "a.wav (2)"] and len(set(names)) == 3


def test_an_utterance_is_found_by_its_file_name_or_the_close_names_are_offered():
    """Issue 29: "demo_0003.wav" got "No utterance named…" where the stored key is "audio/demo_0003.wav"."""
    keys = ["audio/demo_0003.wav", "audio/demo_0013.wav", "a/x.wav", "b/x.wav"]
    for typed in ("audio/demo_0003.wav", "demo_0003.wav", " demo_0003.wav ", "audio\\demo_0003.wav", "/audio/demo_0003.wav"):
        assert find_utterance(typed, keys).match == "audio/demo_0003.wav", typed
    assert find_utterance("x.wav", keys).match is None  # two clips of that name: both offered, none opened
    assert find_utterance("x.wav", keys).candidates == ("a/x.wav", "b/x.wav")
    assert find_utterance("0003.wav", keys).match is None  # a suffix within a file name is not a file name
    assert "audio/demo_0003.wav" in find_utterance("demo_003.wav", keys).candidates  # a typo: close names
    assert find_utterance("nowhere.wav", keys) == find_utterance("nowhere.wav", keys[:1]) and \
        find_utterance("nowhere.wav", keys).candidates == ()
