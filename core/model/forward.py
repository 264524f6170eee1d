"""The one forward path: every eval-mode pass of a network over chunks goes through `embed_chunks`.

Training's embedding passes and validation, exploring a corpus, `predict` and `locate` all call it, with
the same normalisation (`core.data.dataset.Normaliser`) and the same chunk -> utterance mean, so a clip
lands where its corpus point is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from core.config import AVD
from core.data.dataset import ChunkSet, Normaliser, utterance_mean
from core.data.loader import prefetched_inputs
from core.model.bundle import Normalisation
from core.model.network import EmotionCNN
from core.runtime.distributed import World

EMBED_BATCH_CHUNKS = 64  # chunks per forward pass: ~8 MB of activations each in the first layers


OUTPUTS = ("cluster_features", "latent", "attributes")


@dataclass(frozen=True)
class ChunkOutputs:
    """One network's outputs for every chunk of a chunk set, utterance-major (None: not asked for)."""
    cluster_features: np.ndarray | None  # (N*C, H) float32, cluster branch before its ReLU: the K-means space
    latent: np.ndarray | None  # (N*C, D) float32, shared latent block (dropout off)
    attributes: np.ndarray | None  # (N*C, A) float32, z-normalised predictions in `network.cfg.attributes` order


@torch.inference_mode()
def embed_chunks(model: EmotionCNN, chunk_set: ChunkSet, normaliser: Normaliser, world: World | None = None,
                 batch_chunks: int = EMBED_BATCH_CHUNKS, progress: Callable[[int, int], None] | None = None,
                 outputs: tuple[str, ...] = OUTPUTS) -> ChunkOutputs:
    """Eval-mode pass over every chunk of a chunk set (no dropout, BatchNorm running statistics).

    With several ranks each embeds its share of the batches and every rank receives all outputs: the
    batches are those of one process, so the outputs are the same. Each output asked for is one array
    filled in place (N*C x width float32: 1.7 GB for 1.65 M chunks of 256 values); the others are not kept.

    Args:
        model: on `normaliser.device`.
        world: the processes that share the pass (default: this one alone).
        progress: optional callback(done_batches, total_batches) over this rank's batches.
        outputs: the `ChunkOutputs` fields to return (K-means needs "cluster_features" only).
    """
    model.eval()
    world = world or World()
    mine = world.shard(math.ceil(len(chunk_set) / batch_chunks))
    first, stop = mine.start * batch_chunks, min(mine.stop * batch_chunks, len(chunk_set))
    widths = {"cluster_features": model.cfg.hidden_dim, "latent": model.cfg.latent_dim,
              "attributes": len(model.cfg.attributes)}
    local = {name: np.empty((max(stop - first, 0), widths[name]), np.float32) for name in outputs}
    batches = [np.arange(start, min(start + batch_chunks, stop)) for start in range(first, stop, batch_chunks)]
    for b, (index, inputs) in enumerate(zip(batches, prefetched_inputs(chunk_set, batches, normaliser))):
        out = model(inputs)
        values = {"cluster_features": out.cluster_features, "latent": out.embedding, "attributes": out.attributes}
        for name, array in local.items():
            array[index[0] - first: index[-1] + 1 - first] = values[name].float().cpu().numpy()
        if progress:
            progress(b + 1, len(mine))
    return ChunkOutputs(**{name: world.gather_rows(local[name]) if name in local else None for name in OUTPUTS})


def embed_networks(networks: dict[str, EmotionCNN], chunk_set: ChunkSet, normaliser: Normaliser, world: World | None = None,
                   progress: Callable[[str, int, int], None] | None = None) -> dict[str, ChunkOutputs]:
    """`embed_chunks` of every network of a bundle (moved to the normaliser's device, channels-last).

    Args:
        progress: optional callback(network name, done_batches, total_batches).
    """
    return {name: embed_chunks(net.to(normaliser.device, memory_format=torch.channels_last), chunk_set, normaliser, world,
                               progress=(lambda d, t, name=name: progress(name, d, t)) if progress else None)
            for name, net in networks.items()}


def chunk_predictions(networks: dict[str, EmotionCNN], outputs: dict[str, ChunkOutputs]) -> dict[str, np.ndarray]:
    """attribute -> (N*C,) float32 z-normalised chunk predictions, from whichever network predicts it, in AVD order."""
    found = {a: outputs[name].attributes[:, j] for name, net in networks.items() for j, a in enumerate(net.cfg.attributes)}
    return {a: found[a] for a in AVD if a in found}


def utterance_predictions(chunk_z: dict[str, np.ndarray], n_chunks: int, normalisation: Normalisation
                          ) -> dict[str, np.ndarray]:
    """attribute -> (N,) float64 predictions: the chunk mean in z-space (float32, as published), de-normalised."""
    return {a: normalisation.denormalise(a, utterance_mean(z[:, None], n_chunks)[:, 0]) for a, z in chunk_z.items()}
