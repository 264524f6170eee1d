"""A corpus whose utterances exist only in the feature store: MSP-Podcast-sized stores without decoding audio.

The supported way in for such a corpus: every utterance is a hard link to one of a few real, playable
clips, so it is a real file path with an identity of its own (`FeatureStore.file_key`: path, size,
mtime), and the store holds features for exactly those keys, written with the store's own
`write_shard`. `extract_features` then finds every file already extracted and only builds the pack.

The features are random mel-power-like values (lognormal, positive): one pool drawn with
`np.random.default_rng`, each utterance a slice of it at a random offset, as long as its clip's true
frame count (1 + n_samples // hop). Contents do not matter for the timings; sizes and layout do.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from core.config import AudioConfig, ChunkConfig, FeatureConfig
from core.store.feature_store import FeatureStore

SPLIT_SHARES = {"train": 0.6, "dev": 0.1, "test": 0.1, "unlabelled": 0.2}  # ~MSP-Podcast: 150 k labelled, 40 k not
POOL_FRAMES = 1 << 18  # 128 MB of random frames that the utterances are sliced from


@dataclass(frozen=True)
class SyntheticCorpus:
    manifest: Path  # generic CSV: path, split, arousal, valence, dominance
    cache_root: Path  # the feature store's root (what `train` and `explore` call `cache_root`)
    n_utterances: int
    n_frames: int  # frames stored over all utterances
    audio_seconds: float  # the utterances' total duration
    seconds: float  # wall time to build it all


def corpus_paths(folder: Path) -> tuple[Path, Path]:
    """(manifest, cache root) of the synthetic corpus in `folder`."""
    return Path(folder) / "manifest.csv", Path(folder) / "cache"


def open_store(cache_root: Path, chunks: ChunkConfig = ChunkConfig()) -> FeatureStore:
    """The store under the published audio and feature settings (every preset's: they share `chunk_frames`)."""
    return FeatureStore(cache_root, AudioConfig(), FeatureConfig(), chunks)


def build_synthetic_corpus(folder: Path, n_utterances: int, *, n_clips: int = 20, seconds: tuple[float, float] = (2.0, 12.0),
                           seed: int = 0, shard_utterances: int = 1000) -> SyntheticCorpus:
    """`n_utterances` hard links to `n_clips` real clips of `seconds` duration, a manifest and their store shards.

    Args:
        folder: an empty (or missing) folder; gets `clips/`, `audio/`, `manifest.csv` and `cache/`.
        shard_utterances: utterances per store shard (~225 MB at 7 s each).
    """
    t0 = time.perf_counter()
    folder = Path(folder)
    audio, features = AudioConfig(), FeatureConfig()
    rng = np.random.default_rng(seed)
    clips, clip_frames, clip_seconds = write_clips(folder / "clips", n_clips, seconds, audio.sampling_rate,
                                                    features.hop_length, rng)
    which = rng.integers(0, n_clips, n_utterances)
    relative = [f"audio/{i // 1000:03d}/u{i:07d}.wav" for i in range(n_utterances)]
    for i, rel in enumerate(relative):
        target = folder / rel
        if i % 1000 == 0:
            target.parent.mkdir(parents=True, exist_ok=True)
        os.link(clips[which[i]], target)
    _write_manifest(folder / "manifest.csv", relative, rng)
    _, cache_root = corpus_paths(folder)
    store = open_store(cache_root)
    pool = rng.lognormal(-4.0, 2.0, (POOL_FRAMES, features.n_mels)).astype(np.float32)
    n_frames = clip_frames[which]
    starts = rng.integers(0, POOL_FRAMES - n_frames.max(), n_utterances)
    for lo in range(0, n_utterances, shard_utterances):
        store.write_shard([(FeatureStore.file_key(folder / relative[i]), pool[starts[i]: starts[i] + n_frames[i]],
                            int(n_frames[i])) for i in range(lo, min(lo + shard_utterances, n_utterances))])
    return SyntheticCorpus(folder / "manifest.csv", cache_root, n_utterances, int(n_frames.sum()),
                           float(clip_seconds[which].sum()), time.perf_counter() - t0)


def disk_bytes(cache_root: Path) -> dict[str, int]:
    """Bytes of the store's shards and of its packs (the hard-linked audio is not counted)."""
    root = Path(cache_root)
    shards = sum(p.stat().st_size for p in root.glob("features/*/shard-*"))
    packs = sum(p.stat().st_size for p in root.glob("features/*/packs/*"))
    return {"shards": shards, "packs": packs}


def write_clips(folder: Path, n_clips: int, seconds: tuple[float, float], sr: int, hop: int, rng: np.random.Generator):
    """Real 16-bit wav clips of evenly spread durations; their paths, true frame counts and seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, frames, durations = [], [], []
    for c, duration in enumerate(np.linspace(seconds[0], seconds[1], n_clips)):
        n_samples = int(round(duration * sr))
        t = np.arange(n_samples) / sr
        wave = 0.3 * np.sin(2 * np.pi * (150 + 10 * c) * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
        wave += 0.02 * rng.standard_normal(n_samples)
        path = folder / f"clip{c:02d}.wav"
        sf.write(path, wave.astype(np.float32), sr, subtype="PCM_16")
        paths.append(path)
        frames.append(1 + n_samples // hop)
        durations.append(n_samples / sr)
    return paths, np.array(frames, dtype=np.int64), np.array(durations)


def _write_manifest(path: Path, relative: list[str], rng: np.random.Generator) -> None:
    n = len(relative)
    split = rng.choice(list(SPLIT_SHARES), n, p=list(SPLIT_SHARES.values()))
    table = pd.DataFrame({"path": relative, "split": split})
    labelled = split != "unlabelled"
    for attribute in ("arousal", "valence", "dominance"):
        values = np.round(rng.uniform(1.0, 7.0, n), 1)
        table[attribute] = pd.Series(values).where(labelled)  # NaN -> empty cell: no label
    table.to_csv(path, index=False)
