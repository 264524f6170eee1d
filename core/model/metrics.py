"""One definition of the concordance correlation coefficient (numpy and torch) and cluster stability.

CCC = 2 cov(y, p) / (var(y) + var(p) + (mean(y) - mean(p))^2) with population (biased) moments (SPEC 2.5);
the loss can take the variances unbiased instead, as the released code's `cc_coef` does.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import normalized_mutual_info_score


def ccc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Concordance correlation coefficient of two (N,) arrays; NaN where undefined (N < 2, both constant)."""
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    if len(y_true) < 2:
        return float("nan")
    mt, mp = y_true.mean(), y_pred.mean()
    cov = np.mean((y_true - mt) * (y_pred - mp))
    denominator = y_true.var() + y_pred.var() + (mt - mp) ** 2
    return float(2 * cov / denominator) if denominator > 0 else float("nan")


def attribute_ccc(y_true: np.ndarray, y_pred: np.ndarray, attributes: tuple[str, ...] | list[str]) -> dict[str, float]:
    """Utterance-level CCC per attribute: the one evaluator of training, `evaluate` and the explorer.

    Partial labels: an utterance without a label for an attribute (NaN) is left out of that attribute's
    CCC only; an attribute with fewer than two labelled utterances gets NaN.

    Args:
        y_true: (N, A) labels, NaN where missing, columns in `attributes` order.
        y_pred: (N, A) predictions on the same scale (the CCC is unchanged by one affine map applied to both,
            so z-normalised labels and predictions give the label-scale CCC).
    """
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    out = {}
    for j, attribute in enumerate(attributes):
        labelled = ~np.isnan(y_true[:, j])
        out[attribute] = ccc(y_true[labelled, j], y_pred[labelled, j])
    return out


def ccc_loss(pred: torch.Tensor, target: torch.Tensor, unbiased: bool = False) -> torch.Tensor:
    """Mean over attributes of 1 - CCC, for (B, A) tensors; NaN targets (missing labels) are left out.

    Args:
        unbiased: the variances over n - 1 (torch.var's default), as the released code's `cc_coef`, whose
            covariance stays a mean over n; False: population moments throughout, the metric's (SPEC 2.5).

    Returns a scalar; an attribute with fewer than two labelled rows in the batch contributes 0.
    """
    losses = []
    for a in range(pred.shape[1]):
        keep = ~torch.isnan(target[:, a])
        if keep.sum() < 2:
            continue
        p, t = pred[keep, a], target[keep, a]
        mp, mt = p.mean(), t.mean()
        cov = ((p - mp) * (t - mt)).mean()
        denominator = p.var(unbiased=unbiased) + t.var(unbiased=unbiased) + (mp - mt) ** 2
        losses.append(1 - 2 * cov / (denominator + 1e-12))
    return torch.stack(losses).mean() if losses else pred.sum() * 0


def cluster_stability(previous: np.ndarray | None, current: np.ndarray) -> float:
    """NMI between consecutive epochs' pseudo-labels of the same chunks (DeepCluster); NaN at epoch 0."""
    if previous is None or len(previous) != len(current):
        return float("nan")
    return float(normalized_mutual_info_score(previous, current))
