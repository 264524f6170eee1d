"""The DeepEmoCluster training loop (SPEC 2.4): DeepCluster epochs on unlabelled and labelled chunks.

`train()` is the recipe; the helpers below it do one step each. Disk goes through `core.run_store`,
features through `core.extraction`, every eval-mode pass through `core.forward`.
"""
from __future__ import annotations

import dataclasses
import math
import random
import time
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from core.bundle import ModelBundle, Normalisation
from core.clustering import PseudoLabeler
from core.config import RunConfig, config_hash
from core.dataset import ChunkSet, Normaliser, balanced_indices, feature_statistics, load_chunks, make_chunk_set, \
    utterance_mean
from core.extraction import extract_features
from core.feature_store import FeatureStore
from core.forward import embed_chunks
from core.manifest import corpus_fingerprint
from core.metrics import attribute_ccc, cluster_stability
from core.model import EmotionCNN, resolve_device
from core.run_store import Checkpoint, Run, RunInfo, RunMetrics, RunStore, RunWriter
from core.objective import joint_backward, split_batch
from core.train_checks import TrainingConfigError, check_trainable

TEST_SPLITS = ("test", "test2", "test3")
_LABELLED_SEED_OFFSET = 7919  # the labelled stage's K-means seed differs from the unlabelled stage's
_FINAL_SEED_OFFSET = 104729  # and the K-means that gives the kept model its centroids from both

__all__ = ["EpochStats", "TrainProgress", "TrainResult", "TrainingConfigError", "evaluate", "run_id_for", "train"]


@dataclass(frozen=True)
class TrainProgress:
    stage: str  # "features", "resume", "embed unlabelled", "train unlabelled", "embed labelled", "train joint", "validate"
    epoch: int  # 0-based
    epochs: int
    done: int  # batches (or files) done in this stage
    total: int
    eta_s: float | None = None  # seconds left for the whole run, once an epoch has finished
    dev_ccc: dict[str, float] | None = None  # after "validate"


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    cluster_loss: float  # cross-entropy of the unlabelled stage (NaN without unlabelled data)
    joint_ce: float  # cross-entropy of the joint stage
    joint_ccc_loss: float  # 1 - CCC of the joint stage (mean over attributes and batches)
    dev_ccc: dict[str, float]  # utterance-level CCC per attribute on the dev split
    nmi_previous: float  # NMI of the labelled chunks' pseudo-labels vs the previous epoch
    cluster_sizes: list[int]  # labelled chunks per cluster
    unlabelled_cluster_sizes: list[int]
    seconds: dict[str, float]  # wall time per stage: embed, kmeans, train, validate
    trained_chunks: int  # chunks through forward + backward this epoch


@dataclass(frozen=True)
class TrainResult:
    run: Run
    history: pd.DataFrame  # one row per epoch (EpochStats fields)
    test_ccc: dict[str, dict[str, float]]  # split -> attribute -> CCC (best checkpoint)
    trained: bool  # False when an existing run was loaded


def train(cfg: RunConfig, corpus: pd.DataFrame, runs: RunStore, cache_root: Path, *, force: bool = False,
          progress: Callable[[TrainProgress], None] | None = None, workers: int | None = None) -> TrainResult:
    """Train (or load, or resume) the run of `cfg` on `corpus`.

    Args:
        corpus: utterance table (`core.manifest`): train/dev(/test) labelled, "unlabelled" rows for step 1.
        runs: the run store; the run id is derived from the config and the corpus fingerprint.
        cache_root: feature-store root (features are extracted once per corpus and feature config).
        force: retrain even if the run exists.

    Raises:
        TrainingConfigError: before any work, when the corpus and config cannot be trained together.
        RunLockedError: another process is training the same run.
    """
    check_trainable(cfg, corpus)
    info = run_info(cfg, corpus)
    if not force and (existing := runs.find(info.run_id)):  # same config + corpus -> reuse the run
        return _result(existing, trained=False)
    report = progress or (lambda p: None)
    with runs.writer(info) as writer:
        if force:
            writer.reset()
        writer.save_corpus(corpus)  # analysis later needs the very table the run was trained on
        data = _prepare_data(cfg, corpus, cache_root, workers, report)
        seed_everything(cfg.seed)  # torch weight init and dropout; numpy randomness uses explicit Generators
        model = _new_model(cfg).to(data.normaliser.device, memory_format=torch.channels_last)
        optimisers = _optimisers(model, cfg)
        state = _restore(writer, model, optimisers, cfg, report)  # resumes after the last completed epoch
        for epoch in range(state.epoch, cfg.train.epochs):
            ep = _Epoch(epoch, model, optimisers, data.normaliser, cfg, np.random.default_rng([cfg.seed, epoch]), report)
            cluster_loss, unlabelled_sizes = float("nan"), []
            if data.unlabelled is not None:  # step 1: self-supervised stage on unlabelled chunks
                vectors = _embed(ep, data.unlabelled, "embed unlabelled")  # (N*C, 256) pre-ReLU cluster branch
                pseudo = _kmeans(ep, vectors, seed=cfg.seed + epoch)
                model.reset_cluster_head(cfg.model.n_clusters)  # DeepCluster: pseudo-labels change meaning
                cluster_loss = _fit_clusters(ep, data.unlabelled, pseudo.labels_)  # CE only, regressor frozen
                unlabelled_sizes = pseudo.cluster_sizes().tolist()
            vectors = _embed(ep, data.train, "embed labelled")  # step 2: the same on labelled chunks ...
            pseudo = _kmeans(ep, vectors, seed=cfg.seed + epoch + _LABELLED_SEED_OFFSET)
            model.reset_cluster_head(cfg.model.n_clusters)
            joint_ce, joint_ccc = _fit_joint(ep, data.train, pseudo.labels_)  # ... then CE + (1 - CCC)
            dev_ccc = _validate(ep, data.dev)  # step 3: dev CCC picks the checkpoint that is kept
            stats = EpochStats(epoch, cluster_loss, joint_ce, joint_ccc, dev_ccc,
                               cluster_stability(state.previous_pseudo, pseudo.labels_), pseudo.cluster_sizes().tolist(),
                               unlabelled_sizes, ep.seconds, data.n_trained_chunks)
            state = _finish_epoch(writer, ep, data, state, stats, pseudo)
        return _complete(writer, data, cfg)


def run_id_for(cfg: RunConfig, corpus: pd.DataFrame) -> str:
    """`<name>-<hash8>` of the full config and the corpus fingerprint: same inputs, same run."""
    return f"{cfg.name}-{config_hash({'config': cfg.to_dict(), 'corpus': corpus_fingerprint(corpus)})[:8]}"


def run_info(cfg: RunConfig, corpus: pd.DataFrame) -> RunInfo:
    """The `RunInfo` of training `cfg` on `corpus`."""
    return RunInfo(kind="trained", name=cfg.name, config=cfg, run_id=run_id_for(cfg, corpus),
                   corpus_fingerprint=corpus_fingerprint(corpus),
                   corpus_size={s: int(n) for s, n in corpus["split"].value_counts().items()})


def seed_everything(seed: int) -> None:
    """The only global seeding (STYLE rule 7): torch's generator for weight init, dropout and heads."""
    random.seed(seed)
    torch.manual_seed(seed)


def evaluate(model: EmotionCNN, chunk_set: ChunkSet, normaliser: Normaliser, attributes: tuple[str, ...]
             ) -> dict[str, float]:
    """Utterance-level CCC per attribute (`core.metrics.attribute_ccc`): each utterance's chunk mean vs its label."""
    out = embed_chunks(model, chunk_set, normaliser)
    return attribute_ccc(chunk_set.targets, utterance_mean(out.attributes, chunk_set.n_chunks), attributes)


@dataclass
class _Data:
    train: ChunkSet
    dev: ChunkSet
    tests: dict[str, ChunkSet]
    unlabelled: ChunkSet | None
    normalisation: Normalisation
    normaliser: Normaliser  # the training split's feature statistics on the training device

    @property
    def n_trained_chunks(self) -> int:  # chunks through forward + backward per epoch
        return len(self.train) + (len(self.unlabelled) if self.unlabelled is not None else 0)


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


@dataclass
class _State:
    epoch: int = 0  # epochs completed
    best_score: float = -math.inf
    previous_pseudo: np.ndarray | None = None
    history: list[dict] = field(default_factory=list)
    assignments: list[np.ndarray] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    first_epoch: int = 0  # of this process (for the ETA)


def _new_model(cfg: RunConfig) -> EmotionCNN:
    return EmotionCNN(cfg.model, cfg.chunks.chunk_frames, cfg.features.n_mels)


def _prepare_data(cfg: RunConfig, corpus: pd.DataFrame, cache_root: Path, workers, report) -> _Data:
    store = FeatureStore(cache_root, cfg.audio, cfg.features, cfg.chunks)
    features = extract_features(corpus, store, cfg.audio, cfg.features, cfg.chunks, workers=workers,
                                progress=lambda d, t: report(TrainProgress("features", 0, cfg.train.epochs, d, t))).features
    usable = corpus.loc[corpus.index.isin(features.files)]
    attributes = list(cfg.model.attributes)
    train_rows = usable[usable["split"] == "train"]
    label_mean, label_std = train_rows[attributes].mean(), train_rows[attributes].std(ddof=0).replace(0, 1)
    statistics = feature_statistics(features, train_rows.index)  # training split only
    feature_mean, feature_std = statistics.mean, statistics.std

    def chunk_set(rows: pd.DataFrame, labelled: bool = True) -> ChunkSet:
        targets = ((rows[attributes] - label_mean) / label_std).to_numpy(np.float32) if labelled else None
        return make_chunk_set(features, rows.index, cfg.chunks, targets)

    unlabelled = None
    if cfg.train.use_unlabelled:
        pool = usable[usable["split"] == "unlabelled"]
        if len(pool) > cfg.train.max_unlabelled:  # published: a random 40 k of the unlabelled pool
            keep = np.random.default_rng(cfg.seed).choice(len(pool), cfg.train.max_unlabelled, replace=False)
            pool = pool.iloc[np.sort(keep)]
        unlabelled = chunk_set(pool, labelled=False)
    normaliser = Normaliser.from_statistics(feature_mean, feature_std, cfg.features.clip, resolve_device(cfg.train.device))
    return _Data(chunk_set(train_rows), chunk_set(usable[usable["split"] == "dev"]),
                 {s: chunk_set(usable[usable["split"] == s]) for s in TEST_SPLITS if (usable["split"] == s).any()},
                 unlabelled, Normalisation(feature_mean, feature_std, label_mean.to_dict(), label_std.to_dict()), normaliser)


def _optimisers(model: EmotionCNN, cfg: RunConfig) -> dict[str, torch.optim.Optimizer]:
    # As published: SGD and Adam over every parameter but the per-epoch head, both stepped on the joint loss.
    body = [p for name, p in model.named_parameters() if not name.startswith("cluster_head.")]
    return {"sgd": torch.optim.SGD(body, lr=cfg.train.lr_sgd), "adam": torch.optim.Adam(body, lr=cfg.train.lr_adam)}


def _embed(ep: _Epoch, chunk_set: ChunkSet, stage: str) -> np.ndarray:
    """(N*C, H) cluster-branch vectors before the ReLU, in eval mode: the space K-means clusters."""
    return embed_chunks(ep.model, chunk_set, ep.normaliser, progress=ep.stage(stage, "embed")).cluster_features


def _kmeans(ep: _Epoch, vectors: np.ndarray, seed: int) -> PseudoLabeler:
    ep.stage("k-means", "kmeans")
    return _labeler(ep.cfg, seed).fit(vectors)


def _labeler(cfg: RunConfig, seed: int) -> PseudoLabeler:
    return PseudoLabeler(cfg.model.n_clusters, n_iterations=cfg.cluster.n_iterations,
                         pca_dim=cfg.cluster.pca_dim if cfg.cluster.pca_whiten else None,
                         backend=cfg.cluster.backend, random_state=seed)


def _balanced_batches(ep: _Epoch, pseudo: np.ndarray, n: int) -> list[np.ndarray]:
    """Uniform-per-cluster sampling (DeepCluster), cut into batches of `batch_utterances` x C chunks."""
    order = balanced_indices(pseudo, n, ep.rng)
    return split_batch(order, ep.cfg.train.batch_utterances * ep.cfg.chunks.n_chunks)


def _fit_clusters(ep: _Epoch, chunk_set: ChunkSet, pseudo: np.ndarray) -> float:
    """Step 1: cross-entropy on the pseudo-labels, the regression branch frozen; mean loss over batches."""
    report, model, cfg = ep.stage("train unlabelled", "train"), ep.model, ep.cfg
    head = torch.optim.SGD(model.cluster_head.parameters(), lr=cfg.train.lr_head)
    _set_trainable(model.regressor, False)
    model.train()
    labels, losses = torch.from_numpy(pseudo).to(ep.normaliser.device), []
    batches = _balanced_batches(ep, pseudo, len(chunk_set))
    for b, batch in enumerate(batches):
        for opt in (ep.optimisers["sgd"], head):
            opt.zero_grad(set_to_none=True)
        total = 0.0
        for micro in split_batch(batch, cfg.train.micro_batch_chunks):  # exact: CE is a mean over the batch
            out = model(load_chunks(chunk_set, micro, ep.normaliser))
            loss = F.cross_entropy(out.cluster_logits, labels[micro], reduction="sum") / len(batch)
            loss.backward()
            total += loss.item()
        ep.optimisers["sgd"].step()
        head.step()
        losses.append(total)
        report(b + 1, len(batches))
    _set_trainable(model.regressor, not cfg.train.freeze_regressor)
    return float(np.mean(losses))


def _fit_joint(ep: _Epoch, chunk_set: ChunkSet, pseudo: np.ndarray) -> tuple[float, float]:
    """Step 2: loss = CE + (1 - CCC) over each batch; mean CE and mean 1 - CCC over batches."""
    report, model, cfg = ep.stage("train joint", "train"), ep.model, ep.cfg
    head = torch.optim.SGD(model.cluster_head.parameters(), lr=cfg.train.lr_head)
    _set_trainable(model.regressor, not cfg.train.freeze_regressor)
    model.train()
    labels, ces, cccs = torch.from_numpy(pseudo).to(ep.normaliser.device), [], []
    batches = _balanced_batches(ep, pseudo, len(chunk_set))
    for b, batch in enumerate(batches):
        for opt in (ep.optimisers["sgd"], ep.optimisers["adam"], head):
            opt.zero_grad(set_to_none=True)
        loss = joint_backward(model, chunk_set, batch, labels, ep.normaliser, cfg.train.micro_batch_chunks)
        ep.optimisers["sgd"].step()  # published order: SGD, Adam and the head all step on the same gradients
        ep.optimisers["adam"].step()
        head.step()
        ces.append(loss.cross_entropy)
        cccs.append(loss.ccc_loss)
        report(b + 1, len(batches))
    return float(np.mean(ces)), float(np.mean(cccs))


def _validate(ep: _Epoch, dev: ChunkSet) -> dict[str, float]:
    ep.stage("validate", "validate")
    dev_ccc = evaluate(ep.model, dev, ep.normaliser, ep.cfg.model.attributes)
    ep._close()
    return dev_ccc


def _set_trainable(module: torch.nn.Module, trainable: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(trainable)


def _bundle(model: EmotionCNN, data: _Data, cfg: RunConfig) -> ModelBundle:
    """A CPU copy of the model as the run's bundle; draws nothing from torch's generator (a resume must not differ)."""
    copy = deepcopy(model).to("cpu", memory_format=torch.contiguous_format).eval()
    return ModelBundle({"joint" if len(cfg.model.attributes) > 1 else cfg.model.attributes[0]: copy},
                       data.normalisation, cfg)


def _rng_states(device: torch.device) -> dict[str, torch.Tensor]:
    """torch's generator states; with a GPU its own too, so a resume on the GPU equals an uninterrupted run."""
    states = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def _finish_epoch(writer: RunWriter, ep: _Epoch, data: _Data, state: _State, stats: EpochStats,
                  pseudo: PseudoLabeler) -> _State:
    """Record the epoch (best bundle if dev CCC improved, history, assignments, checkpoint) and report it."""
    values = [v for v in stats.dev_ccc.values() if np.isfinite(v)]
    score = float(np.mean(values)) if values else -math.inf  # undefined CCC (constant output) ranks last
    best = score > state.best_score or state.epoch == 0
    new = dataclasses.replace(state, epoch=stats.epoch + 1, best_score=score if best else state.best_score,
                              previous_pseudo=pseudo.labels_,
                              history=[*state.history, {**dataclasses.asdict(stats), "dev_ccc_mean": score, "best": best}],
                              assignments=[*state.assignments, pseudo.labels_.astype(np.int16)])
    best_bundle = _bundle(ep.model, data, ep.cfg) if best else None
    writer.finish_epoch(Checkpoint(
        epoch=new.epoch, best_score=new.best_score, model=ep.model.state_dict(),
        optimisers={name: opt.state_dict() for name, opt in ep.optimisers.items()},
        rng=_rng_states(ep.normaliser.device), previous_pseudo=pseudo.labels_, history=pd.DataFrame(new.history),
        assignments=np.stack(new.assignments), last_centroids=pseudo.cluster_centers_.astype(np.float32)),
        best=best_bundle)
    epochs = ep.cfg.train.epochs
    eta = (time.perf_counter() - state.started) / (new.epoch - state.first_epoch) * (epochs - new.epoch)
    ep.report(TrainProgress("validate", stats.epoch, epochs, 1, 1, eta, stats.dev_ccc))
    return new


def _restore(writer: RunWriter, model: EmotionCNN, optimisers: dict, cfg: RunConfig, report) -> _State:
    checkpoint = writer.resume()
    if checkpoint is None:
        return _State()
    model.reset_cluster_head(checkpoint.model["cluster_head.weight"].shape[0])
    model.load_state_dict(checkpoint.model)
    model.to(memory_format=torch.channels_last)
    for name, opt in optimisers.items():
        opt.load_state_dict(checkpoint.optimisers[name])
    torch.set_rng_state(checkpoint.rng["cpu"])
    device = next(model.parameters()).device
    if "cuda" in checkpoint.rng and device.type == "cuda":
        torch.cuda.set_rng_state(checkpoint.rng["cuda"], device)
    report(TrainProgress("resume", checkpoint.epoch - 1, cfg.train.epochs, checkpoint.epoch, cfg.train.epochs))
    return _State(checkpoint.epoch, checkpoint.best_score, checkpoint.previous_pseudo,
                  checkpoint.history.to_dict("records"), list(checkpoint.assignments), first_epoch=checkpoint.epoch)


def _complete(writer: RunWriter, data: _Data, cfg: RunConfig) -> TrainResult:
    """Evaluate the best checkpoint on the test splits, give it its own centroids, then mark the run complete.

    The best epoch's K-means ran before that epoch's joint stage moved the network, so its centroids
    need not match the kept model's space: one seeded K-means over the training chunks in the kept
    model's clustering space gives the clusters of the map (SPEC 2.4).
    """
    bundle = writer.load_best()
    (network,) = bundle.networks.values()
    network.to(data.normaliser.device, memory_format=torch.channels_last)
    test_ccc = {split: evaluate(network, chunks, data.normaliser, cfg.model.attributes)
                for split, chunks in data.tests.items()}
    vectors = embed_chunks(network, data.train, data.normaliser).cluster_features
    centroids = _labeler(cfg, cfg.seed + _FINAL_SEED_OFFSET).fit(vectors).cluster_centers_
    history = writer.history()
    metrics = RunMetrics(test_ccc, int(history.loc[history["best"], "epoch"].iloc[-1]))
    return _result(writer.complete(bundle, centroids, metrics), trained=True)


def _result(run: Run, trained: bool) -> TrainResult:
    metrics = run.metrics()
    return TrainResult(run, run.history(), metrics.test_ccc if metrics else {}, trained)
