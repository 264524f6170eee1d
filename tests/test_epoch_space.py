"""The space an epoch clustered (`core.training.epoch_space`): utterance means, majority pseudo-labels, the sample, the map."""
import numpy as np
import pandas as pd
import pytest

from core.training.epoch_space import epoch_map, epoch_space
from tests.helpers import chunk_set_without_frames


def _chunk_set(n: int, c: int):
    return chunk_set_without_frames([f"clip_{i:03d}.wav" for i in range(n)], c)


def test_each_utterance_is_the_mean_of_its_chunks_and_the_majority_of_their_labels():
    vectors = np.arange(3 * 3 * 2, dtype=np.float32).reshape(9, 2)  # 3 utterances x 3 chunks, 2-d
    labels = np.array([0, 1, 1, 2, 2, 0, 1, 1, 1])
    space = epoch_space(4, _chunk_set(3, 3), vectors, labels, n_clusters=3)
    assert space.epoch == 4 and space.n_clusters == 3 and space.n_utterances == 3
    assert list(space.files) == ["clip_000.wav", "clip_001.wav", "clip_002.wav"]
    np.testing.assert_allclose(space.embeddings, [[2, 3], [8, 9], [14, 15]])
    assert space.cluster.tolist() == [1, 2, 1]
    assert space.embeddings.dtype == np.float32


def test_a_large_training_split_is_sampled_the_same_way_every_epoch():
    rng = np.random.default_rng(0)
    chunk_set = _chunk_set(50, 2)
    vectors, labels = rng.standard_normal((100, 3)).astype(np.float32), rng.integers(0, 4, 100)
    first = epoch_space(0, chunk_set, vectors, labels, 4, seed=7, limit=10)
    later = epoch_space(5, chunk_set, vectors[::-1].copy(), labels, 4, seed=7, limit=10)
    assert len(first.files) == 10 and first.n_utterances == 50
    assert first.files.equals(later.files) and first.files.is_monotonic_increasing
    i = chunk_set.files.get_loc(first.files[3])
    np.testing.assert_allclose(first.embeddings[3], vectors[2 * i: 2 * i + 2].mean(0), rtol=1e-6)
    assert not epoch_space(0, chunk_set, vectors, labels, 4, seed=8, limit=10).files.equals(first.files)


def test_vectors_that_do_not_match_the_chunk_set_are_refused():
    with pytest.raises(ValueError, match="3 utterances of 2 chunks need 6 vectors and labels, got 5 and 6"):
        epoch_space(0, _chunk_set(3, 2), np.zeros((5, 2), np.float32), np.zeros(6, int), 2)


def test_the_map_places_every_utterance_beside_its_corpus_fields():
    rng = np.random.default_rng(1)
    n = 40
    centres = np.repeat(np.eye(2, 8, dtype=np.float32) * 20, n // 2, axis=0)  # two far-apart groups of utterances
    vectors = np.repeat(centres + rng.standard_normal((n, 8)).astype(np.float32), 2, axis=0)
    space = epoch_space(2, _chunk_set(n, 2), vectors, np.repeat(np.arange(n) >= n // 2, 2).astype(int), 2)
    corpus = pd.DataFrame({"speaker": ["s1", "s2"] * (n // 2), "emotion": "calm", "arousal": np.linspace(1, 7, n),
                           "path": "x.wav"}, index=space.files)
    table = epoch_map(space, corpus)
    assert table.index.equals(space.files)
    assert list(table.columns) == ["x", "y", "cluster", "speaker", "emotion", "arousal"]
    assert np.isfinite(table[["x", "y"]].to_numpy()).all()
    assert table["arousal"].tolist() == corpus["arousal"].tolist() and table["cluster"].tolist() == space.cluster.tolist()
    first, second = table.iloc[: n // 2][["x", "y"]].mean(), table.iloc[n // 2:][["x", "y"]].mean()
    spread = table[["x", "y"]].std().mean()
    assert np.hypot(*(first - second)) > spread  # the two groups are apart on the map


def test_a_space_whose_files_the_corpus_lacks_is_refused_by_name():
    space = epoch_space(0, _chunk_set(4, 1), np.zeros((4, 2), np.float32), np.zeros(4, int), 1)
    corpus = pd.DataFrame({"speaker": ["a"] * 3}, index=space.files[:3])
    with pytest.raises(ValueError, match="1 utterances of epoch 1 are not in the corpus, e.g. 'clip_003.wav'"):
        epoch_map(space, corpus)
