"""The epoch a run keeps: the released code's dev criterion computed directly, the dev batches, the rule (issue 30)."""
import dataclasses

import numpy as np
import pytest
import torch

from core.config import tiny
from core.data.dataset import Normaliser
from core.evaluate.evaluation import evaluate
from core.model.forward import embed_chunks
from core.model.network import EmotionCNN
from core.training.keeping import dev_batches, dev_chunk_loss, keeps, validate
from tests.helpers import random_chunk_set


def _authors_loss(chunk_z: np.ndarray, targets: np.ndarray, n_chunks: int, batches: list[np.ndarray]) -> float:
    """The released code's `validation` written out: per batch of utterances, each utterance's chunks labelled with
    its value (np.repeat), `cc_coef` = 1 - 2 mean((y - my)(p - mp)) / (var(y) + var(p) + (mp - my)^2) with
    torch.var's unbiased variances, per attribute; the mean over attributes, then over batches."""
    losses = []
    for utterances in batches:
        p = chunk_z.reshape(-1, n_chunks, chunk_z.shape[1])[utterances].reshape(-1, chunk_z.shape[1])
        y = np.repeat(targets[utterances], n_chunks, axis=0)
        per_attribute = [1 - 2 * np.mean((y[:, a] - y[:, a].mean()) * (p[:, a] - p[:, a].mean()))
                         / (y[:, a].var(ddof=1) + p[:, a].var(ddof=1) + (p[:, a].mean() - y[:, a].mean()) ** 2)
                         for a in range(y.shape[1])]
        losses.append(np.mean(per_attribute))
    return float(np.mean(losses))


def test_dev_batches_are_a_seeded_permutation_in_batches_of_64_the_last_smaller():
    batches = dev_batches(150, 64, seed=3)
    assert [len(b) for b in batches] == [64, 64, 22]
    assert sorted(np.concatenate(batches).tolist()) == list(range(150))
    assert all(np.array_equal(a, b) for a, b in zip(batches, dev_batches(150, 64, seed=3)))  # every epoch: the same
    assert not np.array_equal(np.concatenate(batches), np.concatenate(dev_batches(150, 64, seed=4)))
    assert not np.array_equal(np.concatenate(batches), np.arange(150))  # random, not the split's order


def test_dev_chunk_loss_equals_the_released_validation_written_out():
    """150 utterances of 3 chunks in random batches of 64: chunk-level, unbiased variances, mean over batches and
    attributes; the population-variance and the utterance-level versions differ from it."""
    dev = random_chunk_set(150, 3, seed=1)
    rng = np.random.default_rng(2)
    chunk_z = (np.repeat(dev.targets, 3, axis=0) * 0.5 + rng.normal(size=(450, 3))).astype(np.float32)
    batches = dev_batches(150, 64, seed=0)
    expected = _authors_loss(chunk_z.astype(np.float64), dev.targets.astype(np.float64), 3, batches)
    assert dev_chunk_loss(chunk_z, dev, batches) == pytest.approx(expected, abs=1e-9)
    assert dev_chunk_loss(chunk_z, dev, [np.arange(150)]) != pytest.approx(expected, abs=1e-3)  # the batches matter


def test_dev_chunk_loss_of_a_multi_attribute_network_is_the_mean_over_its_attributes():
    dev = random_chunk_set(10, 2, seed=5)
    chunk_z = np.random.default_rng(6).normal(size=(20, 3)).astype(np.float32)
    batches = dev_batches(10, 4, seed=0)
    one_by_one = [dev_chunk_loss(chunk_z[:, [a]], dataclasses.replace(dev, targets=dev.targets[:, [a]]), batches)
                  for a in range(3)]
    assert dev_chunk_loss(chunk_z, dev, batches) == pytest.approx(np.mean(one_by_one), abs=1e-9)


def test_validate_gives_evaluates_dev_ccc_and_the_chunk_loss_of_the_same_pass():
    cfg = tiny()
    torch.manual_seed(0)
    model = EmotionCNN(cfg.model, cfg.chunks.chunk_frames, cfg.features.n_mels)
    dev = random_chunk_set(9, 2, seed=4)
    normaliser = Normaliser.from_statistics(np.zeros(128), np.ones(128), 3.0, torch.device("cpu"))
    scores = validate(model, dev, normaliser, cfg)
    assert scores.ccc == evaluate(model, dev, normaliser, cfg.model.attributes)
    chunk_z = embed_chunks(model, dev, normaliser, outputs=("attributes",)).attributes
    assert scores.chunk_loss == dev_chunk_loss(chunk_z, dev, dev_batches(9, cfg.train.batch_utterances, cfg.seed))


@pytest.mark.parametrize("rule,kept", [("dev_ccc", [True, True, False, False]), ("authors", [True, False, True, False])])
def test_keeps_the_first_epoch_then_strict_improvements_of_its_rules_criterion(rule, kept):
    rows = [{"dev_ccc_mean": 0.1, "dev_chunk_loss": 0.9}, {"dev_ccc_mean": 0.3, "dev_chunk_loss": 0.95},
            {"dev_ccc_mean": 0.2, "dev_chunk_loss": 0.8}, {"dev_ccc_mean": 0.3, "dev_chunk_loss": 0.8}]  # ties do not
    history = []
    for row in rows:
        history.append({**row, "best": keeps(rule, history, row)})
    assert [r["best"] for r in history] == kept


def test_keeps_ranks_an_undefined_or_absent_criterion_last():
    """A NaN criterion (or a row written before `dev_chunk_loss` existed) never replaces a kept epoch."""
    history = [{"dev_ccc_mean": -np.inf, "dev_chunk_loss": 1.0, "best": True}]
    assert not keeps("authors", history, {"dev_ccc_mean": 0.5, "dev_chunk_loss": float("nan")})
    assert keeps("dev_ccc", history, {"dev_ccc_mean": 0.5})
    assert keeps("authors", [{"dev_ccc_mean": 0.5, "best": True}], {"dev_ccc_mean": 0.1, "dev_chunk_loss": 2.0})
