"""Audio generators for tests (no downloads), written with soundfile into tmp folders, and a file corruptor."""
from pathlib import Path

import numpy as np
import soundfile as sf


def sine(duration_s: float, sampling_rate: int = 16_000, frequency_hz: float = 220.0, amplitude: float = 0.5) -> np.ndarray:
    assert frequency_hz < sampling_rate / 2, "sine above Nyquist"
    t = np.arange(int(duration_s * sampling_rate)) / sampling_rate
    return (amplitude * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)


def write_wav(path: Path, signal: np.ndarray, sampling_rate: int = 16_000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, signal, sampling_rate, subtype="PCM_16")
    return path


def corrupt(path: Path, how: str) -> Path:
    """Damage a stored file on purpose: "flip" inverts 4 bytes in its middle (same size), "truncate"
    keeps its first half. Then forgets the digests this process remembers, as a later process would."""
    from core.store import atomic
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    if how == "flip":
        data[middle: middle + 4] = bytes(b ^ 0xFF for b in data[middle: middle + 4])
    else:
        assert how == "truncate", how
        del data[middle:]
    path.write_bytes(bytes(data))
    atomic._digests.clear()
    return path


def random_chunk_set(n_utterances: int, n_chunks: int, seed: int = 0):
    """A labelled `ChunkSet` of random (62 x 128) chunks with random z-scored A/V/D targets."""
    import pandas as pd
    from core.data.dataset import ChunkSet
    rng = np.random.default_rng(seed)
    chunks = [rng.standard_normal((n_chunks, 62, 128)).astype(np.float32) for _ in range(n_utterances)]
    base = ChunkSet.from_chunks(chunks)
    targets = rng.standard_normal((n_utterances, 3)).astype(np.float32)
    return ChunkSet(base.frames, base.starts, base.utterance, pd.RangeIndex(n_utterances), targets, n_chunks, 62)


def chunk_set_without_frames(files, n_chunks: int):
    """A `ChunkSet` that names its utterances (`files`, `n_chunks` each) but holds no frames: for code that reads
    only its files and layout, such as an epoch's clustering space (`core.training.epoch_space`)."""
    import pandas as pd
    from core.data.dataset import ChunkSet
    files = pd.Index(files, name="file")
    n = len(files)
    return ChunkSet(np.zeros((1, 4), np.float32), np.zeros(n * n_chunks, np.int64), np.repeat(np.arange(n), n_chunks),
                    files, None, n_chunks, 1)
