"""The DeepEmoCluster CNN (SPEC 2.3): a strided VGG-style encoder, a shared latent block, a cluster
branch with a per-epoch K-way head, and a regression branch for the emotional attributes.

Plain nn.Module; no training logic, no disk.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import nn

from core.config import ChunkConfig, FeatureConfig, ModelConfig


@dataclass(frozen=True)
class ModelOutput:
    embedding: torch.Tensor  # (B, D) shared latent block output (after ReLU and dropout)
    cluster_features: torch.Tensor  # (B, H) cluster branch hidden layer *before* its ReLU: K-means space
    cluster_logits: torch.Tensor  # (B, K)
    attributes: torch.Tensor  # (B, A) z-normalised attribute predictions


class EmotionCNN(nn.Module):
    """DeepEmoCluster network (Lin, Sridhar & Busso, ICASSP 2021), ~0.83 M parameters at A = 1, K = 10.

    Input (B, 1, m, F) = (B, 1, 62, 128) normalised mel chunks.
    """

    def __init__(self, cfg: ModelConfig = ModelConfig(), chunk_frames: int = ChunkConfig().chunk_frames,
                 n_mels: int = FeatureConfig().n_mels):
        super().__init__()
        self.cfg = cfg
        layers, in_channels, t, f = [], 1, chunk_frames, n_mels
        for out_channels, stride in zip(cfg.channels, cfg.strides):
            layers += [nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1),
                       nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
            in_channels, t, f = out_channels, (t - 1) // stride + 1, (f - 1) // stride + 1
        self.encoder = nn.Sequential(*layers)  # (B, 128, 2, 4) for a 62 x 128 input
        # Linear + ReLU, then dropout (its mask given by training or drawn here): the published block, whose
        # state-dict keys (`latent.0.*`) are unchanged by keeping the dropout apart
        self.latent = nn.Sequential(nn.Linear(in_channels * t * f, cfg.latent_dim), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(cfg.dropout)
        self.cluster_hidden = nn.Linear(cfg.latent_dim, cfg.hidden_dim)
        self.cluster_head = nn.Linear(cfg.hidden_dim, cfg.n_clusters)
        self.regressor = nn.Sequential(nn.Linear(cfg.latent_dim, cfg.hidden_dim), nn.ReLU(inplace=True),
                                       nn.Linear(cfg.hidden_dim, len(cfg.attributes)))
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor, dropout_mask: torch.Tensor | None = None) -> ModelOutput:
        """Args:
            x: (B, 1, m, F) normalised chunks.
            dropout_mask: (B, D) keep-mask of the latent block's dropout, already divided by the keep
                probability (`dropout_mask`); None draws one from torch's generator. Ignored in eval mode.
        """
        embedding = self.latent(self.encoder(x).flatten(1))  # (B, D)
        if self.training and dropout_mask is not None:
            embedding = embedding * dropout_mask
        else:
            embedding = self.dropout(embedding)
        cluster_features = self.cluster_hidden(embedding)  # (B, H), pre-ReLU
        cluster_logits = self.cluster_head(torch.relu(cluster_features))  # (B, K)
        return ModelOutput(embedding, cluster_features, cluster_logits, self.regressor(embedding))

    def reset_cluster_head(self, n_clusters: int) -> None:
        """A fresh K-way head with a new random init (DeepCluster: pseudo-labels change meaning each epoch)."""
        p = self.cluster_head.weight
        self.cluster_head = nn.Linear(self.cfg.hidden_dim, n_clusters).to(device=p.device, dtype=p.dtype)
        _init_weights(self.cluster_head)

    @property
    def n_clusters(self) -> int:
        return self.cluster_head.out_features


def dropout_mask(n_rows: int, width: int, p: float, generator: torch.Generator) -> torch.Tensor:
    """(n_rows, width) inverted-dropout keep-mask: 1 / (1 - p) with probability 1 - p, else 0 (float32, CPU)."""
    if p == 0.0:
        return torch.ones(n_rows, width)
    return torch.bernoulli(torch.full((n_rows, width), 1.0 - p), generator=generator) / (1.0 - p)


def resolve_precision(device: torch.device, precision: str) -> str:
    """"auto" -> "bf16" where `device` computes bfloat16 in hardware (a CUDA GPU that does, a CPU with
    AVX512-BF16 or AMX), else "fp32", where bf16 would be emulated and slower; anything else as given."""
    if precision != "auto":
        return precision
    return "bf16" if _native_bf16(device.type, device.index) else "fp32"


@functools.lru_cache(maxsize=None)
def _native_bf16(device_type: str, index: int | None) -> bool:
    if device_type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device_type == "cpu":  # torch.cpu's own probes (not public API, hence getattr)
        probes = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
        return any(probe is not None and probe() for probe in probes)
    return False


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The forward passes' precision (`train.precision`): "fp32", or "bf16" autocast (convolutions and
    linear layers in bfloat16, BatchNorm statistics, losses and the optimiser in float32), or "auto"
    (`resolve_precision`)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=resolve_precision(device, precision) == "bf16")


def _init_weights(m: nn.Module) -> None:
    # Published init (DeepCluster's VGG): He-style normal for convs over k*k*out_channels.
    if isinstance(m, nn.Conv2d):
        n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
        nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, 0.0, 0.01)
        nn.init.zeros_(m.bias)


def official_state_dict(checkpoint_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a published DeepEmoClusters state dict onto `EmotionCNN` names.

    The authors saved two blocks through nn.DataParallel, so `.module` sits in the middle of their keys
    (`cnn_features.module.<i>.*`, `cnn_out.module.0.*`); the Sequential indices are the same as ours.
    """
    renames = {"cnn_features.module.": "encoder.", "cnn_out.module.": "latent.",
               "classifier.0.": "cluster_hidden.", "top_layer_class.": "cluster_head.",
               "emo_regressor.0.": "regressor.0.", "top_layer_attri.": "regressor.2."}
    out = {}
    for key, value in checkpoint_state.items():
        prefix = next((p for p in renames if key.startswith(p)), None)
        if prefix is None:
            raise KeyError(f"unexpected key {key!r} in a published DeepEmoClusters checkpoint")
        out[renames[prefix] + key[len(prefix):]] = value
    return out
