"""Predict arousal, valence and dominance for new audio with a stored run's networks.

Batched over files and chunks; an unreadable file is reported with its reason and never stops the others.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import torch

from core.audio.decode import AUDIO_EXTENSIONS, AudioLoadingError, audio_duration_s
from core.audio.features import chunk_starts
from core.audio.frontend import LoadResult, load_features
from core.config import AVD, RunConfig
from core.data.dataset import ChunkSet, Normaliser
from core.model.bundle import ModelBundle, load_bundle
from core.model.forward import ChunkOutputs, chunk_predictions, embed_networks, utterance_predictions
from core.runtime.device import resolve_device
from core.store.run_store import Run


@dataclass(frozen=True)
class ClipPredictions:
    """`Predictor.predict_chunks` of N clips, attribute columns in `Predictor.attributes` order."""
    utterances: np.ndarray  # (N, A) float64, de-normalised chunk means
    chunks: np.ndarray  # (N, C, A) float64, de-normalised
    outputs: dict[str, ChunkOutputs]  # network -> its (N*C, ...) chunk outputs


@dataclass(frozen=True)
class PredictionResult:
    utterances: pd.DataFrame  # index `file`; columns path, duration_s, then one column per attribute
    chunks: pd.DataFrame  # index (file, start, end) in seconds; one column per attribute
    errors: dict[str, str] = field(default_factory=dict)  # file -> why it could not be processed


class Predictor:
    """Runs a `ModelBundle` on audio: the published frontend, C chunks per clip, the one forward path
    (`core.model.forward`), the chunk mean in z-space, de-normalised with the training label statistics.
    """

    def __init__(self, bundle: ModelBundle, device: str = "auto"):
        self.bundle = bundle
        norm, cfg = bundle.normalisation, bundle.config
        self.normaliser = Normaliser.from_statistics(norm.feature_mean, norm.feature_std, cfg.features.clip,
                                                     resolve_device(device))
        self.networks = {name: net.to(self.normaliser.device, memory_format=torch.channels_last).eval()
                         for name, net in bundle.networks.items()}
        self.attributes = [a for a in AVD if any(a in net.cfg.attributes for net in self.networks.values())]

    @property
    def device(self) -> torch.device:
        return self.normaliser.device

    @classmethod
    def from_run(cls, run: Run, device: str = "auto") -> "Predictor":
        return cls(load_bundle(run), device)

    def chunk_times(self, n_samples: int) -> list[tuple[float, float]]:
        """(start, end) in seconds of each chunk of a clip of `n_samples`."""
        return chunk_times(n_samples, self.bundle.config)

    def predict_chunks(self, chunks: list[np.ndarray]) -> ClipPredictions:
        """Predict clips from their un-normalised chunk features.

        Args:
            chunks: one (C, m, F) float32 mel array per clip (`load` gives them).
        """
        chunk_set = ChunkSet.from_chunks(chunks)
        outputs = embed_networks(self.networks, chunk_set, self.normaliser)
        z = chunk_predictions(self.networks, outputs)
        utterance = utterance_predictions(z, chunk_set.n_chunks, self.bundle.normalisation)
        n, c = len(chunks), chunk_set.n_chunks
        return ClipPredictions(
            np.stack([utterance[a] for a in self.attributes], 1),
            np.stack([self.bundle.normalisation.denormalise(a, z[a]) for a in self.attributes], 1).reshape(n, c, -1),
            outputs)

    def load(self, paths: list[str], *, refuse_silent: bool = False, max_duration_s: float | None = None
             ) -> LoadResult:
        """Decode files into their chunk features; long files are streamed (`core.audio.frontend`).

        Args:
            refuse_silent: report an all-zero clip as an error instead of predicting on silence.
            max_duration_s: a stricter limit than the run's `audio.max_duration_s` (e.g. for uploads).

        Returns:
            the clips that loaded, in order ((C, m, F) `features`), and {path: reason} for the rest.
        """
        cfg = self.bundle.config
        loaded = load_features(paths, cfg.audio, cfg.features, cfg.chunks, as_chunks=True,
                               max_duration_s=max_duration_s, refuse_silent=refuse_silent)
        usable, errors = [], dict(loaded.errors)
        for clip in loaded.clips:
            try:
                _check_length(clip.path, clip.n_samples, cfg)
                usable.append(clip)
            except AudioLoadingError as err:
                errors[clip.path] = err.reason
        return LoadResult(usable, {p: errors[p] for p in paths if p in errors})

    def predict_files(self, paths: Iterable[str | Path], batch_size: int = 16,
                      progress: Callable[[int, int], None] | None = None) -> PredictionResult:
        """Predict every file; unreadable ones land in `errors` with the reason.

        Args:
            paths: audio files. Their string form is the `file` id of the result.
            batch_size: clips per forward pass (memory grows with it: C chunks each).
            progress: optional callback(done, total).
        """
        paths = [str(p) for p in paths]
        cfg = self.bundle.config
        rows, chunk_rows, errors = [], [], {}
        for start in range(0, len(paths), batch_size):
            loaded = self.load(paths[start: start + batch_size])
            clips, errors = loaded.clips, errors | loaded.errors
            if clips:
                predicted = self.predict_chunks([c.features for c in clips])
                for clip, u, ch in zip(clips, predicted.utterances, predicted.chunks):
                    rows.append((clip.path, clip.path, clip.n_samples / cfg.audio.sampling_rate, *u))
                    chunk_rows += [(clip.path, s, e, *values)
                                   for (s, e), values in zip(chunk_times(clip.n_samples, cfg), ch)]
            if progress:
                progress(min(start + batch_size, len(paths)), len(paths))
        utterances = pd.DataFrame(rows, columns=["file", "path", "duration_s", *self.attributes]).set_index("file")
        chunk_table = pd.DataFrame(chunk_rows, columns=["file", "start", "end", *self.attributes]).set_index(["file", "start", "end"])
        return PredictionResult(utterances, chunk_table, errors)


def chunk_times(n_samples: int, cfg: RunConfig) -> list[tuple[float, float]]:
    """(start, end) in seconds of each chunk of a clip of `n_samples` at the run's sampling rate."""
    frame_s = cfg.features.hop_length / cfg.audio.sampling_rate
    n_frames = max(1 + n_samples // cfg.features.hop_length, cfg.chunks.chunk_frames)
    return [(round(s * frame_s, 4), round((s + cfg.chunks.chunk_frames) * frame_s, 4))
            for s in chunk_starts(n_frames, cfg.chunks)]


def file_chunk_times(path: str | Path, cfg: RunConfig) -> list[tuple[float, float]]:
    """`chunk_times` of an audio file, from its header."""
    return chunk_times(round(audio_duration_s(path) * cfg.audio.sampling_rate), cfg)


def _check_length(path: str, n_samples: int, cfg: RunConfig) -> None:
    n_frames = 1 + n_samples // cfg.features.hop_length
    if n_frames < cfg.chunks.chunk_frames and cfg.chunks.short_policy != "pad":
        seconds = n_samples / cfg.audio.sampling_rate
        raise AudioLoadingError(path, f"{seconds:.2f} s is shorter than one chunk "
                                      f"({cfg.chunks.chunk_frames} frames) and chunks.short_policy is "
                                      f"{cfg.chunks.short_policy!r}")


def expand_audio_paths(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded to their audio files (recursive, sorted)."""
    out = []
    for item in map(Path, inputs):
        if item.is_dir():
            out += sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
        else:
            out.append(item)
    return out
