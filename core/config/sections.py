"""Every configuration dataclass of a run, one per stage, composed into `RunConfig`; and its hash.

Configs are frozen, typed and validated on construction; nothing here touches disk or torch.
Every published number of the method (SPEC 2.1-2.4) is a default here or in `core.config.presets`, never a
literal elsewhere.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from typing import Any

AVD = ("arousal", "valence", "dominance")  # fixes column and vector order everywhere


@dataclass(frozen=True, kw_only=True)
class AudioConfig:
    sampling_rate: int = 16_000  # Hz; the published features are 16 kHz
    peak_normalise: bool = True  # published: signal / max|signal| per clip
    max_duration_s: float = 3600.0  # longer files are refused with a clear error

    def __post_init__(self):
        _check(self.sampling_rate >= 1000, f"sampling_rate must be >= 1000 Hz, got {self.sampling_rate}")
        _check(self.max_duration_s > 0, f"max_duration_s must be > 0, got {self.max_duration_s}")


@dataclass(frozen=True, kw_only=True)
class FeatureConfig:
    n_fft: int = 512  # samples (32 ms at 16 kHz)
    hop_length: int = 256  # samples (16 ms): ~62.5 frames per second
    n_mels: int = 128
    fmin_hz: float = 0.0
    fmax_hz: float | None = None  # None = Nyquist (8 kHz at 16 kHz)
    # librosa 0.7 padded centred frames by reflection; the published norm terms and checkpoints
    # were made that way (librosa >= 0.10 pads with zeros, which changes the first and last frame).
    pad_mode: str = "reflect"
    power: float = 2.0  # |X|^2
    log: bool = False  # the published model uses mel power values, not their logarithm
    clip: float = 3.0  # z-scores are clipped to [-clip, clip]

    def __post_init__(self):
        _check(self.n_fft >= 16, f"n_fft must be >= 16, got {self.n_fft}")
        _check(0 < self.hop_length <= self.n_fft, f"hop_length must be in (0, n_fft], got {self.hop_length}")
        _check(self.n_mels >= 1, f"n_mels must be >= 1, got {self.n_mels}")
        _check(self.pad_mode in ("reflect", "constant"), f"pad_mode must be 'reflect' or 'constant', got {self.pad_mode!r}")
        _check(self.power in (1.0, 2.0), f"power must be 1.0 or 2.0, got {self.power}")
        _check(self.clip > 0, f"clip must be > 0, got {self.clip}")


@dataclass(frozen=True, kw_only=True)
class ChunkConfig:
    n_chunks: int = 11  # C: chunks per utterance (Lin & Busso dynamic chunk splitting)
    chunk_frames: int = 62  # m: ~1 s at a 16 ms hop
    # Utterances shorter than one chunk: "pad" appends silence (zero mel power) up to m frames,
    # "drop" leaves them out of a corpus, "error" refuses them. The published code cannot handle them.
    short_policy: str = "pad"

    def __post_init__(self):
        _check(self.n_chunks >= 1, f"n_chunks must be >= 1, got {self.n_chunks}")
        _check(self.chunk_frames >= 16, f"chunk_frames must be >= 16 (the encoder downsamples 32x), got {self.chunk_frames}")
        _check(self.short_policy in ("pad", "drop", "error"),
               f"short_policy must be one of ['pad', 'drop', 'error'], got {self.short_policy!r}")


@dataclass(frozen=True, kw_only=True)
class LabelConfig:
    minimum: float = 1.0  # MSP-Podcast attribute scale 1..7
    maximum: float = 7.0

    def __post_init__(self):
        _check(self.minimum < self.maximum, f"label minimum must be < maximum, got {self.minimum} >= {self.maximum}")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    channels: tuple[int, ...] = (32, 32, 64, 64, 128, 128, 128)
    strides: tuple[int, ...] = (1, 1, 2, 2, 2, 2, 2)
    latent_dim: int = 256  # the shared latent block: the "latent embedding"
    hidden_dim: int = 256  # cluster and regression branches
    dropout: float = 0.5
    attributes: tuple[str, ...] = AVD  # one (published per-attribute models) or all three (joint)
    n_clusters: int = 10  # K of the cluster head (10 arousal, 30 valence/dominance as published)

    def __post_init__(self):
        _check(len(self.channels) == len(self.strides) >= 1,
               f"channels and strides must have the same non-zero length, got {len(self.channels)} and {len(self.strides)}")
        _check(all(s in (1, 2) for s in self.strides), f"strides must be 1 or 2, got {self.strides}")
        _check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        _check(len(self.attributes) >= 1 and set(self.attributes) <= set(AVD) and len(set(self.attributes)) == len(self.attributes),
               f"attributes must be distinct names from {list(AVD)}, got {list(self.attributes)}")
        _check(self.n_clusters >= 2, f"n_clusters must be >= 2, got {self.n_clusters}")

    @property
    def network_name(self) -> str:
        """The network's name in a trained run's bundle: "joint" (several attributes) or the one it predicts."""
        return "joint" if len(self.attributes) > 1 else self.attributes[0]


@dataclass(frozen=True, kw_only=True)
class ClusterConfig:
    n_iterations: int = 20  # Lloyd iterations per epoch, as published (faiss niter = 20)
    # The published code clusters the raw 256-d vectors; DeepCluster PCA-whitens and L2-normalises.
    pca_whiten: bool = False
    pca_dim: int = 64  # DeepCluster's whitening dimension, used only when pca_whiten
    backend: str = "auto"  # "sklearn", "faiss" (optional dependency) or "auto" (faiss when installed)

    def __post_init__(self):
        _check(self.n_iterations >= 1, f"n_iterations must be >= 1, got {self.n_iterations}")
        _check(self.pca_dim >= 2, f"pca_dim must be >= 2, got {self.pca_dim}")
        _check(self.backend in ("auto", "sklearn", "faiss"),
               f"backend must be one of ['auto', 'sklearn', 'faiss'], got {self.backend!r}")


PRECISIONS = ("fp32", "bf16", "auto")
LR_SCHEDULES = ("constant", "cosine")
KEEP_EPOCH_RULES = ("dev_ccc", "authors")
# section -> field -> the default that leaves run ids as they were
LATER_FIELDS = {"train": {"precision": "fp32", "lr_schedule": "constant", "joint_ce_weight": 1.0,
                          "time_mask_frames": 0, "freq_mask_bins": 0, "keep_epoch": "dev_ccc", "ccc_unbiased": False}}


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    epochs: int = 50
    batch_utterances: int = 64  # a batch holds this many utterances' worth of chunks (64 x 11 = 704)
    # Activations of this many chunks at a time (~6 MB each); None = the whole batch in one forward pass.
    # None is the published behaviour (BatchNorm statistics over all 704 chunks, one running-statistics update per
    # step: the paper presets): 11.4 GB peak RSS over one epoch (paper-arousal, demo corpus, 2-core CPU; 10.6-15.1
    # GB over 20-epoch runs, as glibc keeps freed blocks: `core.runtime.process`). 32 keeps a whole epoch under
    # 1.5 GB (64 is ~10 % faster at ~1.7 GB); gradients stay exact (the CCC uses the whole batch), but BatchNorm
    # then sees micro-batch statistics and its running statistics get one update per micro-batch.
    micro_batch_chunks: int | None = 32
    lr_sgd: float = 1e-3  # SGD on all but the head (the published cluster-loss optimiser)
    lr_adam: float = 5e-4  # Adam on all but the head, stepped on the joint loss too (as published)
    lr_head: float = 0.05  # SGD for the fresh K-way head, recreated every stage
    use_unlabelled: bool = True  # the self-supervised stage on the unlabelled pool (SPEC 2.4 step 1)
    max_unlabelled: int = 40_000  # utterances drawn from the unlabelled pool (published: 40 k)
    # The released code freezes the regression branch at its random init for the whole run
    # (SPEC 2.4); True reproduces that (paper preset), False trains it in the joint stage.
    freeze_regressor: bool = False
    device: str = "auto"  # "auto" = CUDA when available, else CPU
    # "fp32" as published, or "bf16": the training passes (forward + backward, the K-means embedding passes)
    # under bfloat16 autocast; validation, test, the centroids and all inference stay in float32. "auto":
    # bf16 where the device computes it in hardware, else fp32 (`core.model.network.resolve_precision`).
    precision: str = "fp32"
    # The body's SGD and Adam learning rates per epoch: "constant" as published, or "cosine", which scales
    # them by (1 + cos(pi * epoch / epochs)) / 2 (1 at the first epoch, towards 0 at the last). The fresh
    # head's rate stays constant: it is recreated every stage.
    lr_schedule: str = "constant"
    joint_ce_weight: float = 1.0  # w in the joint stage's w * CE + (1 - CCC) (published: 1)
    # Chunk masking of the training passes' inputs (SpecAugment, Park et al. 2019): per chunk, one run of at
    # most this many frames (time) and one of at most this many mel bins (frequency) set to the mean (0 after
    # normalisation); 0 = off, as published. K-means embedding passes, validation and inference never mask.
    time_mask_frames: int = 0
    freq_mask_bins: int = 0
    # The epoch a run keeps (`core.training.keeping`): "dev_ccc", the highest mean utterance-level dev CCC over the
    # whole dev split (the reported metric, SPEC 2.5), or "authors", the released code's lowest mean chunk-level
    # 1 - CCC (unbiased variances) over random dev batches of `batch_utterances` utterances (paper presets).
    keep_epoch: str = "dev_ccc"
    # The joint loss's CCC with unbiased (n - 1) variances, as the released code's `cc_coef` (torch.var's default;
    # paper presets), or population ones, the metric's (SPEC 2.5): a factor 704/703 on the variance terms.
    ccc_unbiased: bool = False

    def __post_init__(self):
        _check(self.keep_epoch in KEEP_EPOCH_RULES, f"keep_epoch must be one of {list(KEEP_EPOCH_RULES)}, got {self.keep_epoch!r}")
        _check(self.lr_schedule in LR_SCHEDULES,
               f"lr_schedule must be one of {list(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        _check(self.joint_ce_weight >= 0, f"joint_ce_weight must be >= 0, got {self.joint_ce_weight}")
        _check(min(self.time_mask_frames, self.freq_mask_bins) >= 0, "time_mask_frames and freq_mask_bins must be >= 0")
        _check(self.precision in PRECISIONS, f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        _check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _check(self.batch_utterances >= 2, f"batch_utterances must be >= 2 (CCC needs a spread), got {self.batch_utterances}")
        _check(self.micro_batch_chunks is None or self.micro_batch_chunks >= 1,
               f"micro_batch_chunks must be >= 1 or None (the whole batch), got {self.micro_batch_chunks}")
        _check(min(self.lr_sgd, self.lr_adam, self.lr_head) >= 0, "learning rates must be >= 0")
        _check(self.max_unlabelled >= 1, f"max_unlabelled must be >= 1, got {self.max_unlabelled}")


@dataclass(frozen=True, kw_only=True)
class UmapConfig:
    n_components: int = 2  # 2 or 3
    n_neighbors: int = 15  # umap-learn's defaults
    min_dist: float = 0.1
    metric: str = "euclidean"  # the K-means space is Euclidean
    space: str = "cluster"  # "cluster" (K-means space, the default map) or "latent" (shared latent block)
    sample_size: int = 50_000  # UMAP is fitted on at most this many utterances; the rest are placed
    placement_neighbors: int = 10  # k of the distance-weighted k-NN placement of new points
    random_state: int = 0

    def __post_init__(self):
        _check(self.n_components in (2, 3), f"n_components must be 2 or 3, got {self.n_components}")
        _check(self.n_neighbors >= 2, f"n_neighbors must be >= 2, got {self.n_neighbors}")
        _check(0.0 <= self.min_dist <= 1.0, f"min_dist must be in [0, 1], got {self.min_dist}")
        _check(self.space in ("cluster", "latent"), f"space must be 'cluster' or 'latent', got {self.space!r}")
        _check(self.sample_size >= 10, f"sample_size must be >= 10, got {self.sample_size}")
        _check(self.placement_neighbors >= 1, f"placement_neighbors must be >= 1, got {self.placement_neighbors}")


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    name: str = "run"
    audio: AudioConfig = field(default_factory=AudioConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    chunks: ChunkConfig = field(default_factory=ChunkConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0

    def __post_init__(self):
        _check(self.train.time_mask_frames < self.chunks.chunk_frames,
               f"train.time_mask_frames must be < chunks.chunk_frames ({self.chunks.chunk_frames}), got {self.train.time_mask_frames}")
        _check(self.train.freq_mask_bins < self.features.n_mels,
               f"train.freq_mask_bins must be < features.n_mels ({self.features.n_mels}), got {self.train.freq_mask_bins}")
        _check(self.name.replace("-", "").replace("_", "").isalnum(),
               f"name must be letters, digits, '-' or '_', got {self.name!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """What names a run (its id): the config, less the fields added after runs were stored while they keep
        their default (`LATER_FIELDS`), so those runs keep their ids."""
        data = self.to_dict()
        for section, fields in LATER_FIELDS.items():
            for name, value in fields.items():
                if data[section][name] == value:
                    del data[section][name]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        return _from_dict(cls, data)


def config_hash(cfg: Any) -> str:
    """sha256 of the config's sorted-key JSON (a dataclass or a plain dict)."""
    data = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else cfg
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=list).encode()).hexdigest()


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue  # older runs lack newer fields: the default applies
        value, tp = data[f.name], hints[f.name]
        if dataclasses.is_dataclass(tp):
            value = _from_dict(tp, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"unknown keys for {cls.__name__}: {sorted(unknown)}")
    return cls(**kwargs)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)
