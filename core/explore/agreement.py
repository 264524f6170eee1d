"""How far two clusterings of the same utterances agree: two runs over one corpus, or two networks.

NMI (arithmetic normalisation, scikit-learn's default, as `core.model.metrics.cluster_stability`), the adjusted
Rand index, and the contingency table, over the utterances both clusterings hold.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from core.errors import UserError


class NoCommonUtterances(UserError, ValueError):
    """Two clusterings without an utterance in common: nothing to compare."""


@dataclass(frozen=True)
class ClusterAgreement:
    nmi: float  # 1: the same partition up to renaming; ~0: independent
    ari: float  # 1: the same partition; ~0: chance agreement (can be negative)
    contingency: pd.DataFrame  # utterances per (cluster of the first, cluster of the second): rows first
    n_common: int  # utterances both clusterings hold
    n_only_first: int
    n_only_second: int


def cluster_agreement(first: pd.Series, second: pd.Series) -> ClusterAgreement:
    """The agreement of two clusterings, each a Series of cluster ids indexed by utterance.

    Raises:
        NoCommonUtterances: the two hold no utterance in common.
    """
    common = first.index.intersection(second.index)
    if len(common) == 0:
        raise NoCommonUtterances("the two clusterings share no utterance: are they over the same corpus?")
    a, b = first.loc[common].to_numpy(), second.loc[common].to_numpy()
    table = pd.crosstab(pd.Series(a, name="first"), pd.Series(b, name="second"))
    return ClusterAgreement(nmi=float(normalized_mutual_info_score(a, b)), ari=float(adjusted_rand_score(a, b)),
                            contingency=table, n_common=len(common), n_only_first=len(first) - len(common),
                            n_only_second=len(second) - len(common))


def best_matches(contingency: pd.DataFrame) -> pd.DataFrame:
    """For each cluster of the first clustering, the cluster of the second holding most of its utterances.

    Returns:
        index = first's clusters: `match` (second's cluster), `share` (of the first cluster's utterances).
    """
    totals = contingency.sum(axis=1).replace(0, np.nan)
    return pd.DataFrame({"match": contingency.idxmax(axis=1), "share": contingency.max(axis=1) / totals})
