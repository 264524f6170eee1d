"""The recipe options the paper does not have (issue 13, item 5): chunk masking, the learning-rate schedule
and the joint stage's cross-entropy weight; all off in every preset, so those runs keep their ids."""
import dataclasses
import inspect
import math

import numpy as np
import pytest
import torch

from core.config import RunConfig, TrainConfig, apply_overrides, default, demo, paper, tiny
from core.data.dataset import Normaliser
from core.model.augmentation import apply_masks, draw_masks, lr_factor, masked_batch, set_learning_rates
from core.model.network import EmotionCNN
from core.model.objective import BatchStep, LocalBatch, joint_backward, local_batches
from core.runtime.distributed import BatchNormReplay, World
from tests.helpers import random_chunk_set

NEW_FIELDS = ("lr_schedule", "joint_ce_weight", "time_mask_frames", "freq_mask_bins")


def test_new_options_are_off_in_the_paper_presets_and_leave_their_run_ids_as_they_were():
    for cfg in (paper("arousal"), paper("valence"), tiny(), RunConfig()):
        assert (cfg.train.lr_schedule, cfg.train.joint_ce_weight, cfg.train.time_mask_frames, cfg.train.freq_mask_bins) \
            == ("constant", 1.0, 0, 0)
        assert not set(NEW_FIELDS) & set(cfg.identity()["train"])
        old = cfg.to_dict()
        for name in NEW_FIELDS:
            del old["train"][name]
        assert RunConfig.from_dict(old) == cfg
    changed = apply_overrides(tiny(), ["train.lr_schedule=cosine", "train.time_mask_frames=8"])
    assert changed.identity()["train"]["lr_schedule"] == "cosine" and changed.identity()["train"]["time_mask_frames"] == 8


def test_default_and_demo_carry_what_the_recipe_study_adopted():
    """Round 2 of `benchmarks.recipe_study` (docs/recipe.md): the joint cross-entropy at 0.3 with chunk masking."""
    for cfg in (default(), demo()):
        assert (cfg.train.joint_ce_weight, cfg.train.time_mask_frames, cfg.train.freq_mask_bins) == (0.3, 8, 16)
        assert cfg.train.lr_schedule == "constant" and cfg.features.log and not cfg.train.freeze_regressor
    from benchmarks.recipe_study import ROUND_BASELINES
    before = apply_overrides(default(), ROUND_BASELINES[2])  # round 2's baseline: round 1's recipe
    assert before == dataclasses.replace(default(), train=dataclasses.replace(
        default().train, joint_ce_weight=1.0, time_mask_frames=0, freq_mask_bins=0))


def test_every_preset_trains_in_fp32_after_round_4():
    """Round 3 adopted bf16 where the device computes it for the demo; round 4, over training seeds, withdrew it.
    Both rounds' baseline is the demo in fp32, which is the demo again (and keeps its run ids)."""
    assert demo().train.precision == default().train.precision == paper().train.precision == "fp32"
    from benchmarks.recipe_study import ROUND_BASELINES
    assert apply_overrides(demo(), ROUND_BASELINES[3]) == apply_overrides(demo(), ROUND_BASELINES[4]) == demo()
    assert "precision" not in demo().identity()["train"]


def test_round_4_takes_corpus_and_seed_pairs_as_the_units_of_its_interval():
    """Round 4: an option's differences over (corpus, seed) pairs, their mean and its 95 % t-interval."""
    from benchmarks.recipe_study import BUILT_IN_DEMO, NONINFERIORITY_MARGIN, StudyRow, format_rows, seed_summary
    from core.data.synthetic import make_demo_corpus
    defaults = {k: p.default for k, p in inspect.signature(make_demo_corpus).parameters.items() if k in BUILT_IN_DEMO}
    assert defaults == BUILT_IN_DEMO  # round 4's "demo" corpus is what `python -m core demo-corpus` writes
    ccc = {a: "0.700 [0.600, 0.800]" for a in ("arousal", "valence", "dominance")}
    values = {0: -0.03, 1: 0.01, 2: 0.05}
    rows = [StudyRow(option, "c", ccc, 0.7, "—" if option == "default" else f"{values[seed]:.3f} [...]", False, False,
                     1.0, seed, math.nan if option == "default" else values[seed])
            for seed in values for option in ("default", "bf16 autocast")]
    (summary,) = seed_summary(rows)
    half = 4.302653 * 0.04 / math.sqrt(3)  # t(0.975, 2) x the values' sd / sqrt(3)
    assert summary.pairs == 3 and summary.mean == pytest.approx(0.01)
    assert (summary.low, summary.high) == pytest.approx((0.01 - half, 0.01 + half), abs=1e-6)
    assert summary.no_worse is (summary.low > -NONINFERIORITY_MARGIN) is False  # -0.089: it may lose more
    table = format_rows(rows, None)
    assert "| option | corpus | seed | arousal" in table and "| bf16 autocast | c | 2 | 0.700" in table
    assert table.endswith(f"- bf16 autocast: +0.010 [{0.01 - half:+.3f}, {0.01 + half:+.3f}] over 3 runs")


@pytest.mark.parametrize("overrides, message", [
    (["train.lr_schedule=linear"], "lr_schedule"), (["train.joint_ce_weight=-1"], "joint_ce_weight"),
    (["train.time_mask_frames=-1"], "time_mask_frames"), (["train.time_mask_frames=62"], "chunk_frames"),
    (["train.freq_mask_bins=128"], "n_mels")])
def test_bad_option_values_are_refused_with_the_field_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(default(), overrides)


def test_masks_are_runs_within_the_chunk_at_most_the_configured_width():
    cfg = TrainConfig(time_mask_frames=8, freq_mask_bins=16)
    masks = draw_masks(2000, 62, 128, cfg, np.random.default_rng(0))
    for runs, size, widest in ((masks.time, 62, 8), (masks.freq, 128, 16)):
        start, width = runs.T
        assert width.min() == 0 and width.max() == widest  # uniform in [0, widest]: both ends are drawn
        assert start.min() == 0 and (start + width).max() == size and (start + width <= size).all()
    inputs = torch.randn(5, 1, 62, 128).to(memory_format=torch.channels_last)
    rows = np.array([3, 0, 7, 1, 2])
    out = apply_masks(inputs, masks, rows)
    assert out.is_contiguous(memory_format=torch.channels_last)
    for i, row in enumerate(rows):
        (t0, tw), (f0, fw) = masks.time[row], masks.freq[row]
        expected = inputs[i, 0].clone()
        expected[t0: t0 + tw, :] = 0
        expected[:, f0: f0 + fw] = 0
        assert torch.equal(out[i, 0], expected)


def test_masked_batch_gives_a_chunk_the_same_mask_whichever_rank_holds_it():
    cfg = apply_overrides(tiny(), ["train.time_mask_frames=20", "train.freq_mask_bins=40"])
    index = np.arange(6)
    inputs = torch.randn(6, 1, 62, 128)
    whole = masked_batch(LocalBatch(index, [(0, index)], inputs), cfg, seed=[1, 2])
    pieces = [(2, index[2:4]), (4, index[4:])]  # a rank holding positions 2..5
    part = masked_batch(LocalBatch(index, pieces, inputs[2:].clone()), cfg, seed=[1, 2])
    assert torch.equal(part.inputs, whole.inputs[2:]) and not torch.equal(whole.inputs, inputs)
    assert masked_batch(LocalBatch(index, [(0, index)], inputs), tiny(), seed=[1, 2]).inputs is inputs  # off


def test_cosine_schedule_starts_at_the_rate_and_falls_towards_zero():
    cfg = TrainConfig(epochs=5, lr_schedule="cosine", lr_sgd=0.1, lr_adam=0.01)
    factors = [lr_factor(cfg, e) for e in range(5)]
    assert factors[0] == 1.0 and all(a > b for a, b in zip(factors, factors[1:])) and 0 < factors[-1] < 0.1 and factors[2] > 0.5
    assert lr_factor(dataclasses.replace(cfg, lr_schedule="constant"), 4) == 1.0
    body = [torch.nn.Parameter(torch.zeros(1))]
    optimisers = {"sgd": torch.optim.SGD(body, lr=1.0), "adam": torch.optim.Adam(body, lr=1.0)}
    set_learning_rates(optimisers, cfg, 2)
    middle = (1 + np.cos(np.pi * 2 / 5)) / 2  # epoch 2 of 5
    assert optimisers["sgd"].param_groups[0]["lr"] == pytest.approx(0.1 * middle)
    assert optimisers["adam"].param_groups[0]["lr"] == pytest.approx(0.01 * middle)


def _joint_gradient(ce_weight: float) -> tuple[float, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = EmotionCNN(tiny().model).eval()
    chunk_set = random_chunk_set(6, 4)
    labels = torch.from_numpy(np.arange(len(chunk_set)) % model.n_clusters)
    normaliser = Normaliser.from_statistics(np.zeros(128), np.ones(128), 3.0, torch.device("cpu"))
    step = BatchStep(model, model, chunk_set, labels, normaliser, None, World(), BatchNormReplay(model, World()),
                     ce_weight=ce_weight)
    (local,) = local_batches(step, [np.arange(len(chunk_set))])
    loss = joint_backward(step, local, None)
    return loss.cross_entropy, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_joint_ce_weight_scales_the_cross_entropy_gradient_only():
    ce_1, one = _joint_gradient(1.0)
    ce_0, ccc_only = _joint_gradient(0.0)
    ce_3, three = _joint_gradient(3.0)
    assert ce_0 == ce_1 == ce_3  # the reported cross-entropy is unweighted
    head = "cluster_head.weight"  # only the cross-entropy reaches the cluster head
    assert ccc_only.get(head) is None or ccc_only[head].abs().max() == 0
    for name in one:  # the gradient is linear in w: g(3) = g(0) + 3 (g(1) - g(0))
        zero = ccc_only.get(name, torch.zeros_like(one[name]))
        torch.testing.assert_close(three[name], zero + 3 * (one[name] - zero), rtol=1e-4, atol=1e-6)
