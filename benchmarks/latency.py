"""Warm latencies of one 5-s clip: predicting its attributes, and locating it in a large map."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.config import ModelConfig, RunConfig
from benchmarks.inputs import noise_clip, random_map_locator, untrained_bundle
from benchmarks.results import BenchResult, warm_median_s


def bench_predict_latency(work: Path, n_networks: int = 3, repeats: int = 20) -> BenchResult:
    """One 5-s clip, all three attributes with three per-attribute networks (the published setup)."""
    from core.model.inference import Predictor
    cfg = RunConfig()
    names = ("arousal", "dominance", "valence")[:n_networks]
    bundle = untrained_bundle({a: ModelConfig(attributes=(a,)) for a in names}, cfg)
    clip = noise_clip(work / "clip5s.wav", np.random.default_rng(0))
    predictor = Predictor(bundle, device="auto")
    seconds = warm_median_s(lambda: predictor.predict_files([clip]), repeats)
    return BenchResult("predict one 5-s clip (A+V+D, 3 networks), warm", seconds, "s", "<= 0.2 s (the authors' pipeline)",
                       f"median of {repeats}; device {predictor.device}", met=seconds <= 0.2)


def bench_locate(work: Path, n_corpus: int = 20_000, repeats: int = 20) -> BenchResult:
    """Locate one 5-s clip (decode, features, network, cluster, k-NN placement, neighbours) in a map of
    `n_corpus` utterances; an untrained joint network and random embeddings: the cost is the same."""
    locator = random_map_locator(work / "locate", n_corpus)
    rng = np.random.default_rng(0)
    clip = noise_clip(work / "locate5s.wav", rng)
    seconds = warm_median_s(lambda: locator.locate_files([clip]), repeats)
    return BenchResult(f"locate one 5-s clip in a {n_corpus:,}-utterance map, warm", seconds, "s", "<= 0.3 s",
                       f"median of {repeats}: audio, features, network, cluster, k-NN placement, neighbours; "
                       f"device {locator.predictor.device}", met=seconds <= 0.3)

