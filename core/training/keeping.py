"""The epoch a run keeps (SPEC 2.4 step 3) and what each finished epoch leaves in the run: both kept-epoch
criteria on the dev split, the history row, the checkpoint a resume starts from, the kept network; then the run
completed around it. No step of the epoch loop lives here (`core.training.train`); disk goes through the run store.

Every epoch records both criteria, whichever rule `train.keep_epoch` names, so a run's history shows the
epoch either rule keeps: "dev_ccc" (`dev_ccc_mean`, higher is better) or "authors" (`dev_chunk_loss`, lower).
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from core.config import RunConfig
from core.data.dataset import ChunkSet, Normaliser, utterance_mean
from core.evaluate.evaluation import interval_records, predict_utterances, prediction_table, split_estimates
from core.model.bundle import ModelBundle, bundle_from_state, bundle_state
from core.model.clustering import PseudoLabeler
from core.model.forward import embed_chunks
from core.model.metrics import attribute_ccc, ccc_loss
from core.model.network import EmotionCNN
from core.runtime.distributed import World
from core.store.run_store import Checkpoint, RunMetrics, RunWriter
from core.training.training_data import TrainingData

_DEV_BATCHES_KEY = 2 ** 31 - 1  # the dev batches' seed, (seed, key), is no epoch's sampling seed, (seed, epoch)


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    cluster_loss: float  # cross-entropy of the unlabelled stage (NaN without unlabelled data)
    joint_ce: float  # cross-entropy of the joint stage
    joint_ccc_loss: float  # 1 - CCC of the joint stage (mean over attributes and batches)
    dev_ccc: dict[str, float]  # utterance-level CCC per attribute on the whole dev split ("dev_ccc" keeps by its mean)
    dev_chunk_loss: float  # the released code's dev criterion ("authors" keeps by it): `dev_chunk_loss` below
    nmi_previous: float  # NMI of the labelled chunks' pseudo-labels vs the previous epoch
    cluster_sizes: list[int]  # labelled chunks per cluster
    unlabelled_cluster_sizes: list[int]
    seconds: dict[str, float]  # wall time per stage: embed, kmeans, train, validate
    trained_chunks: int  # chunks through forward + backward this epoch
    precision: str  # what its passes ran in, "fp32" or "bf16": `train.precision` as its device resolved it


@dataclass(frozen=True)
class DevScores:
    """One epoch's network on the dev split, by both kept-epoch criteria."""
    ccc: dict[str, float]  # attribute -> utterance-level CCC (SPEC 2.5)
    chunk_loss: float  # mean over dev batches of chunk-level 1 - CCC, unbiased variances (the released code's)


@dataclass
class RunState:
    """What the loop carries from one epoch to the next; all but the timing is in the checkpoint."""
    epoch: int = 0  # epochs completed
    previous_pseudo: np.ndarray | None = None
    history: list[dict] = field(default_factory=list)  # one row per epoch: `EpochStats` fields, dev_ccc_mean, best
    assignments: list[np.ndarray] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    first_epoch: int = 0  # of this process (for the ETA)

    def eta_s(self, epochs: int) -> float:
        """Seconds left for `epochs` at this process's mean epoch time so far."""
        return (time.perf_counter() - self.started) / (self.epoch - self.first_epoch) * (epochs - self.epoch)


def validate(model: EmotionCNN, dev: ChunkSet, normaliser: Normaliser, cfg: RunConfig, world: World | None = None
             ) -> DevScores:
    """Both criteria from one eval-mode pass over the dev chunks (the one forward path, `embed_chunks`)."""
    chunk_z = embed_chunks(model, dev, normaliser, world, outputs=("attributes",)).attributes  # (N*C, A) z-space
    ccc = attribute_ccc(dev.targets, utterance_mean(chunk_z, dev.n_chunks), cfg.model.attributes)  # as `evaluate`
    batches = dev_batches(len(dev.files), cfg.train.batch_utterances, cfg.seed)
    return DevScores(ccc, dev_chunk_loss(chunk_z, dev, batches))


def dev_batches(n_utterances: int, batch_utterances: int, seed: int) -> list[np.ndarray]:
    """The dev utterances in random batches of `batch_utterances` (the last one smaller), as the released code's
    validation loader drew them (a random sampler, the training batch size: 64 in `paper`, the last batch kept).

    Drawn once per run, from `seed` alone: every epoch is scored on the same batches. The released code drew
    new ones every epoch, so part of its criterion's change between epochs was which utterances shared a batch
    (a batch's CCC depends on its mix); the same batches leave the networks as the only difference.

    Returns:
        (n,) utterance indices per batch; together a permutation of range(n_utterances).
    """
    order = np.random.default_rng([seed, _DEV_BATCHES_KEY]).permutation(n_utterances)
    return [order[i: i + batch_utterances] for i in range(0, n_utterances, batch_utterances)]


def dev_chunk_loss(chunk_z: np.ndarray, dev: ChunkSet, batches: list[np.ndarray]) -> float:
    """The released code's validation loss: per batch, 1 - CCC over the batch's chunks, each chunk's prediction
    against its utterance's label, with unbiased variances (its `cc_coef`); the mean over batches. A network of
    several attributes takes the mean over its attributes in each batch (`ccc_loss`), so the mean of theirs.

    Args:
        chunk_z: (N*C, A) z-normalised chunk predictions of `dev`, utterance-major.
        batches: utterance indices per batch (`dev_batches`).

    Returns:
        The mean over batches; NaN when no batch holds two chunks.
    """
    assert len(chunk_z) == len(dev.files) * dev.n_chunks, "C chunks per utterance, utterance-major"
    losses = []
    for utterances in batches:
        index = (utterances[:, None] * dev.n_chunks + np.arange(dev.n_chunks)).ravel()  # (B*C,) their chunks
        if len(index) < 2:  # a last batch of one single-chunk utterance has no CCC (C = 11 never meets it)
            continue
        pred = torch.from_numpy(chunk_z[index]).double()
        losses.append(ccc_loss(pred, dev.chunk_targets(index).double(), unbiased=True).item())
    return float(np.mean(losses)) if losses else math.nan


def keeps(rule: str, history: list[dict], row: dict) -> bool:
    """Whether `rule` (`train.keep_epoch`) keeps the epoch of `row` after the epochs of `history`: the first epoch is
    kept, a later one when strictly better than the last one kept (the released code's `loss_valid < loss_valid_best`)."""
    kept = [r for r in history if r["best"]]
    return not kept or _score(rule, row) > _score(rule, kept[-1])


def kept_epoch(history: pd.DataFrame) -> int:
    """The epoch a run keeps: the last one its rule marked `best` when it finished."""
    return int(history.loc[history["best"].astype(bool), "epoch"].iloc[-1])


def finish_epoch(writer: RunWriter, state: RunState, stats: EpochStats, pseudo: PseudoLabeler, model: EmotionCNN,
                 optimisers: dict[str, torch.optim.Optimizer], data: TrainingData, cfg: RunConfig, world: World) -> RunState:
    """Record the epoch: its history row (`best` under `train.keep_epoch`), assignments and checkpoint, and the
    network's bundle when the rule keeps it. Rank 0 alone writes; every rank returns the same state."""
    row = {**dataclasses.asdict(stats), "dev_ccc_mean": _mean_ccc(stats.dev_ccc)}
    row["best"] = keeps(cfg.train.keep_epoch, state.history, row)
    new = dataclasses.replace(state, epoch=stats.epoch + 1, previous_pseudo=pseudo.labels_, history=[*state.history, row],
                              assignments=[*state.assignments, pseudo.labels_.astype(np.int16)])
    if not world.is_main:
        return new
    kept = [r for r in new.history if r["best"]][-1]
    writer.finish_epoch(Checkpoint(
        epoch=new.epoch, best_score=kept["dev_ccc_mean"], model=model.state_dict(),
        optimisers={name: opt.state_dict() for name, opt in optimisers.items()},
        rng=_rng_states(data.normaliser.device), previous_pseudo=pseudo.labels_, history=pd.DataFrame(new.history),
        assignments=np.stack(new.assignments), last_centroids=pseudo.cluster_centers_.astype(np.float32)),
        best=bundle_state(_bundle(model, data, cfg)) if row["best"] else None)
    return new


def restore(writer: RunWriter, model: EmotionCNN, optimisers: dict[str, torch.optim.Optimizer]) -> RunState:
    """The state after the run's last completed epoch, with the network, optimisers and torch's generator as they
    were then (a fresh state for a new run). The kept epoch so far is the history's: its `best` rows."""
    checkpoint = writer.resume()
    if checkpoint is None:
        return RunState()
    model.reset_cluster_head(checkpoint.model["cluster_head.weight"].shape[0])
    model.load_state_dict(checkpoint.model)
    model.to(memory_format=torch.channels_last)
    for name, opt in optimisers.items():
        opt.load_state_dict(checkpoint.optimisers[name])
    torch.set_rng_state(checkpoint.rng["cpu"])
    device = next(model.parameters()).device
    if "cuda" in checkpoint.rng and device.type == "cuda":
        torch.cuda.set_rng_state(checkpoint.rng["cuda"], device)
    return RunState(checkpoint.epoch, checkpoint.previous_pseudo, checkpoint.history.to_dict("records"),
                    list(checkpoint.assignments), first_epoch=checkpoint.epoch)


def complete(writer: RunWriter, data: TrainingData, cfg: RunConfig, corpus: pd.DataFrame, world: World,
             labeler: PseudoLabeler) -> None:
    """Evaluate the kept network on the test splits, give it its own centroids, then mark the run complete.

    The kept epoch's K-means ran before that epoch's joint stage moved the network, so its centroids need not
    match the kept model's space: `labeler` (seeded, unfitted) over the training chunks in the kept model's
    clustering space gives the clusters of the map (SPEC 2.4). The per-utterance test predictions are stored
    with the run, so that intervals (`core.evaluate.uncertainty`) never need the model again.
    """
    bundle = world.broadcast(bundle_from_state(writer.load_best_state()) if world.is_main else None)  # rank 0 checks it
    (network,) = bundle.networks.values()
    network.to(data.normaliser.device, memory_format=torch.channels_last)
    attributes, test_ccc, tables = cfg.model.attributes, {}, []
    speakers = corpus["speaker"] if "speaker" in corpus else None
    for split, chunks in data.tests.items():
        z = predict_utterances(network, chunks, data.normaliser, world)
        test_ccc[split] = attribute_ccc(chunks.targets, z, attributes)
        tables.append(prediction_table(split, chunks, z, data.normalisation, attributes, speakers))
    vectors = embed_chunks(network, data.train, data.normaliser, world, outputs=("cluster_features",)).cluster_features
    if world.is_main:
        centroids = labeler.fit(vectors).cluster_centers_
        predictions = pd.concat(tables) if tables else None
        intervals = split_estimates(predictions, attributes) if tables else None
        metrics = RunMetrics(test_ccc, kept_epoch(writer.history()), interval_records(intervals))
        writer.complete(bundle_state(bundle), centroids, metrics, predictions)
    world.barrier()


def _mean_ccc(dev_ccc: dict[str, float]) -> float:
    values = [v for v in dev_ccc.values() if np.isfinite(v)]
    return float(np.mean(values)) if values else -math.inf  # undefined CCC (constant output) ranks last


def _score(rule: str, row: dict) -> float:
    """The row's criterion under `rule`, higher is better; undefined (or absent: a row written before the
    criterion existed) ranks last."""
    value = row["dev_ccc_mean"] if rule == "dev_ccc" else -row.get("dev_chunk_loss", math.nan)
    return value if np.isfinite(value) else -math.inf


def _bundle(model: EmotionCNN, data: TrainingData, cfg: RunConfig) -> ModelBundle:
    """A CPU copy of the model as the run's bundle; draws nothing from torch's generator (a resume must not differ)."""
    with torch.random.fork_rng(devices=[]):  # the copy's initialisation is overwritten: leave the generator as it was
        copy = EmotionCNN(cfg.model, cfg.chunks.chunk_frames, cfg.features.n_mels)
        copy.reset_cluster_head(model.n_clusters)
    copy.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    copy.eval()
    return ModelBundle({cfg.model.network_name: copy}, data.normalisation, cfg)


def _rng_states(device: torch.device) -> dict[str, torch.Tensor]:
    """torch's generator states; with a GPU its own too, so a resume on the GPU equals an uninterrupted run."""
    states = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states
