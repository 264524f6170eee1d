"""Mel-power features (SPEC 2.1), their normalisation and dynamic chunking (SPEC 2.2).

Pure tensor code: no disk, no audio decoding. Works batched over utterances, on CPU or GPU.
Shapes: features are (n_frames, n_mels) = (T, F), as lhotse stores them; chunks are (C, m, F).
"""
from __future__ import annotations

import functools
from typing import Iterable, Iterator

import librosa
import numpy as np
import torch

from core.config import ChunkConfig, FeatureConfig


def mel_spectrogram(signal: np.ndarray, sampling_rate: int, cfg: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Mel power spectrogram of one clip, as librosa 0.7's `melspectrogram` made it for the paper.

    Args:
        signal: (n_samples,) mono waveform, already peak-normalised if the pipeline wants that.
        sampling_rate: Hz.
        cfg: STFT and mel parameters (defaults: n_fft 512, hop 256, 128 Slaney mels, reflect padding).

    Returns:
        (1 + n_samples // hop_length, n_mels) float32 array.
    """
    return mel_spectrograms([signal], sampling_rate, cfg)[0]


def mel_spectrograms(signals: list[np.ndarray], sampling_rate: int, cfg: FeatureConfig = FeatureConfig(),
                     device: str | torch.device = "cpu") -> list[np.ndarray]:
    """Batched `mel_spectrogram`: one STFT call per group of clips of similar length.

    On CPU the STFT runs in float64, which reproduces the published librosa features to ~1e-6
    relative error (float32 gives ~5e-5); on a GPU it runs in float32.

    Returns:
        one (n_frames_i, n_mels) float32 array per clip, n_frames_i = 1 + len(signal_i) // hop_length.
    """
    if not signals:
        return []
    # Batch clips of similar length together: zero-padding a 2-s clip to 30 s would waste the STFT.
    order = np.argsort([len(s) for s in signals], kind="stable")
    out: list[np.ndarray] = [None] * len(signals)  # type: ignore[list-item]
    group = [order[0]]
    for i in [*order[1:], None]:
        if i is not None and len(signals[i]) <= 1.25 * len(signals[group[0]]) + cfg.n_fft:
            group.append(i)
            continue
        for j, mel in zip(group, _mel_batch([signals[j] for j in group], sampling_rate, cfg, torch.device(device))):
            out[j] = mel
        group = [i]
    return out


def _mel_batch(signals: list[np.ndarray], sampling_rate: int, cfg: FeatureConfig, device: torch.device) -> list[np.ndarray]:
    half = cfg.n_fft // 2
    # Centre the frames by padding each clip on its own (reflect needs the clip's own samples),
    # then right-pad to a common length so one STFT call covers the batch.
    padded = [_centre_pad(np.asarray(s, dtype=np.float64), half, cfg.pad_mode) for s in signals]
    width = max(len(p) for p in padded)
    batch = np.zeros((len(padded), width), dtype=np.float64)
    for row, p in zip(batch, padded):
        row[: len(p)] = p
    out = _framed_mel(batch, sampling_rate, cfg, device)
    return [out[i, : 1 + len(s) // cfg.hop_length] for i, s in enumerate(signals)]


def _framed_mel(padded: np.ndarray, sampling_rate: int, cfg: FeatureConfig, device: torch.device) -> np.ndarray:
    """(B, L) already centre-padded float64 samples -> (B, 1 + (L - n_fft) // hop, F) float32 mel frames."""
    dtype = torch.float64 if device.type == "cpu" else torch.float32
    x = torch.from_numpy(padded).to(device=device, dtype=dtype)
    window = torch.hann_window(cfg.n_fft, periodic=True, dtype=dtype, device=device)
    spec = torch.stft(x, cfg.n_fft, cfg.hop_length, window=window, center=False, return_complex=True)
    power = spec.abs().pow(cfg.power)  # (B, n_fft/2 + 1, T)
    fb = _mel_basis(sampling_rate, cfg).to(device=device, dtype=dtype)  # (F, n_fft/2 + 1)
    mel = torch.matmul(fb, power).transpose(1, 2)  # (B, T, F)
    if cfg.log:
        mel = torch.log(mel + 1e-10)
    return mel.to(torch.float32).cpu().numpy()


def streamed_mel(blocks: Iterable[np.ndarray], sampling_rate: int, cfg: FeatureConfig = FeatureConfig(),
                 peak: float = 1.0) -> Iterator[np.ndarray]:
    """`mel_spectrogram` of a long clip given as consecutive sample blocks, with bounded memory.

    Frames come out in order as soon as their samples are in; only about one block plus one window is
    held. The frames equal those of `mel_spectrogram(peak_normalise(np.concatenate(blocks)))` (same
    float32 division, same per-frame STFT) for clips longer than half a window.

    Args:
        blocks: consecutive (n_i,) float32 pieces of one mono clip (e.g. `core.audio.decode.AudioStream`).
        peak: every sample is first divided by it in float32 (the clip's max |x| for peak
            normalisation, found by a first pass over the blocks; 1.0: none).

    Yields:
        (t_i, n_mels) float32 frame blocks; 1 + n_samples // hop_length frames in all.

    Raises:
        ValueError: the clip is not longer than `n_fft // 2` samples (use `mel_spectrogram`).
    """
    half, hop, device = cfg.n_fft // 2, cfg.hop_length, torch.device("cpu")
    pending = np.zeros(0)  # centre-padded samples not yet consumed by a frame (float64)
    last = np.zeros(0)  # the clip's latest half + 1 samples, for the reflection at its end
    started = False
    for block in blocks:
        x = np.asarray(block, dtype=np.float32)
        x = (x / np.float32(peak) if peak != 1.0 else x).astype(np.float64)
        if not started:  # reflect-pad the start, as np.pad(mode="reflect") does for the whole clip
            x = np.concatenate([last, x])  # a first block shorter than a window waits for the next
            if len(x) <= half:
                last = x
                continue
            pending, last, started = np.concatenate([x[half:0:-1], x]), x[-(half + 1):], True
        else:
            pending, last = np.concatenate([pending, x]), np.concatenate([last, x])[-(half + 1):]
        n = 1 + (len(pending) - cfg.n_fft) // hop if len(pending) >= cfg.n_fft else 0
        if n > 0:
            yield _framed_mel(pending[None, : (n - 1) * hop + cfg.n_fft], sampling_rate, cfg, device)[0]
            pending = pending[n * hop:]
    if not started or len(last) <= half:
        raise ValueError(f"streamed_mel needs a clip longer than n_fft // 2 = {half} samples")
    tail = np.concatenate([pending, last[-2::-1][:half]])  # reflect-pad the end
    if len(tail) >= cfg.n_fft:
        yield _framed_mel(tail[None], sampling_rate, cfg, device)[0]


def gather_chunks(frame_blocks: Iterable[np.ndarray], n_frames: int, cfg: ChunkConfig = ChunkConfig()) -> np.ndarray:
    """Keep only the frames of a clip's C chunks from a stream of frame blocks (bounded memory).

    Args:
        frame_blocks: consecutive (t_i, F) blocks of one clip's T = `n_frames` >= m frames.

    Returns:
        (C, m, F) array: `cut_chunks(frames, chunk_starts(T))` without holding all T frames.
    """
    starts = chunk_starts(n_frames, cfg)
    out, seen = None, 0
    for block in frame_blocks:
        if out is None:
            out = np.zeros((len(starts), cfg.chunk_frames, block.shape[1]), block.dtype)
        for i, s in enumerate(starts):  # copy the overlap of [s, s + m) with [seen, seen + len(block))
            lo, hi = max(s, seen), min(s + cfg.chunk_frames, seen + len(block))
            if lo < hi:
                out[i, lo - s: hi - s] = block[lo - seen: hi - seen]
        seen += len(block)
    if out is None or seen != n_frames:
        raise ValueError(f"expected {n_frames} frames, the stream had {seen}")
    return out


@functools.lru_cache(maxsize=8)
def _mel_basis(sampling_rate: int, cfg: FeatureConfig) -> torch.Tensor:
    # librosa's Slaney filterbank (htk=False, norm='slaney'), as librosa 0.7 built it (norm=1).
    basis = librosa.filters.mel(sr=sampling_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin_hz,
                                fmax=cfg.fmax_hz, htk=False, norm="slaney", dtype=np.float64)
    return torch.from_numpy(basis)


def _centre_pad(signal: np.ndarray, half: int, pad_mode: str) -> np.ndarray:
    if len(signal) == 0:
        return np.zeros(2 * half)
    # np.pad's reflect repeats the reflection for clips shorter than half a window (torch's cannot).
    return np.pad(signal, half, mode=pad_mode)


def pad_short(features: np.ndarray, cfg: ChunkConfig = ChunkConfig()) -> np.ndarray:
    """Append silent frames (zero mel power) so that a clip has at least one chunk of frames.

    This is the documented "pad" policy for clips shorter than `cfg.chunk_frames` (~1 s);
    the published code cannot process them at all.
    """
    missing = cfg.chunk_frames - len(features)
    if missing <= 0:
        return features
    return np.concatenate([features, np.zeros((missing, features.shape[1]), features.dtype)])


def normalise(features: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, clip: float = 3.0) -> torch.Tensor:
    """Z-score per mel bin with training statistics, NaN -> 0, clip to [-clip, clip] (published order).

    Args:
        features: (..., F) mel features.
        mean, std: (F,) statistics of the training split's frames.
    """
    z = (features - mean) / std
    return torch.nan_to_num(z, nan=0.0, posinf=clip, neginf=-clip).clamp_(-clip, clip)


def chunk_starts(n_frames: int | np.ndarray, cfg: ChunkConfig = ChunkConfig()) -> np.ndarray:
    """First frame of each chunk: step = floor((T - m) / (C - 1)), chunk i covers [i*step, i*step + m).

    Long utterances get sparse chunks, short ones overlapping chunks (dynamic chunk splitting).
    A clip shorter than m frames (after `pad_short` it has exactly m) gets C identical chunks.

    Args:
        n_frames: T of one utterance, or an (N,) array of them.

    Returns:
        (C,) int64, or (N, C) for an array input.
    """
    lengths = np.asarray(n_frames, dtype=np.int64)
    shifts = max(cfg.n_chunks - 1, 1)
    step = np.maximum(lengths - cfg.chunk_frames, 0) // shifts
    return step[..., None] * np.arange(cfg.n_chunks, dtype=np.int64)


def cut_chunks(features: torch.Tensor | np.ndarray, starts: np.ndarray, cfg: ChunkConfig = ChunkConfig()):
    """Gather chunks of `cfg.chunk_frames` frames starting at `starts` (any shape of start indices).

    Args:
        features: (T, F) frames: one utterance, or a whole corpus stored contiguously, in which case
            `starts` are global frame indices (utterance offset + chunk start).
        starts: (...,) int64 start frames; every start + m must be <= T.

    Returns:
        (..., m, F), the same array type as `features`.
    """
    index = np.asarray(starts)[..., None] + np.arange(cfg.chunk_frames)  # (..., m)
    if isinstance(features, torch.Tensor):
        return features[torch.from_numpy(index).to(features.device)]
    return features[index]
