"""The DeepEmoCluster training loop (SPEC 2.4): DeepCluster epochs on unlabelled and labelled chunks.

`train()` is the recipe; the helpers below it do one step each. What each finished epoch records, the epoch a
run keeps and the completed run are `core.training.keeping`'s; disk goes through `core.store.run_store`,
features through `core.data.extraction`, every eval-mode pass through `core.model.forward`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch

from core.config import RunConfig, config_hash
from core.data.dataset import ChunkSet, Normaliser, balanced_indices
from core.data.manifest import corpus_fingerprint
from core.model.augmentation import masked_batch, set_learning_rates
from core.model.clustering import PseudoLabeler
from core.model.forward import embed_chunks
from core.model.metrics import cluster_stability
from core.model.network import EmotionCNN, autocast, dropout_mask, resolve_precision
from core.model.objective import BatchStep, cluster_backward, joint_backward, local_batches, split_batch
from core.runtime.device import resolve_device
from core.runtime.distributed import BatchNormReplay, World, data_parallel, synchronise_batchnorm
from core.store.run_store import Run, RunInfo, RunLockedError, RunStore, RunWriter
from core.training.checks import TrainingConfigError, check_split_hygiene, check_trainable
from core.training.epoch_space import EpochSpace, epoch_space
from core.training.keeping import DevScores, EpochStats, complete, finish_epoch, restore, validate
from core.training.training_data import prepare_training_data

_LABELLED_SEED_OFFSET = 7919  # the labelled stage's K-means seed differs from the unlabelled stage's
_FINAL_SEED_OFFSET = 104729  # and the K-means that gives the kept model its centroids from both
_STAGE_SEEDS = {"train unlabelled": 1, "train joint": 2}  # dropout masks differ between the stages
_MASK_SEED = 3  # the chunk masks' draw differs from the dropout masks' of the same batch

__all__ = ["EpochStats", "TrainProgress", "TrainResult", "TrainingConfigError", "run_id_for", "train"]


@dataclass(frozen=True)
class TrainProgress:
    stage: str  # "features", "resume", "embed/train unlabelled", "embed labelled", "clustered", "train joint", "validate"
    epoch: int  # 0-based
    epochs: int
    done: int  # batches (or files) done in this stage
    total: int
    eta_s: float | None = None  # seconds left for the whole run, once an epoch has finished
    dev_ccc: dict[str, float] | None = None  # after "validate"
    dev_chunk_loss: float | None = None  # after "validate": the released code's criterion (`core.training.keeping`)
    kept: bool | None = None  # after "validate": whether the run's rule (`train.keep_epoch`) keeps this epoch so far
    space: EpochSpace | None = None  # after "clustered": the labelled utterances as this epoch's K-means saw them


@dataclass(frozen=True)
class TrainResult:
    run: Run
    history: pd.DataFrame  # one row per epoch (EpochStats fields)
    test_ccc: dict[str, dict[str, float]]  # split -> attribute -> CCC (best checkpoint)
    trained: bool  # False when an existing run was loaded


def train(cfg: RunConfig, corpus: pd.DataFrame, runs: RunStore, cache_root: Path, *, force: bool = False,
          progress: Callable[[TrainProgress], None] | None = None, workers: int | None = None,
          world: World | None = None, allow_speaker_overlap: bool = False,
          allow_duplicate_audio: bool = False) -> TrainResult:
    """Train (or load, or resume) the run of `cfg` on `corpus`.

    Args:
        corpus: utterance table (`core.data.manifest`): train/dev(/test) labelled, "unlabelled" rows for step 1.
        runs: the run store; the run id is derived from the config and the corpus fingerprint.
        cache_root: feature-store root (features are extracted once per corpus and feature config).
        force: retrain even if the run exists.
        world: the processes of a torchrun job (`core.runtime.distributed`); rank 0 alone writes the run.
        allow_speaker_overlap, allow_duplicate_audio: train although "train" shares speakers, or train or
            unlabelled share audio, with dev/test (`core.training.checks.check_split_hygiene`); the run's
            `RunInfo.split_overlap` records what was allowed. Neither changes the run id.

    Raises:
        TrainingConfigError: before any work, when the corpus and config cannot be trained together, or
            its splits leak and that was not allowed.
        RunLockedError: another process is training the same run.
    """
    if world is None or world.size == 1:  # a process of its own trains on the device its config names
        world = World(device=resolve_device(cfg.train.device))
    info = run_info(cfg, corpus)
    world.check_same(info.run_id, "the config and corpus (their run id)")
    check_trainable(cfg, corpus, world.size)
    info = dataclasses.replace(info, split_overlap=check_split_hygiene(  # refused unless allowed; else recorded
        corpus, allow_speaker_overlap=allow_speaker_overlap, allow_duplicate_audio=allow_duplicate_audio).message)
    if not force and (existing := runs.find(info.run_id)):  # same config + corpus -> reuse the run
        return _result(existing, trained=False)
    report = progress or (lambda p: None)
    with _opened(runs, info, corpus, force, world) as writer:
        data = prepare_training_data(cfg, corpus, cache_root, workers, world=world,
                                     progress=lambda d, t: report(TrainProgress("features", 0, cfg.train.epochs, d, t)))
        seed_everything(cfg.seed)  # torch weight init and heads; dropout masks and sampling use explicit seeds
        model = _new_model(cfg).to(data.normaliser.device, memory_format=torch.channels_last)
        if cfg.train.micro_batch_chunks is None:  # BatchNorm over the whole batch, on every rank's chunks
            synchronise_batchnorm(model, world)
        optimisers = _optimisers(model, cfg)
        state = restore(writer, model, optimisers)  # resumes after the last completed epoch
        if state.epoch:
            report(TrainProgress("resume", state.epoch - 1, cfg.train.epochs, state.epoch, cfg.train.epochs))
        for epoch in range(state.epoch, cfg.train.epochs):
            set_learning_rates(optimisers, cfg.train, epoch)  # constant as published, or the recipe's schedule
            ep = _Epoch(epoch, model, optimisers, data.normaliser, cfg, np.random.default_rng([cfg.seed, epoch]), report,
                        world)
            cluster_loss, unlabelled_sizes = float("nan"), []
            if data.unlabelled is not None:  # step 1: self-supervised stage on unlabelled chunks
                vectors = _embed(ep, data.unlabelled, "embed unlabelled")  # (N*C, 256) pre-ReLU cluster branch
                pseudo = _kmeans(ep, vectors, seed=cfg.seed + epoch)
                model.reset_cluster_head(cfg.model.n_clusters)  # DeepCluster: pseudo-labels change meaning
                cluster_loss = _fit_clusters(ep, data.unlabelled, pseudo.labels_)  # CE only, regressor frozen
                unlabelled_sizes = pseudo.cluster_sizes().tolist()
            vectors = _embed(ep, data.train, "embed labelled")  # step 2: the same on labelled chunks ...
            pseudo = _kmeans(ep, vectors, seed=cfg.seed + epoch + _LABELLED_SEED_OFFSET)
            if progress is not None:  # a watcher's live map of this epoch (torchrun's other ranks have none)
                ep.report(TrainProgress("clustered", epoch, cfg.train.epochs, 1, 1, space=epoch_space(
                    epoch, data.train, vectors, pseudo.labels_, cfg.model.n_clusters, seed=cfg.seed)))
            model.reset_cluster_head(cfg.model.n_clusters)
            joint_ce, joint_ccc = _fit_joint(ep, data.train, pseudo.labels_)  # ... then CE + (1 - CCC)
            dev = _validate(ep, data.dev)  # step 3: the dev split decides which epoch is kept (train.keep_epoch)
            stats = EpochStats(epoch, cluster_loss, joint_ce, joint_ccc, dev.ccc, dev.chunk_loss,
                               cluster_stability(state.previous_pseudo, pseudo.labels_), pseudo.cluster_sizes().tolist(),
                               unlabelled_sizes, ep.seconds, data.n_trained_chunks,
                               resolve_precision(data.normaliser.device, cfg.train.precision))
            state = finish_epoch(writer, state, stats, pseudo, model, optimisers, data, cfg, world)  # + checkpoint
            if world.is_main:
                report(TrainProgress("validate", epoch, cfg.train.epochs, 1, 1, state.eta_s(cfg.train.epochs), dev.ccc,
                                     dev.chunk_loss, state.history[-1]["best"]))
        complete(writer, data, cfg, corpus, world, _labeler(cfg, cfg.seed + _FINAL_SEED_OFFSET))  # the kept epoch's
        return _result(runs.load(info.run_id), trained=True)


def run_id_for(cfg: RunConfig, corpus: pd.DataFrame) -> str:
    """`<name>-<hash8>` of the full config and the corpus fingerprint: same inputs, same run."""
    return f"{cfg.name}-{config_hash({'config': cfg.identity(), 'corpus': corpus_fingerprint(corpus)})[:8]}"


def run_info(cfg: RunConfig, corpus: pd.DataFrame) -> RunInfo:
    """The `RunInfo` of training `cfg` on `corpus`."""
    return RunInfo(kind="trained", name=cfg.name, config=cfg, run_id=run_id_for(cfg, corpus),
                   corpus_fingerprint=corpus_fingerprint(corpus),
                   corpus_size={s: int(n) for s, n in corpus["split"].value_counts().items()})


def seed_everything(seed: int) -> None:
    """The only global seeding (STYLE rule 7): torch's generator for weight init, dropout and heads."""
    random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def _opened(runs: RunStore, info: RunInfo, corpus: pd.DataFrame, force: bool, world: World) -> Iterator[RunWriter]:
    """The run, locked and written by rank 0; read by the other ranks once rank 0 has prepared it."""
    with contextlib.ExitStack() as stack:
        writer, error = None, None
        if world.is_main:
            try:
                writer = stack.enter_context(runs.writer(info))
                if force:
                    writer.reset()
                writer.save_corpus(corpus)  # analysis later needs the very table the run was trained on
            except RunLockedError as err:
                error = err
        if (error := world.broadcast(error)) is not None:  # every rank stops, not only rank 0
            raise error
        yield writer or runs.reader(info)


@dataclass
class _Epoch:
    """What every step of one epoch works with."""
    index: int
    model: EmotionCNN
    optimisers: dict[str, torch.optim.Optimizer]  # "sgd", "adam": all parameters but the per-epoch head
    normaliser: Normaliser
    cfg: RunConfig
    rng: np.random.Generator  # this epoch's sampling: seeded by (seed, epoch), so a resume draws the same
    report: Callable[[TrainProgress], None]
    world: World
    seconds: dict[str, float] = field(default_factory=dict)
    _open: tuple[str, float] | None = None  # the stage being timed: (timer, start)

    def stage(self, name: str, timer: str) -> Callable[[int, int], None]:
        """A progress callback for stage `name`; the time until the next `stage()` call adds to `seconds[timer]`."""
        self._close()
        self._open = (timer, time.perf_counter())
        return lambda done, total: self.report(TrainProgress(name, self.index, self.cfg.train.epochs, done, total))

    def _close(self) -> None:
        if self._open is not None:
            timer, t0 = self._open
            self.seconds[timer] = self.seconds.get(timer, 0.0) + time.perf_counter() - t0
            self._open = None


def _new_model(cfg: RunConfig) -> EmotionCNN:
    return EmotionCNN(cfg.model, cfg.chunks.chunk_frames, cfg.features.n_mels)


def _optimisers(model: EmotionCNN, cfg: RunConfig) -> dict[str, torch.optim.Optimizer]:
    # As published: SGD and Adam over every parameter but the per-epoch head, both stepped on the joint loss.
    body = [p for name, p in model.named_parameters() if not name.startswith("cluster_head.")]
    return {"sgd": torch.optim.SGD(body, lr=cfg.train.lr_sgd), "adam": torch.optim.Adam(body, lr=cfg.train.lr_adam)}


def _embed(ep: _Epoch, chunk_set: ChunkSet, stage: str) -> np.ndarray:
    """(N*C, H) cluster-branch vectors before the ReLU, in eval mode: the space K-means clusters (every
    rank embeds its share, every rank gets all: K-means then gives the same pseudo-labels everywhere)."""
    with autocast(ep.normaliser.device, ep.cfg.train.precision):
        return embed_chunks(ep.model, chunk_set, ep.normaliser, ep.world, progress=ep.stage(stage, "embed"),
                            outputs=("cluster_features",)).cluster_features


def _kmeans(ep: _Epoch, vectors: np.ndarray, seed: int) -> PseudoLabeler:
    ep.stage("k-means", "kmeans")
    return _labeler(ep.cfg, seed).fit(vectors)


def _labeler(cfg: RunConfig, seed: int) -> PseudoLabeler:
    return PseudoLabeler(cfg.model.n_clusters, n_iterations=cfg.cluster.n_iterations,
                         pca_dim=cfg.cluster.pca_dim if cfg.cluster.pca_whiten else None,
                         backend=cfg.cluster.backend, random_state=seed)


def _fit_clusters(ep: _Epoch, chunk_set: ChunkSet, pseudo: np.ndarray) -> float:
    """Step 1: cross-entropy on the pseudo-labels, the regression branch frozen; mean loss over batches."""
    _set_trainable(ep.model.regressor, False)
    losses = _fit(ep, chunk_set, pseudo, "train unlabelled", [ep.optimisers["sgd"]], cluster_backward)
    _set_trainable(ep.model.regressor, not ep.cfg.train.freeze_regressor)
    return float(np.mean(losses))


def _fit_joint(ep: _Epoch, chunk_set: ChunkSet, pseudo: np.ndarray) -> tuple[float, float]:
    """Step 2: loss = CE + (1 - CCC) over each batch; mean CE and mean 1 - CCC over batches."""
    _set_trainable(ep.model.regressor, not ep.cfg.train.freeze_regressor)
    # published order: SGD, Adam and the head all step on the same gradients
    losses = _fit(ep, chunk_set, pseudo, "train joint", [ep.optimisers["sgd"], ep.optimisers["adam"]], joint_backward)
    return float(np.mean([l.cross_entropy for l in losses])), float(np.mean([l.ccc_loss for l in losses]))


def _fit(ep: _Epoch, chunk_set: ChunkSet, pseudo: np.ndarray, stage: str, optimisers: list, backward) -> list:
    """One stage's pass: uniform-per-cluster batches (one global list from the shared seed), a gradient per
    batch (`core.model.objective`), then the optimisers and the fresh head's SGD; returns each batch's loss."""
    report, model, cfg = ep.stage(stage, "train"), ep.model, ep.cfg
    head = torch.optim.SGD(model.cluster_head.parameters(), lr=cfg.train.lr_head)
    model.train()
    step = BatchStep(model, data_parallel(model, ep.world), chunk_set, torch.from_numpy(pseudo).to(ep.normaliser.device),
                     ep.normaliser, cfg.train.micro_batch_chunks, ep.world, BatchNormReplay(model, ep.world),
                     cfg.train.precision, cfg.train.joint_ce_weight, cfg.train.ccc_unbiased)
    batches = split_batch(balanced_indices(pseudo, len(chunk_set), ep.rng), cfg.train.batch_utterances * cfg.chunks.n_chunks)
    losses = []
    for b, batch in enumerate(local_batches(step, batches)):  # this rank's inputs gathered ahead (`core.data.loader`)
        for opt in (*optimisers, head):
            opt.zero_grad(set_to_none=True)
        batch = masked_batch(batch, cfg, seed=[cfg.seed, ep.index, _STAGE_SEEDS[stage], b, _MASK_SEED])  # if asked
        losses.append(backward(step, batch, _dropout_masks(ep, stage, b, len(batch.index))))
        for opt in (*optimisers, head):
            opt.step()
        report(b + 1, len(batches))
    return losses


def _dropout_masks(ep: _Epoch, stage: str, batch: int, n_chunks: int) -> torch.Tensor:
    """(B, D) dropout masks of one batch, by global chunk position, from (seed, epoch, stage, batch): the
    same whichever rank or micro-batch a chunk lands in."""
    seed = np.random.default_rng([ep.cfg.seed, ep.index, _STAGE_SEEDS[stage], batch]).integers(2 ** 62)
    return dropout_mask(n_chunks, ep.cfg.model.latent_dim, ep.cfg.model.dropout, torch.Generator().manual_seed(int(seed)))


def _validate(ep: _Epoch, dev: ChunkSet) -> DevScores:
    """Step 3: both kept-epoch criteria on the dev split, from one eval-mode pass (`core.training.keeping`)."""
    ep.stage("validate", "validate")
    scores = validate(ep.model, dev, ep.normaliser, ep.cfg, ep.world)
    ep._close()
    return scores


def _set_trainable(module: torch.nn.Module, trainable: bool) -> None:
    module.requires_grad_(trainable)


def _result(run: Run, trained: bool) -> TrainResult:
    metrics = run.metrics()
    return TrainResult(run, run.history(), metrics.test_ccc if metrics else {}, trained)
