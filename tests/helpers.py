"""Audio generators for tests (no downloads): written with soundfile into tmp folders."""
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
