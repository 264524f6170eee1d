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


def random_map_locator(folder: Path, n_corpus: int, seed: int = 0):
    """A `Locator` over a map of `n_corpus` random utterances and an untrained joint network (stored under `folder`):
    locating costs the same as in a trained run's map of that size."""
    import pandas as pd
    from core import RunInfo, RunStore
    from core.explore.exploration import Exploration
    from core.explore.locator import Locator
    from core.model.bundle import bundle_state
    from core.store.latent import LatentSpace
    cfg = RunConfig(name="bench")
    run = RunStore(folder / "runs").save_complete(RunInfo(kind="bench", name="bench", config=cfg, run_id="bench"),
                                                  bundle_state(untrained_bundle({"joint": cfg.model}, cfg)))
    rng = np.random.default_rng(seed)
    files = pd.Index([f"u{i}" for i in range(n_corpus)], name="file")
    embeddings = rng.normal(size=(n_corpus, 256)).astype(np.float32)
    latent = LatentSpace(files, 1, {}, {"cluster": embeddings, "latent": embeddings}, np.zeros(n_corpus, np.int64),
                         np.zeros(n_corpus, np.int64), np.ones((n_corpus, 1), np.float32), rng.normal(size=(10, 256)),
                         "bench", pd.DataFrame(index=files))
    return Locator(Exploration(run, "joint", pd.DataFrame(index=files), latent, folder),
                   rng.normal(size=(n_corpus, 2)).astype(np.float32))
