import numpy as np
import pytest
import torch

from core.model.metrics import ccc, ccc_loss, cluster_stability


def test_ccc_reference_values():
    y = np.random.default_rng(0).normal(size=200)
    y -= y.mean()  # CCC(y, -y) = -1 needs equal means
    assert ccc(y, y) == pytest.approx(1.0)
    assert ccc(y, -y) == pytest.approx(-1.0)
    assert ccc(y, y + 1.0) < 1.0  # a bias lowers CCC but not correlation
    assert np.isnan(ccc(y[:1], y[:1])) and np.isnan(ccc(np.ones(5), np.ones(5)))


def test_ccc_uses_population_variances():
    y, p = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 1.5, 3.5, 3.0])
    expected = 2 * np.cov(y, p, bias=True)[0, 1] / (y.var() + p.var() + (y.mean() - p.mean()) ** 2)
    assert ccc(y, p) == pytest.approx(expected)


def test_ccc_loss_equals_one_minus_ccc_and_skips_missing_labels():
    rng = np.random.default_rng(1)
    y, p = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    loss = ccc_loss(torch.tensor(p), torch.tensor(y)).item()
    assert loss == pytest.approx(np.mean([1 - ccc(y[:, a], p[:, a]) for a in range(3)]), abs=1e-6)
    y_missing = y.copy()
    y_missing[:10, 0] = np.nan
    loss = ccc_loss(torch.tensor(p), torch.tensor(y_missing)).item()
    expected = np.mean([1 - ccc(y[10:, 0], p[10:, 0]), 1 - ccc(y[:, 1], p[:, 1]), 1 - ccc(y[:, 2], p[:, 2])])
    assert loss == pytest.approx(expected, abs=1e-6)


def test_cluster_stability_is_nmi_against_the_previous_epoch():
    a = np.array([0, 0, 1, 1, 2, 2])
    assert cluster_stability(a, (a + 1) % 3) == pytest.approx(1.0)  # a relabelling is the same partition
    assert np.isnan(cluster_stability(None, a))


def test_ccc_loss_unbiased_takes_the_variances_over_n_minus_1_as_the_released_cc_coef():
    """The released code's `cc_coef`: covariance a mean over n, variances torch.var's (n - 1) (issue 30)."""
    rng = np.random.default_rng(2)
    y, p = rng.normal(size=(12, 2)), rng.normal(0.3, 2.0, size=(12, 2))
    expected = np.mean([1 - 2 * np.mean((y[:, a] - y[:, a].mean()) * (p[:, a] - p[:, a].mean()))
                        / (y[:, a].var(ddof=1) + p[:, a].var(ddof=1) + (y[:, a].mean() - p[:, a].mean()) ** 2)
                        for a in range(2)])
    assert ccc_loss(torch.tensor(p), torch.tensor(y), unbiased=True).item() == pytest.approx(expected, abs=1e-9)
    assert ccc_loss(torch.tensor(p), torch.tensor(y)).item() != pytest.approx(expected, abs=1e-3)  # default: population
