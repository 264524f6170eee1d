"""What a run being trained writes after each epoch to resume from it: a data type, no torch imported."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Checkpoint:
    """Everything a run needs to resume after its last completed epoch (one dict for `torch.save`, as nanoGPT)."""
    epoch: int  # epochs completed
    best_score: float  # mean dev CCC of the epoch kept so far (under either rule; the history's `best` rows say which)
    model: dict[str, torch.Tensor]  # state dict, cluster head included
    optimisers: dict[str, dict[str, Any]]  # name -> optimiser state dict
    rng: dict[str, torch.Tensor]  # "cpu" and, on a GPU, "cuda": torch's generator states
    previous_pseudo: np.ndarray  # (n_train_chunks,) this epoch's labelled pseudo-labels (for the next NMI)
    history: pd.DataFrame  # one row per completed epoch
    assignments: np.ndarray  # (epochs, n_train_chunks) int16 pseudo-labels of every epoch
    last_centroids: np.ndarray  # (K, H) this epoch's labelled-stage K-means centroids
