"""The DeepEmoCluster training loop (SPEC 2.4): DeepCluster epochs on unlabelled and labelled chunks.

`train()` is the recipe; the helpers below it do one step each. Disk goes through `core.store`.
"""
from __future__ import annotations

import dataclasses
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from core.clustering import PseudoLabeler
from core.config import RunConfig, config_hash
from core.dataset import ChunkSet, balanced_indices, feature_statistics, load_chunks, make_chunk_set
from core.extraction import extract_features
from core.latent import embed_chunks
from core.manifest import corpus_fingerprint
from core.metrics import ccc, ccc_loss, cluster_stability
from core.model import EmotionCNN, keep_freed_memory, resolve_device
from core.store import (FeatureStore, ModelBundle, Normalisation, Run, RunStore, RunWriter, read_history, read_json,
                        save_corpus)

TEST_SPLITS = ("test", "test2", "test3")
_LABELLED_SEED_OFFSET = 7919  # the labelled stage's K-means seed differs from the unlabelled stage's


class TrainingConfigError(ValueError):
    """A configuration or corpus that cannot be trained, found before any work starts."""


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


@dataclass
class _Data:
    train: ChunkSet
    dev: ChunkSet
    tests: dict[str, ChunkSet]
    unlabelled: ChunkSet | None
    normalisation: Normalisation
    mean: torch.Tensor  # (F,) float32 on the device
    std: torch.Tensor


@dataclass
class _State:
    epoch: int = 0  # epochs completed
    best_score: float = -math.inf
    previous_pseudo: np.ndarray | None = None
    history: list[dict] = field(default_factory=list)
    assignments: list[np.ndarray] = field(default_factory=list)


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
    run_id = run_id_for(cfg, corpus)
    if not force and (existing := runs.find(run_id)):  # same config + corpus -> reuse the run
        return _result(existing, trained=False)
    report = progress or (lambda p: None)
    info = {"kind": "trained", "name": cfg.name, "config": cfg.to_dict(), "corpus_fingerprint": corpus_fingerprint(corpus),
            "corpus_size": {s: int(n) for s, n in corpus["split"].value_counts().items()}}
    with runs.writer(run_id, info) as writer:
        if force:
            writer.reset()
        save_corpus(writer, corpus)  # analysis later needs the very table the run was trained on
        data = _prepare_data(cfg, corpus, cache_root, workers, report)
        device = resolve_device(cfg.train.device)
        if device.type == "cpu":
            keep_freed_memory()
        seed_everything(cfg.seed)  # torch weight init and dropout; numpy randomness uses explicit Generators
        model = _new_model(cfg).to(device, memory_format=torch.channels_last)
        sgd, adam = _optimisers(model, cfg)
        state = _restore(writer, model, sgd, adam)  # resumes after the last completed epoch
        if state.epoch:
            report(TrainProgress("resume", state.epoch - 1, cfg.train.epochs, state.epoch, cfg.train.epochs))
        first_epoch, started = state.epoch, time.perf_counter()
        for epoch in range(state.epoch, cfg.train.epochs):
            rng, seconds, cluster_loss, unlabelled_sizes = np.random.default_rng([cfg.seed, epoch]), {}, float("nan"), []
            stage = _stage_reporter(report, epoch, cfg.train.epochs)
            if data.unlabelled is not None:  # step 1: self-supervised stage on unlabelled chunks, CE only
                pseudo = _pseudo_labels(model, data.unlabelled, data, cfg, cfg.seed + epoch, seconds, stage("embed unlabelled"))
                unlabelled_sizes = pseudo.cluster_sizes().tolist()
                cluster_loss = _fit_clusters(model, data.unlabelled, pseudo.labels_, data, sgd, cfg, rng, seconds,
                                             stage("train unlabelled"))
            # step 2: the same K-means pseudo-labelling on labelled chunks, then CE + (1 - CCC)
            pseudo = _pseudo_labels(model, data.train, data, cfg, cfg.seed + epoch + _LABELLED_SEED_OFFSET, seconds,
                                    stage("embed labelled"))
            joint_ce, joint_ccc = _fit_joint(model, data.train, pseudo.labels_, data, sgd, adam, cfg, rng, seconds,
                                             stage("train joint"))
            t0 = time.perf_counter()
            dev_ccc = evaluate(model, data.dev, data, cfg)  # step 3: validation CCC, best checkpoint kept
            seconds["validate"] = time.perf_counter() - t0
            stats = EpochStats(epoch, cluster_loss, joint_ce, joint_ccc, dev_ccc,
                               cluster_stability(state.previous_pseudo, pseudo.labels_), pseudo.cluster_sizes().tolist(),
                               unlabelled_sizes, seconds, _trained_chunks(data, cfg))
            state = _finish_epoch(writer, model, sgd, adam, data, cfg, state, stats, pseudo)
            eta = (time.perf_counter() - started) / (epoch + 1 - first_epoch) * (cfg.train.epochs - epoch - 1)
            report(TrainProgress("validate", epoch, cfg.train.epochs, 1, 1, eta, dev_ccc))
        return _complete(writer, data, cfg)


def run_id_for(cfg: RunConfig, corpus: pd.DataFrame) -> str:
    """`<name>-<hash8>` of the full config and the corpus fingerprint: same inputs, same run."""
    return f"{cfg.name}-{config_hash({'config': cfg.to_dict(), 'corpus': corpus_fingerprint(corpus)})[:8]}"


def check_trainable(cfg: RunConfig, corpus: pd.DataFrame) -> None:
    """Refuse, with every problem named, a corpus and config that cannot be trained together."""
    problems = []
    splits = corpus["split"]
    train_rows = corpus[splits == "train"]
    attributes = list(cfg.model.attributes)
    if len(train_rows) == 0:
        problems.append("no labelled 'train' split")
    if (splits == "dev").sum() == 0:
        problems.append("no 'dev' split (validation picks the best epoch)")
    for split in ("train", "dev"):
        rows = corpus[splits == split]
        missing = rows.index[rows[attributes].isna().any(axis=1)]
        if len(missing):
            problems.append(f"{len(missing)} {split} clips lack a label for {attributes} "
                            f"(e.g. {', '.join(map(str, missing[:3]))}); set model.attributes to the labelled ones")
    n_train_chunks = len(train_rows) * cfg.chunks.n_chunks
    if 0 < n_train_chunks <= cfg.model.n_clusters:
        problems.append(f"model.n_clusters={cfg.model.n_clusters} needs more labelled train chunks than clusters, "
                        f"found {n_train_chunks} ({len(train_rows)} clips x {cfg.chunks.n_chunks} chunks)")
    if len(train_rows) and len(train_rows) < cfg.train.batch_utterances:
        problems.append(f"train.batch_utterances={cfg.train.batch_utterances} exceeds the {len(train_rows)} train clips")
    if cfg.train.use_unlabelled:
        n_unlabelled = min(int((splits == "unlabelled").sum()), cfg.train.max_unlabelled)
        if n_unlabelled == 0:
            problems.append("train.use_unlabelled is true but the corpus has no unlabelled clips "
                            "(add a folder with --unlabelled, or --set train.use_unlabelled=false)")
        elif n_unlabelled * cfg.chunks.n_chunks <= cfg.model.n_clusters:
            problems.append(f"model.n_clusters={cfg.model.n_clusters} needs more unlabelled chunks than clusters, "
                            f"found {n_unlabelled * cfg.chunks.n_chunks}")
    if problems:
        raise TrainingConfigError("cannot train this corpus with this config:\n  " + "\n  ".join(problems))


def seed_everything(seed: int) -> None:
    """The only global seeding (STYLE rule 7): torch's generator for weight init, dropout and heads."""
    random.seed(seed)
    torch.manual_seed(seed)


def evaluate(model: EmotionCNN, chunk_set: ChunkSet, data: _Data, cfg: RunConfig) -> dict[str, float]:
    """Utterance-level CCC per attribute: the mean of each utterance's chunk predictions vs its label."""
    _, predictions = _forward_all(model, chunk_set, data, cfg)
    per_utterance = predictions.reshape(-1, chunk_set.n_chunks, predictions.shape[1]).mean(1)  # (N, A)
    return {a: ccc(chunk_set.targets[:, j], per_utterance[:, j]) for j, a in enumerate(cfg.model.attributes)}


def _stage_reporter(report, epoch: int, epochs: int):
    return lambda stage: (lambda done, total: report(TrainProgress(stage, epoch, epochs, done, total)))


def _new_model(cfg: RunConfig) -> EmotionCNN:
    return EmotionCNN(cfg.model, cfg.chunks.chunk_frames, cfg.features.n_mels)


def _prepare_data(cfg: RunConfig, corpus: pd.DataFrame, cache_root: Path, workers, report) -> _Data:
    store = FeatureStore(cache_root, cfg.audio, cfg.features, cfg.chunks)
    features, _ = extract_features(corpus, store, cfg.audio, cfg.features, cfg.chunks, workers=workers,
                                   progress=lambda d, t: report(TrainProgress("features", 0, cfg.train.epochs, d, t)))
    usable = corpus.loc[corpus.index.isin(features.files)]
    attributes = list(cfg.model.attributes)
    train_rows = usable[usable["split"] == "train"]
    label_mean, label_std = train_rows[attributes].mean(), train_rows[attributes].std(ddof=0).replace(0, 1)
    feature_mean, feature_std = feature_statistics(features, train_rows.index)  # training split only

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
    device = resolve_device(cfg.train.device)
    normalisation = Normalisation(feature_mean, feature_std, label_mean.to_dict(), label_std.to_dict())
    return _Data(chunk_set(train_rows), chunk_set(usable[usable["split"] == "dev"]),
                 {s: chunk_set(usable[usable["split"] == s]) for s in TEST_SPLITS if (usable["split"] == s).any()},
                 unlabelled, normalisation,
                 torch.as_tensor(feature_mean, dtype=torch.float32, device=device),
                 torch.as_tensor(feature_std, dtype=torch.float32, device=device))


def _optimisers(model: EmotionCNN, cfg: RunConfig) -> tuple[torch.optim.SGD, torch.optim.Adam]:
    # As published: SGD and Adam over every parameter but the per-epoch head, both stepped on the joint loss.
    body = [p for name, p in model.named_parameters() if not name.startswith("cluster_head.")]
    return torch.optim.SGD(body, lr=cfg.train.lr_sgd), torch.optim.Adam(body, lr=cfg.train.lr_adam)


def _forward_all(model: EmotionCNN, chunk_set: ChunkSet, data: _Data, cfg: RunConfig, report=None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Eval-mode pass over every chunk: cluster-branch vectors (pre-ReLU) and attribute predictions."""
    out = embed_chunks(model, chunk_set, data.mean, data.std, cfg.features.clip, progress=report)
    return out.cluster_features, out.attributes


def _pseudo_labels(model, chunk_set, data, cfg, seed, seconds, report) -> PseudoLabeler:
    t0 = time.perf_counter()
    vectors, _ = _forward_all(model, chunk_set, data, cfg, report)  # (N*C, 256) pre-ReLU cluster branch
    t1 = time.perf_counter()
    labeler = PseudoLabeler(cfg.model.n_clusters, n_iterations=cfg.cluster.n_iterations,
                            pca_dim=cfg.cluster.pca_dim if cfg.cluster.pca_whiten else None,
                            backend=cfg.cluster.backend, random_state=seed).fit(vectors)
    seconds["embed"] = seconds.get("embed", 0.0) + t1 - t0
    seconds["kmeans"] = seconds.get("kmeans", 0.0) + time.perf_counter() - t1
    return labeler


def _batches(index: np.ndarray, size: int) -> list[np.ndarray]:
    return [index[i: i + size] for i in range(0, len(index), size)]


def _fit_clusters(model, chunk_set, pseudo, data, sgd, cfg, rng, seconds, report) -> float:
    """Step 1: a fresh head, uniform-per-cluster sampling, cross-entropy; the regression branch frozen."""
    t0 = time.perf_counter()
    model.reset_cluster_head(cfg.model.n_clusters)  # DeepCluster: pseudo-labels change meaning every epoch
    head = torch.optim.SGD(model.cluster_head.parameters(), lr=cfg.train.lr_head)
    _set_trainable(model.regressor, False)
    model.train()
    labels, losses = torch.from_numpy(pseudo), []
    batches = _batches(balanced_indices(pseudo, len(chunk_set), rng), cfg.train.batch_utterances * cfg.chunks.n_chunks)
    for b, batch in enumerate(batches):
        sgd.zero_grad(set_to_none=True)
        head.zero_grad(set_to_none=True)
        total = 0.0
        for micro in _batches(batch, cfg.train.micro_batch_chunks):  # exact: CE is a mean over the batch
            out = model(load_chunks(chunk_set, micro, data.mean, data.std, cfg.features.clip, data.mean.device))
            loss = F.cross_entropy(out.cluster_logits, labels[micro].to(data.mean.device), reduction="sum") / len(batch)
            loss.backward()
            total += loss.item()
        sgd.step()
        head.step()
        losses.append(total)
        report(b + 1, len(batches))
    _set_trainable(model.regressor, not cfg.train.freeze_regressor)
    seconds["train"] = seconds.get("train", 0.0) + time.perf_counter() - t0
    return float(np.mean(losses))


def _fit_joint(model, chunk_set, pseudo, data, sgd, adam, cfg, rng, seconds, report) -> tuple[float, float]:
    """Step 2: a fresh head, uniform-per-cluster sampling, loss = CE + (1 - CCC) over each batch."""
    t0 = time.perf_counter()
    model.reset_cluster_head(cfg.model.n_clusters)
    head = torch.optim.SGD(model.cluster_head.parameters(), lr=cfg.train.lr_head)
    _set_trainable(model.regressor, not cfg.train.freeze_regressor)
    model.train()
    device, labels, ces, cccs = data.mean.device, torch.from_numpy(pseudo), [], []
    batches = _batches(balanced_indices(pseudo, len(chunk_set), rng), cfg.train.batch_utterances * cfg.chunks.n_chunks)
    for b, batch in enumerate(batches):
        targets = chunk_set.chunk_targets(batch).to(device)  # (B, A) chunks inherit their utterance's labels
        micros = _batches(batch, cfg.train.micro_batch_chunks)
        # The CCC couples every chunk of the batch; with micro-batches its gradient w.r.t. the predictions
        # comes from a first, graph-free pass (same dropout masks and BatchNorm state as the second).
        ccc_grad, batch_ccc_loss = _batch_ccc_gradient(model, chunk_set, micros, targets, data, cfg) \
            if len(micros) > 1 else (None, None)
        for opt in (sgd, adam, head):
            opt.zero_grad(set_to_none=True)
        ce_total, offset = 0.0, 0
        for micro in micros:
            out = model(load_chunks(chunk_set, micro, data.mean, data.std, cfg.features.clip, device))
            ce = F.cross_entropy(out.cluster_logits, labels[micro].to(device), reduction="sum") / len(batch)
            if ccc_grad is None:
                ccc_term = ccc_loss(out.attributes, targets)
                cccs.append(ccc_term.item())
            else:  # surrogate whose gradient is the exact batch-level CCC gradient
                ccc_term = (out.attributes * ccc_grad[offset: offset + len(micro)]).sum()
            (ce + ccc_term).backward()
            ce_total, offset = ce_total + ce.item(), offset + len(micro)
        sgd.step()  # published order: SGD, Adam and the head all step on the same gradients
        adam.step()
        head.step()
        ces.append(ce_total)
        if batch_ccc_loss is not None:
            cccs.append(batch_ccc_loss)
        report(b + 1, len(batches))
    seconds["train"] = seconds.get("train", 0.0) + time.perf_counter() - t0
    return float(np.mean(ces)), float(np.mean(cccs))


def _batch_ccc_gradient(model, chunk_set, micros, targets, data, cfg) -> tuple[torch.Tensor, float]:
    """d(1 - CCC)/d(predictions) for the whole batch, (B, A), and the loss; RNG and BatchNorm state untouched."""
    cuda = data.mean.device.type == "cuda"
    rng_state = torch.cuda.get_rng_state() if cuda else torch.get_rng_state()
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    with torch.no_grad():
        predictions = torch.cat([model(load_chunks(chunk_set, m, data.mean, data.std, cfg.features.clip,
                                                   data.mean.device)).attributes for m in micros])
    (torch.cuda.set_rng_state if cuda else torch.set_rng_state)(rng_state)  # same dropout masks in pass two ...
    with torch.no_grad():
        for name, b in model.named_buffers():  # ... and starts from the same BatchNorm running statistics
            b.copy_(buffers[name])
    predictions.requires_grad_(True)
    loss = ccc_loss(predictions, targets)
    (grad,) = torch.autograd.grad(loss, predictions)
    return grad, loss.item()


def _set_trainable(module: torch.nn.Module, trainable: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(trainable)


def _trained_chunks(data: _Data, cfg: RunConfig) -> int:
    return len(data.train) + (len(data.unlabelled) if data.unlabelled is not None else 0)


def _bundle(model: EmotionCNN, data: _Data, cfg: RunConfig) -> ModelBundle:
    copy = _new_model(cfg)
    copy.reset_cluster_head(model.n_clusters)
    copy.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    return ModelBundle({"joint" if len(cfg.model.attributes) > 1 else cfg.model.attributes[0]: copy.eval()},
                       data.normalisation, cfg)


def _finish_epoch(writer: RunWriter, model, sgd, adam, data, cfg, state: _State, stats: EpochStats, pseudo) -> _State:
    """Atomic end of an epoch: best bundle if dev CCC improved, history, assignments, then the checkpoint."""
    values = [v for v in stats.dev_ccc.values() if np.isfinite(v)]
    score = float(np.mean(values)) if values else -math.inf  # undefined CCC (constant output) ranks last
    best = score > state.best_score or state.epoch == 0
    if best:  # the model and the centroids of the same epoch: clusters on the map match the model
        writer.save_best(_bundle(model, data, cfg))
        writer.save_array("centroids", pseudo.cluster_centers_.astype(np.float32))  # (K, 256)
    history = [*state.history, {**dataclasses.asdict(stats), "dev_ccc_mean": score, "best": best}]
    assignments = [*state.assignments, pseudo.labels_.astype(np.int16)]
    writer.save_history(history)
    writer.save_array("assignments", np.stack(assignments))  # (epochs, n_train_chunks)
    writer.save_array("last_centroids", pseudo.cluster_centers_.astype(np.float32))  # the final epoch's
    new = _State(stats.epoch + 1, score if best else state.best_score,
                 pseudo.labels_, history, assignments)
    writer.save_checkpoint({  # written last: resuming trusts only what this checkpoint names
        "epoch": new.epoch, "best_score": new.best_score, "model": model.state_dict(),
        "sgd": sgd.state_dict(), "adam": adam.state_dict(), "torch_rng": torch.get_rng_state(),
        "previous_pseudo": torch.from_numpy(pseudo.labels_), "n_history": len(history)})
    return new


def _restore(writer: RunWriter, model, sgd, adam) -> _State:
    checkpoint = writer.load_checkpoint()
    if checkpoint is None:
        return _State()
    model.reset_cluster_head(checkpoint["model"]["cluster_head.weight"].shape[0])
    model.load_state_dict(checkpoint["model"])
    model.to(memory_format=torch.channels_last)
    sgd.load_state_dict(checkpoint["sgd"])
    adam.load_state_dict(checkpoint["adam"])
    torch.set_rng_state(checkpoint["torch_rng"])
    history = read_history(Run(writer.run_id, writer.dir, writer.info)).to_dict("records")[: checkpoint["n_history"]]
    assignments = list(np.load(writer.dir / "assignments.npy")[: checkpoint["epoch"]])
    return _State(checkpoint["epoch"], checkpoint["best_score"], checkpoint["previous_pseudo"].numpy(), history, assignments)


def _complete(writer: RunWriter, data: _Data, cfg: RunConfig) -> TrainResult:
    """Evaluate the best checkpoint on the test splits, then mark the run complete."""
    bundle = writer.load_best()
    (network,) = bundle.networks.values()
    network.to(data.mean.device, memory_format=torch.channels_last)
    test_ccc = {split: evaluate(network, chunks, data, cfg) for split, chunks in data.tests.items()}
    history = read_history(Run(writer.run_id, writer.dir, writer.info))
    writer.save_json("metrics", {"test_ccc": test_ccc, "best_epoch": int(history.loc[history["best"], "epoch"].iloc[-1])})
    return _result(writer.complete(bundle), trained=True)


def _result(run: Run, trained: bool) -> TrainResult:
    metrics = read_json(run, "metrics") or {}
    return TrainResult(run, read_history(run), metrics.get("test_ccc", {}), trained)
