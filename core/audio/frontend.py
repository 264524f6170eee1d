"""The published frontend from files: decode, peak-normalise, mel features (SPEC 2.1), chunks (2.2).

Clips up to `STREAM_ABOVE_S` are decoded whole and their STFTs batched, which is fastest. Longer files
are streamed twice, once for the peak and once for the frames, so that memory stays bounded whatever
their length (an hour of 96-kHz 6-channel audio would take 8 GB decoded whole). Both ways give the
same features bit for bit, so the threshold is not part of any configuration.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from core.audio.decode import AudioLoadingError, AudioStream, load_audio, peak_normalise
from core.audio.features import chunk_starts, cut_chunks, gather_chunks, mel_spectrograms, pad_short, streamed_mel
from core.config import AudioConfig, ChunkConfig, FeatureConfig

STREAM_ABOVE_S = 120.0  # longer files are streamed; decoding a 2-min clip whole takes ~10 MB


@dataclass(frozen=True)
class ClipFeatures:
    """The features of one decoded file."""
    path: str
    n_samples: int  # decoded length at the configured sampling rate
    n_frames: int  # true number of mel frames, 1 + n_samples // hop (before any padding)
    features: np.ndarray  # (max(T, m), F) float32 mel, silence-padded to one chunk; or (C, m, F) chunks


@dataclass(frozen=True)
class LoadResult:
    """Files decoded into features: those that could be used, in order, and why the others could not."""
    clips: list[ClipFeatures]
    errors: dict[str, str]  # path -> reason


def load_features(paths: list[str], audio: AudioConfig, features: FeatureConfig, chunks: ChunkConfig, *,
                  as_chunks: bool = False, max_duration_s: float | None = None, refuse_silent: bool = False,
                  on_stream: Callable[[str, float], None] | None = None) -> LoadResult:
    """Decode files and compute their un-normalised features; unusable files are reported, not raised.

    Args:
        paths: audio files, in the order of the result.
        as_chunks: return only each clip's C chunks, (C, m, F); a streamed file then never holds
            more than a block of samples and C * m frames.
        max_duration_s: a stricter limit than `audio.max_duration_s` (e.g. for uploads).
        refuse_silent: report an all-zero clip as an error instead of computing features of silence.
        on_stream: called with (path, fraction done in [0, 1]) after each block of a streamed file, so that a
            caller can show progress within an hour-long file (~20 s on 2 cores); each pass is half of it.

    Returns:
        the features of the files that could be used, in order, and {path: reason} for the others.
    """
    limit = duration_limit(audio, max_duration_s)
    whole: list[tuple[str, np.ndarray]] = []  # decoded clips, their STFTs batched below
    done: dict[str, ClipFeatures] = {}
    errors: dict[str, str] = {}
    for path in paths:
        try:
            stream = AudioStream(path, audio.sampling_rate, max_duration_s=limit)
            if stream.duration_s > STREAM_ABOVE_S:
                done[path] = _streamed(stream, audio, features, chunks, as_chunks, refuse_silent, on_stream)
                continue
            signal = decode_checked(path, audio, max_duration_s, refuse_silent)
        except AudioLoadingError as err:
            errors[path] = err.reason
            continue
        whole.append((path, peak_normalise(signal) if audio.peak_normalise else signal))
    mels = mel_spectrograms([s for _, s in whole], audio.sampling_rate, features)
    for (path, signal), mel in zip(whole, mels):
        padded = pad_short(mel, chunks)
        out = cut_chunks(padded, chunk_starts(len(padded), chunks), chunks) if as_chunks else padded
        done[path] = ClipFeatures(path, len(signal), len(mel), out)
    return LoadResult([done[p] for p in paths if p in done], errors)


def duration_limit(audio: AudioConfig, max_duration_s: float | None) -> float:
    """The longest clip accepted: the run's `audio.max_duration_s`, or a stricter `max_duration_s` (uploads)."""
    return min(audio.max_duration_s, max_duration_s or np.inf)


def decode_checked(path: str, audio: AudioConfig, max_duration_s: float | None = None,
                   refuse_silent: bool = False) -> np.ndarray:
    """A whole file decoded at the run's rate, within `duration_limit`; an all-zero one refused where asked.

    Raises:
        AudioLoadingError: unreadable, too long, or silent (with `refuse_silent`).
    """
    signal = load_audio(path, audio.sampling_rate, max_duration_s=duration_limit(audio, max_duration_s))
    if refuse_silent and not np.any(signal):
        raise AudioLoadingError(path, "silent: every sample is zero")
    return signal


def _streamed(stream: AudioStream, audio: AudioConfig, features: FeatureConfig, chunks: ChunkConfig,
              as_chunks: bool, refuse_silent: bool, on_stream: Callable[[str, float], None] | None) -> ClipFeatures:
    expected = max(stream.duration_s * audio.sampling_rate, 1.0)  # output samples, from the header: for progress
    blocks = _reported(stream, on_stream, expected, 0.0)
    peak = max((float(np.max(np.abs(block))) for block in blocks if len(block)), default=0.0)  # first pass
    if peak == 0.0 and refuse_silent:
        raise AudioLoadingError(stream.path, "silent: every sample is zero")
    n_frames = 1 + stream.n_samples // features.hop_length
    peak = peak if audio.peak_normalise and peak > 0 else 1.0  # silence stays zeros, never 0 / 0
    frames = streamed_mel(_reported(stream, on_stream, expected, 0.5), audio.sampling_rate, features, peak=peak)
    if as_chunks:
        out = gather_chunks(frames, n_frames, chunks)
    else:  # the whole mel is the result: fill it block by block, without a second copy
        out, seen = np.empty((n_frames, features.n_mels), np.float32), 0
        for block in frames:
            out[seen: seen + len(block)] = block
            seen += len(block)
    return ClipFeatures(str(stream.path), stream.n_samples, n_frames, out)


def _reported(stream: AudioStream, on_stream: Callable[[str, float], None] | None, expected: float,
              offset: float) -> Iterator[np.ndarray]:
    """The stream's blocks, telling `on_stream` the share of the file done after each; one pass is half of it."""
    seen = 0
    for block in stream:
        yield block
        seen += len(block)
        if on_stream is not None:
            on_stream(str(stream.path), offset + 0.5 * min(seen / expected, 1.0))
