"""One vector per utterance from plain acoustics: the controls a learned latent space is measured against.

`egemaps`: the 88 eGeMAPSv02 functionals of openSMILE (Eyben et al. 2016), the field's standard acoustic set,
computed from the same decoded 16 kHz mono signal the network hears. `logmel-stats`: the mean and standard
deviation over time of each log-mel band of this project's own features (the feature store's, so a corpus
already extracted is not decoded again): what a model that ignores temporal structure would see.
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from core.audio.decode import AudioLoadingError, load_audio
from core.config import AudioConfig, ChunkConfig, FeatureConfig
from core.errors import UserError

FEATURE_SETS = ("egemaps", "logmel-stats")
LOG_FLOOR = 1e-10  # mel power below this is taken as this before the logarithm (silence)


class RepresentationError(UserError, ValueError):
    """A representation that cannot be made: an unknown feature set, openSMILE missing, unreadable clips."""


def opensmile_missing() -> str | None:
    """Why eGeMAPS cannot be computed here (the `opensmile` package is not installed), or None."""
    if importlib.util.find_spec("opensmile") is None:
        return ("eGeMAPS needs the `opensmile` package, which is not installed on this platform "
                "(pip install opensmile==2.6.0); --features logmel-stats works without it")
    return None


def utterance_vectors(corpus: pd.DataFrame, features: str, audio: AudioConfig, mel: FeatureConfig,
                      chunks: ChunkConfig, cache_root: Path,
                      progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, list[str]]:
    """(N, D) float32 vectors of `corpus`'s utterances in its row order, and the D column names.

    Raises:
        RepresentationError: an unknown feature set, openSMILE missing, or clips that cannot be read (named).
    """
    if features == "egemaps":
        return egemaps_vectors(corpus, audio, progress)
    if features == "logmel-stats":
        return logmel_statistics(corpus, audio, mel, chunks, cache_root, progress)
    raise RepresentationError(f"unknown feature set {features!r}; expected one of {list(FEATURE_SETS)}")


def egemaps_vectors(corpus: pd.DataFrame, audio: AudioConfig,
                    progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, list[str]]:
    """The 88 eGeMAPSv02 functionals of each utterance (~0.06 s per 5-s clip on one core)."""
    smile = _smile()  # here: openSMILE missing is said before any clip is decoded
    rows, problems = [], {}
    for i, (file, path) in enumerate(corpus["path"].items()):
        try:
            signal = load_audio(path, audio.sampling_rate, max_duration_s=audio.max_duration_s)
            rows.append(egemaps_of_signal(signal, audio.sampling_rate))
        except AudioLoadingError as err:
            problems[file] = err.reason
        if progress:
            progress(i + 1, len(corpus))
    _refuse(problems)
    return np.stack(rows), list(smile.feature_names)


def logmel_statistics(corpus: pd.DataFrame, audio: AudioConfig, mel: FeatureConfig, chunks: ChunkConfig,
                      cache_root: Path, progress: Callable[[int, int], None] | None = None
                      ) -> tuple[np.ndarray, list[str]]:
    """Per utterance, the mean and standard deviation over its frames of each log-mel band (2 x n_mels), its
    true frames only (the silence a short clip is padded with is left out)."""
    from core.data.extraction import extract_features  # the feature store's extraction (workers, cache)
    from core.store.feature_store import FeatureStore
    store = FeatureStore(cache_root, audio, mel, chunks)
    found = extract_features(corpus, store, audio, mel, chunks, progress=progress).features
    missing = corpus.index.difference(found.files)
    _refuse({f: "left out by the chunk policy (shorter than one chunk)" for f in missing})
    rows = [band_statistics(found.utterance(i), int(found.n_frames[i]), mel.log) for i in found.files.get_indexer(corpus.index)]
    return np.asarray(rows, np.float32), [f"logmel{b}_{stat}" for stat in ("mean", "std") for b in range(mel.n_mels)]


def band_statistics(frames: np.ndarray, n_frames: int, log: bool) -> np.ndarray:
    """(2 F,) the mean and standard deviation of each log-mel band over a clip's first `n_frames` frames (its
    true length: the padding of a short clip is left out)."""
    frames = np.asarray(frames[: max(n_frames, 1)], np.float64)
    frames = frames if log else np.log(np.maximum(frames, LOG_FLOOR))
    return np.concatenate([frames.mean(0), frames.std(0)])


def egemaps_of_signal(signal: np.ndarray, sampling_rate: int) -> np.ndarray:
    """(88,) eGeMAPSv02 functionals of one decoded signal."""
    return _smile().process_signal(signal, sampling_rate).to_numpy(np.float32)[0]


def _smile():
    if reason := opensmile_missing():
        raise RepresentationError(reason)
    return _extractor()


@functools.cache
def _extractor():  # one per process: its configuration is parsed once
    import opensmile  # here: optional, and ~1 s to import
    return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals)


def _refuse(problems: dict[str, str]) -> None:
    if problems:
        listed = "; ".join(f"{f}: {why}" for f, why in list(problems.items())[:5])
        raise RepresentationError(f"{len(problems)} clip(s) could not be turned into vectors ({listed}"
                                  + (", ..." if len(problems) > 5 else "") + "): fix or remove them from the corpus")
