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

from core.audio import AUDIO_EXTENSIONS, AudioLoadingError, audio_duration_s
from core.config import AVD, RunConfig
from core.features import chunk_starts, normalise
from core.frontend import ClipFeatures, load_features
from core.latent import ChunkOutputs
from core.metrics import ccc
from core.model import keep_freed_memory, resolve_device
from core.store import ModelBundle, Run


@dataclass(frozen=True)
class PredictionResult:
    utterances: pd.DataFrame  # index `file`; columns path, duration_s, then one column per attribute
    chunks: pd.DataFrame  # index (file, start, end) in seconds; one column per attribute
    errors: dict[str, str] = field(default_factory=dict)  # file -> why it could not be processed


class Predictor:
    """Runs a `ModelBundle` on audio: the published frontend, C chunks per clip, the chunk mean.

    An utterance's prediction is the mean of its chunks' z-normalised outputs (in float32, as the
    authors' pipeline), de-normalised with the training label statistics (in float64).
    """

    def __init__(self, bundle: ModelBundle, device: str = "auto"):
        self.bundle = bundle
        self.device = resolve_device(device)
        if self.device.type == "cpu":
            keep_freed_memory()
        # channels-last is ~2x faster for this CNN on CPU; eval mode: dropout off, BatchNorm running stats
        self.networks = {name: net.to(self.device, memory_format=torch.channels_last).eval()
                         for name, net in bundle.networks.items()}
        norm = bundle.normalisation
        self.mean = torch.as_tensor(norm.feature_mean, dtype=torch.float64)
        self.std = torch.as_tensor(norm.feature_std, dtype=torch.float64)
        self.attributes = [a for a in AVD if any(a in net.cfg.attributes for net in self.networks.values())]

    @classmethod
    def from_run(cls, run: Run, device: str = "auto") -> "Predictor":
        return cls(run.load_bundle(), device)

    @torch.inference_mode()
    def predict_chunks(self, chunks: list[np.ndarray], embed: str | None = None
                       ) -> tuple[np.ndarray, np.ndarray, ChunkOutputs | None]:
        """Predict clips from their un-normalised chunk features.

        Args:
            chunks: one (C, m, F) float32 mel array per clip (`load` gives them).
            embed: name of a network whose chunk embeddings to return as well (None: none).

        Returns:
            utterance predictions (N, A) float64 and chunk predictions (N, C, A) float64, de-normalised,
            columns in `self.attributes` order; and the chunk outputs of `embed` ((N*C, 256) each).
        """
        cfg = self.bundle.config
        x = normalise(torch.from_numpy(np.stack(chunks)).to(self.mean.dtype), self.mean, self.std,
                      cfg.features.clip).to(torch.float32)  # (N, C, m, F)
        n, c = x.shape[:2]
        x = x.reshape(n * c, 1, *x.shape[2:]).to(self.device).contiguous(memory_format=torch.channels_last)
        z = torch.empty(n * c, len(self.attributes))  # (N*C, A) z-normalised chunk outputs
        embedded = None
        for name, net in self.networks.items():
            out = net(x)
            for j, attribute in enumerate(net.cfg.attributes):
                z[:, self.attributes.index(attribute)] = out.attributes[:, j].float().cpu()
            if name == embed:
                embedded = ChunkOutputs(out.cluster_features.float().cpu().numpy(), out.embedding.float().cpu().numpy(),
                                        out.attributes.float().cpu().numpy())
        z = z.reshape(n, c, -1)
        mean = np.array([self.bundle.normalisation.label_mean[a] for a in self.attributes])
        std = np.array([self.bundle.normalisation.label_std[a] for a in self.attributes])
        return std * z.mean(dim=1).double().numpy() + mean, std * z.double().numpy() + mean, embedded

    def load(self, paths: list[str], *, refuse_silent: bool = False, max_duration_s: float | None = None
             ) -> tuple[list[ClipFeatures], dict[str, str]]:
        """Decode files into their chunk features; long files are streamed (`core.frontend`).

        Args:
            refuse_silent: report an all-zero clip as an error instead of predicting on silence.
            max_duration_s: a stricter limit than the run's `audio.max_duration_s` (e.g. for uploads).

        Returns:
            the clips that loaded, in order ((C, m, F) `features`), and {path: reason} for the rest.
        """
        cfg = self.bundle.config
        clips, errors = load_features(paths, cfg.audio, cfg.features, cfg.chunks, as_chunks=True,
                                      max_duration_s=max_duration_s, refuse_silent=refuse_silent)
        usable = []
        for clip in clips:
            try:
                _check_length(clip.path, clip.n_samples, cfg)
                usable.append(clip)
            except AudioLoadingError as err:
                errors[clip.path] = err.reason
        return usable, {p: errors[p] for p in paths if p in errors}

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
            clips, failed = self.load(paths[start: start + batch_size])
            errors |= failed
            if clips:
                utterance, chunks, _ = self.predict_chunks([c.features for c in clips])
                for clip, u, ch in zip(clips, utterance, chunks):
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


def evaluate_corpus(predictor: Predictor, corpus: pd.DataFrame,
                    splits: tuple[str, ...] = ("test", "test2", "test3")) -> dict[str, dict[str, float]]:
    """Utterance-level CCC per attribute on each test split of a corpus present in it.

    Raises:
        AudioLoadingError: a test clip could not be read (evaluating on a subset would mislead).
    """
    out = {}
    for split in splits:
        rows = corpus[corpus["split"] == split]
        if rows.empty:
            continue
        result = predictor.predict_files(rows["path"])
        if result.errors:
            path, reason = next(iter(result.errors.items()))
            raise AudioLoadingError(path, f"{reason} ({len(result.errors)} unreadable test clips)")
        predicted = result.utterances.set_index("path").loc[rows["path"]]
        out[split] = {a: ccc(rows[a].to_numpy(), predicted[a].to_numpy())
                      for a in predictor.attributes if rows[a].notna().all()}
    return out


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
