"""A baseline run's predictor: the surface of `core.model.inference.Predictor` (load, predict, chunk times), with a
clip's vector (its eGeMAPS functionals or log-mel band statistics) in place of a network's chunk embeddings, so
that locating clips, `predict` and evaluating on other corpora take a baseline as they take a trained run.

A baseline sees a clip whole: it is one "chunk" spanning the clip. Imported embeddings have no way to embed a
new clip: `predictor_of` says so.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from core.audio.decode import AudioLoadingError
from core.audio.frontend import ClipFeatures, LoadResult, decode_checked, load_features
from core.model.inference import ClipPredictions, PredictionResult, Predictor
from core.represent.space import ForeignCorpusError, KINDS, load_representation
from core.represent.vectors import RepresentationError, band_statistics, egemaps_of_signal
from core.store.run_store import Run


@dataclass(frozen=True)
class VectorOutputs:
    """`core.model.forward.ChunkOutputs`'s two spaces, for a vector: both its standardised form."""
    cluster_features: np.ndarray
    latent: np.ndarray


def predictor_of(run: Run, device: str = "auto"):
    """What predicts new clips for `run`: its networks (`Predictor`), or a baseline's `VectorPredictor`.

    Raises:
        ForeignCorpusError: imported embeddings (they cannot embed a new clip here).
    """
    if run.info.kind == "embeddings":
        raise ForeignCorpusError(f"run {run.run_id} holds imported embeddings: a new clip has none here. Compute its "
                                 "embedding with the model that made them and import it with the corpus, or locate "
                                 "with a trained run or a baseline")
    return VectorPredictor(run) if run.info.kind in KINDS else Predictor.from_run(run, device)


class VectorPredictor:
    def __init__(self, run: Run):
        self.representation = load_representation(run)
        self.config, self.network = run.config, run.info.representation
        self.attributes = list(self.representation.attributes)

    def load(self, paths: list[str], *, refuse_silent: bool = False, max_duration_s: float | None = None) -> LoadResult:
        """Each readable file's vector, as a (1, D) "features" array; {path: reason} for the others."""
        if self.representation.features == "egemaps":  # openSMILE reads the signal: decoded once, no mel frames
            return self._load_signals(paths, refuse_silent, max_duration_s)
        cfg = self.config
        loaded = load_features(paths, cfg.audio, cfg.features, cfg.chunks, max_duration_s=max_duration_s,
                               refuse_silent=refuse_silent)
        return LoadResult([ClipFeatures(clip.path, clip.n_samples, clip.n_frames, np.asarray(
            band_statistics(clip.features, clip.n_frames, cfg.features.log), np.float32)[None]) for clip in loaded.clips],
            loaded.errors)

    def _load_signals(self, paths: list[str], refuse_silent: bool, max_duration_s: float | None) -> LoadResult:
        """eGeMAPS vectors, each from its decoded signal as `egemaps_vectors` computed the fitted ones."""
        audio, hop = self.config.audio, self.config.features.hop_length
        clips, errors = [], {}
        for path in paths:
            try:
                signal = decode_checked(path, audio, max_duration_s, refuse_silent)
                vector = egemaps_of_signal(signal, audio.sampling_rate)
            except (AudioLoadingError, RepresentationError) as err:
                errors[path] = getattr(err, "reason", str(err))
                continue
            clips.append(ClipFeatures(path, len(signal), 1 + len(signal) // hop, np.asarray(vector, np.float32)[None]))
        return LoadResult(clips, errors)

    def predict_chunks(self, chunks: list[np.ndarray]) -> ClipPredictions:
        """Predictions of clips from their (1, D) vectors: one chunk each."""
        z = self.representation.standardise(np.concatenate(chunks))
        predicted = self.representation.predict(z)
        return ClipPredictions(predicted, predicted[:, None, :], {self.network: VectorOutputs(z, z)})

    def chunk_times(self, n_samples: int) -> list[tuple[float, float]]:
        return [(0.0, round(n_samples / self.config.audio.sampling_rate, 4))]

    def predict_batches(self, paths: Iterable[str | Path], batch_size: int = 64,
                        progress: Callable[[int, int], None] | None = None) -> Iterator[PredictionResult]:
        """`Predictor.predict_batches`: one result per batch, as soon as it is known (the CLI streams them)."""
        paths = [str(p) for p in paths]
        for start in range(0, len(paths), batch_size):
            yield self.predict_files(paths[start: start + batch_size])
            if progress:
                progress(min(start + batch_size, len(paths)), len(paths))

    def predict_files(self, paths: Iterable[str | Path], batch_size: int = 64,
                      progress: Callable[[int, int], None] | None = None) -> PredictionResult:
        """`Predictor.predict_files`: one row per readable file, its one chunk spanning it."""
        paths = [str(p) for p in paths]
        rows, chunk_rows, errors = [], [], {}
        for start in range(0, len(paths), batch_size):
            loaded = self.load(paths[start: start + batch_size])
            errors |= loaded.errors
            if loaded.clips:
                predicted = self.predict_chunks([c.features for c in loaded.clips]).utterances
                for clip, values in zip(loaded.clips, predicted):
                    seconds = clip.n_samples / self.config.audio.sampling_rate
                    rows.append((clip.path, clip.path, seconds, *values))
                    chunk_rows.append((clip.path, 0.0, round(seconds, 4), *values))
            if progress:
                progress(min(start + batch_size, len(paths)), len(paths))
        utterances = pd.DataFrame(rows, columns=["file", "path", "duration_s", *self.attributes]).set_index("file")
        chunks = pd.DataFrame(chunk_rows, columns=["file", "start", "end", *self.attributes]).set_index(["file", "start", "end"])
        return PredictionResult(utterances, chunks, errors)
