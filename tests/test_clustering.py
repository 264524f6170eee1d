import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from core.data.dataset import balanced_indices
from core.model.clustering import PseudoLabeler


def _blobs(rng, n_per=50, centres=((0, 0), (10, 0), (0, 10))):
    return np.concatenate([rng.normal(c, 1.0, size=(n_per, 2)) for c in centres]).astype(np.float32)


def test_pseudo_labeler_fit_returns_self_and_finds_blobs():
    X = _blobs(np.random.default_rng(0))
    labeler = PseudoLabeler(3, random_state=0)
    assert labeler.fit(X) is labeler
    assert labeler.labels_.shape == (150,) and labeler.labels_.dtype == np.int64
    assert sorted(labeler.cluster_sizes()) == [50, 50, 50]
    assert np.array_equal(labeler.predict(X), labeler.labels_)


def test_pseudo_labeler_refit_replaces_and_seed_controls_init():
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(300, 8)).astype(np.float32), rng.normal(size=(200, 8)).astype(np.float32)
    labeler = PseudoLabeler(5, random_state=0).fit(X)
    assert labeler.fit(Y).labels_.shape == (200,)
    a, b = PseudoLabeler(5, random_state=3).fit(X).labels_, PseudoLabeler(5, random_state=3).fit(X).labels_
    assert np.array_equal(a, b)


def test_pseudo_labeler_pca_whitening_gives_identity_covariance():
    rng = np.random.default_rng(2)
    X = (rng.normal(size=(2000, 16)) @ rng.normal(size=(16, 16))).astype(np.float32)
    labeler = PseudoLabeler(4, pca_dim=8, random_state=0).fit(X)
    Z = labeler.pca_.transform(X)
    np.testing.assert_allclose(np.cov(Z, rowvar=False), np.eye(8), atol=0.05)
    assert labeler.cluster_centers_.shape == (4, 16)  # centroids in input space


def test_pseudo_labeler_predict_before_fit_raises():
    with pytest.raises(NotFittedError):
        PseudoLabeler(3).predict(np.zeros((2, 2)))


@pytest.mark.parametrize("params,n,message", [
    ({"n_clusters": 1}, 10, "n_clusters must be >= 2, got 1"),
    ({"n_clusters": 10}, 10, "more vectors than clusters: 10 vectors"),
    ({"n_clusters": 2, "backend": "gpu"}, 10, "backend must be one of"),
])
def test_pseudo_labeler_rejects_invalid_parameters(params, n, message):
    with pytest.raises(ValueError, match=message):
        PseudoLabeler(**params).fit(np.random.default_rng(0).normal(size=(n, 3)))


def test_balanced_indices_are_uniform_across_clusters():
    pseudo = np.array([0] * 90 + [1] * 9 + [2] * 1)
    draws = balanced_indices(pseudo, 100, np.random.default_rng(0))
    assert len(draws) == 100
    counts = np.bincount(pseudo[draws], minlength=3)
    assert counts.min() >= 30 and counts.max() <= 34  # int(100/3) + 1 each, cut to 100
    assert len(np.unique(draws[pseudo[draws] == 0])) == len(draws[pseudo[draws] == 0])  # big cluster: no repeats
