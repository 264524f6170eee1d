"""Predict arousal, valence and dominance for new audio with a stored run's networks.

Batched over files and chunks; an unreadable file is reported with its reason and never stops the others.
`predict_batches` yields a batch at a time, so that a folder of any size is predicted in flat memory.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

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
        # (path, share done) while a long file streams, for every `load`: set by a caller that reaches `load`
        # through another object (the CLI's `locate`, through a `Locator`); `predict_batches` passes its own
        self.on_stream: Callable[[str, float], None] | None = None

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

    def load(self, paths: list[str], *, refuse_silent: bool = False, max_duration_s: float | None = None,
             on_stream: Callable[[str, float], None] | None = None) -> LoadResult:
        """Decode files into their chunk features; long files are streamed (`core.audio.frontend`).

        Args:
            refuse_silent: report an all-zero clip as an error instead of predicting on silence.
            max_duration_s: a stricter limit than the run's `audio.max_duration_s` (e.g. for uploads).
            on_stream: called with (path, share done in [0, 1]) as a long file streams (default: `self.on_stream`).

        Returns:
            the clips that loaded, in order ((C, m, F) `features`), and {path: reason} for the rest.
        """
        cfg = self.bundle.config
        loaded = load_features(paths, cfg.audio, cfg.features, cfg.chunks, as_chunks=True,
                               max_duration_s=max_duration_s, refuse_silent=refuse_silent,
                               on_stream=on_stream or self.on_stream)
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
        """Predict every file; unreadable ones land in `errors` with the reason. Holds every row: a caller writing
        them out as they come (`python -m core predict`) uses `predict_batches`.

        Args:
            paths: audio files. Their string form is the `file` id of the result.
            batch_size: clips per forward pass (memory grows with it: C chunks each).
            progress: optional callback(done, total), in whole files after each batch.
        """
        def whole_files(done: float, total: int) -> None:  # as before: whole files, after each batch
            if isinstance(done, int):
                progress(done, total)
        parts = list(self.predict_batches(paths, batch_size, whole_files if progress else None))
        kept = [part for part in parts if len(part.utterances)] or [self._batch_result(LoadResult([], {}))]
        return PredictionResult(pd.concat([part.utterances for part in kept]), pd.concat([part.chunks for part in kept]),
                                {path: reason for part in parts for path, reason in part.errors.items()})

    def predict_batches(self, paths: Iterable[str | Path], batch_size: int = 16,
                        progress: Callable[[float, int], None] | None = None) -> Iterator[PredictionResult]:
        """Predict files `batch_size` at a time, yielding each batch's rows as soon as they are known: memory stays
        flat however many files there are, and a caller can write each batch before the next is decoded.

        Args:
            paths: audio files. Their string form is the `file` id of the result.
            batch_size: clips per forward pass (memory grows with it: C chunks each).
            progress: optional callback(done, total) in files: an int after each batch has been consumed, and
                while a long file streams block by block, fractions to 1/100 (12.5: half of the 13th file done).

        Yields:
            one `PredictionResult` per batch of paths, in order: its rows (empty tables where none of its files
            could be read) and {path: reason} for its unreadable files.
        """
        paths = [str(p) for p in paths]
        for start in range(0, len(paths), batch_size):
            batch = paths[start: start + batch_size]
            position = {path: start + i for i, path in enumerate(batch)}
            within = None if progress is None else (lambda path, share: progress(round(position[path] + share, 2), len(paths)))
            yield self._batch_result(self.load(batch, on_stream=within))
            if progress:
                progress(start + len(batch), len(paths))

    def _batch_result(self, loaded: LoadResult) -> PredictionResult:
        """The rows of one batch of loaded clips: per file, and per chunk."""
        cfg, rows, chunk_rows = self.bundle.config, [], []
        if loaded.clips:
            predicted = self.predict_chunks([c.features for c in loaded.clips])
            for clip, u, ch in zip(loaded.clips, predicted.utterances, predicted.chunks):
                rows.append((clip.path, clip.path, clip.n_samples / cfg.audio.sampling_rate, *u))
                chunk_rows += [(clip.path, s, e, *values) for (s, e), values in zip(chunk_times(clip.n_samples, cfg), ch)]
        utterances = pd.DataFrame(rows, columns=["file", "path", "duration_s", *self.attributes]).set_index("file")
        chunk_table = pd.DataFrame(chunk_rows, columns=["file", "start", "end", *self.attributes]).set_index(["file", "start", "end"])
        return PredictionResult(utterances, chunk_table, dict(loaded.errors))


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
