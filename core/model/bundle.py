"""The model bundle: a run's networks with the normalisation they were trained with, and its checkpoint form.

`bundle_state`/`bundle_from_state` convert to and from the self-describing dict that storage writes with
`torch.save` (nanoGPT style: the checkpoint carries its config); nothing here touches disk.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from core.config import ModelConfig, RunConfig
from core.model.network import EmotionCNN

if TYPE_CHECKING:
    from core.store.run_store import Run

BUNDLE_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Normalisation:
    """Training-split statistics: per-mel-bin feature mean/std and per-attribute label mean/std."""
    feature_mean: np.ndarray  # (F,) float64
    feature_std: np.ndarray  # (F,) float64
    label_mean: dict[str, float]
    label_std: dict[str, float]

    def denormalise(self, attribute: str, z: np.ndarray) -> np.ndarray:
        """z-normalised predictions of `attribute` -> label scale, in float64 (as the authors' pipeline)."""
        return self.label_std[attribute] * np.asarray(z, np.float64) + self.label_mean[attribute]


@dataclass
class ModelBundle:
    """The networks of a run and what is needed to use them.

    A joint model is one network predicting several attributes; an imported published model holds
    three per-attribute networks, each with its own clustering space and cluster head.
    """
    networks: dict[str, EmotionCNN]  # name -> network; `network.cfg.attributes` says what it predicts
    normalisation: Normalisation
    config: RunConfig


def bundle_state(bundle: ModelBundle) -> dict[str, Any]:
    """The checkpoint dict of a bundle: tensors and plain types only, loadable with `weights_only=True`."""
    norm = bundle.normalisation
    return {
        "schema_version": BUNDLE_SCHEMA_VERSION,
        "config": bundle.config.to_dict(),
        "networks": {name: {"model_config": dataclasses.asdict(net.cfg), "n_clusters": net.n_clusters,
                            "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}}
                     for name, net in bundle.networks.items()},
        "normalisation": {"feature_mean": torch.from_numpy(np.asarray(norm.feature_mean, np.float64)),
                          "feature_std": torch.from_numpy(np.asarray(norm.feature_std, np.float64)),
                          "label_mean": dict(norm.label_mean), "label_std": dict(norm.label_std)},
    }


def bundle_from_state(state: dict[str, Any]) -> ModelBundle:
    """The bundle of a `bundle_state` dict, networks on the CPU in eval mode."""
    config = RunConfig.from_dict(state["config"])
    networks = {}
    for name, entry in state["networks"].items():
        model_cfg = ModelConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in entry["model_config"].items()})
        net = EmotionCNN(model_cfg, config.chunks.chunk_frames, config.features.n_mels)
        net.reset_cluster_head(entry["n_clusters"])
        net.load_state_dict(entry["state_dict"])
        networks[name] = net.eval()
    n = state["normalisation"]
    return ModelBundle(networks, Normalisation(n["feature_mean"].numpy(), n["feature_std"].numpy(),
                                               dict(n["label_mean"]), dict(n["label_std"])), config)


def load_bundle(run: Run) -> ModelBundle:
    """A finished run's kept networks (`Run.load_model_state`, checked against the run's digests).

    Raises:
        CorruptFileError: the run's `model.pt` changed since it finished.
    """
    return bundle_from_state(run.load_model_state())
