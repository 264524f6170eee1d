"""What the timings run on: untrained networks and noise clips (the cost of inference, not its quality)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from core import ModelBundle, Normalisation
from core.config import ModelConfig, RunConfig
from core.model.network import EmotionCNN


def untrained_bundle(networks: dict[str, ModelConfig], cfg: RunConfig) -> ModelBundle:
    """Randomly initialised networks with neutral normalisation: the cost of inference, not its quality."""
    attributes = [a for model in networks.values() for a in model.attributes]
    torch.manual_seed(0)  # the same weights every run: comparable timings (a script may seed globally)
    return ModelBundle({name: EmotionCNN(model).eval() for name, model in networks.items()},
                       Normalisation(np.ones(128), np.ones(128), {a: 4.0 for a in attributes},
                                     {a: 1.0 for a in attributes}), cfg)


def noise_clip(path: Path, rng: np.random.Generator, seconds: float = 5.0) -> Path:
    """A 16-kHz noise clip: latency does not depend on what the audio says."""
    sf.write(path, 0.3 * rng.standard_normal(int(seconds * 16_000)).astype(np.float32), 16_000)
    return path
