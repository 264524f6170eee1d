"""Audio input: decoding (soundfile), mono mix-down, soxr resampling and safe peak normalisation.

Matches ``librosa.load(path, sr=...)`` numerically; computes no features and writes nothing to disk.
Decoding is deterministic: only the frames the decoder delivers are used, never the rows of a buffer
sized from the header (a damaged MP3 can decode shorter than its header claims; issue 10).
"""
from __future__ import annotations

import io
import math
import os
import warnings
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

from core.errors import UserError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


class AudioLoadingError(UserError):
    """An input that cannot be used as audio (missing, unreadable, corrupt, empty, too long, ...).

    Attributes:
        path: The offending file, as given (converted to str).
        reason: Human-readable cause, e.g. ``"file not found"``.
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fsdecode(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # keeps the exception picklable (worker processes)
        return type(self), (self.path, self.reason)


class ShortDecodeWarning(UserWarning):
    """A file decoded to fewer frames than its header claims (damaged or truncated); its decoded frames are used."""


def _read_info(path: str | os.PathLike):
    """Check that ``path`` is a readable, non-empty file; return ``soundfile.info(path)``."""
    try:
        with open(path, "rb") as fh:
            n_bytes = os.fstat(fh.fileno()).st_size
    except FileNotFoundError as err:
        raise AudioLoadingError(path, "file not found") from err
    except IsADirectoryError as err:
        raise AudioLoadingError(path, "is a directory, not an audio file") from err
    except OSError as err:
        raise AudioLoadingError(path, f"cannot open file ({err.strerror or err})") from err
    if n_bytes == 0:
        raise AudioLoadingError(path, "empty file (0 bytes)")
    try:
        return sf.info(os.fspath(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        detail = (getattr(err, "error_string", None) or str(err)).rstrip(".")
        if "does not exist" in detail:  # how libsndfile reports an MP3 with no decodable frames
            detail = f"no decodable audio stream; libsndfile error {getattr(err, 'code', '?')}"
        raise AudioLoadingError(path, f"not a recognised audio file ({detail})") from err


def _check_header(path: str | os.PathLike, sampling_rate: int, max_duration_s: float):
    """`_read_info`, then refuse files without samples or longer than the limit (before decoding)."""
    if sampling_rate <= 0 or max_duration_s <= 0:
        raise ValueError(
            f"sampling_rate and max_duration_s must be > 0, got {sampling_rate} and {max_duration_s}"
        )
    info = _read_info(path)
    if info.frames <= 0:
        raise AudioLoadingError(path, "contains no audio samples (0 frames)")
    duration = info.frames / info.samplerate
    if duration > max_duration_s:
        raise AudioLoadingError(
            path, f"duration {duration:.2f} s exceeds the limit of {max_duration_s:.2f} s"
        )
    return info


def _decoded_blocks(path: str | os.PathLike, block_frames: int) -> Iterator[np.ndarray]:
    """Decode ``path`` as float32 (frames, channels) blocks of at most ``block_frames`` rows.

    Each block holds only frames the decoder delivered. ``soundfile.blocks`` cuts its blocks from the
    header's frame count instead: when a damaged MP3 decodes shorter than its header claims, it yields
    the never-written rows of an ``np.empty`` buffer (stale heap, so a different result each run).

    Reads are plain ``sf_readf_float`` calls after one seek to the start. ``SoundFile.read`` seeks to
    its own position again after every read, and for MP3 that seek makes libmpg123 re-decode frames
    without their bit reservoir ("part2_3_length too large"): samples then differ by up to 1e-7
    depending on where blocks end, and streaming would not equal whole-file decoding. The seek to the
    start is kept because ``soundfile.read``/``blocks`` make it too, so whole files decode as before
    (an MP3 decodes slightly differently without it). Stops at the header's frame count (the duration
    limit was checked against it) or where the decoder ends.
    """
    with sf.SoundFile(os.fspath(path)) as f:
        f.seek(0)
        remaining = f.frames
        while remaining > 0:
            block = np.empty((min(block_frames, remaining), f.channels), np.float32)
            # soundfile's own low-level read, minus its seek (private API; soundfile is pinned)
            n = sf._snd.sf_readf_float(f._file, sf._ffi.cast("float *", block.ctypes.data), len(block))
            sf._error_check(f._errorcode)
            if n <= 0:
                return
            remaining -= n
            yield block[:n]


def audio_duration_s(path: str | os.PathLike) -> float:
    """Duration of an audio file read from its header, without decoding the samples.

    Args:
        path: Audio file (any format soundfile reads).

    Returns:
        Duration in seconds (``frames / samplerate``); 0.0 for a valid file without samples.

    Raises:
        AudioLoadingError: Missing path, directory, empty file or unrecognised/corrupt header.
    """
    info = _read_info(path)
    return info.frames / info.samplerate


def load_audio(
    path: str | os.PathLike, sampling_rate: int = 16000, *, max_duration_s: float = 3600.0
) -> np.ndarray:
    """Decode an audio file to a mono float32 signal at ``sampling_rate``.

    Same result as ``librosa.load(path, sr=sampling_rate)`` (to ~1e-6): soundfile float32 decode
    (int16 / 32768 scale), mean over channels, soxr "HQ" resampling, length ``ceil(n * sr / sr_in)``.

    Args:
        path: Audio file: wav, flac, ogg/vorbis, mp3, aiff (any rate, channel count, bit depth).
        sampling_rate: Output rate in Hz.
        max_duration_s: Longer files are refused from their header, before any decoding.

    Returns:
        float32 array of shape (n_samples,), mono, at ``sampling_rate`` Hz, values about [-1, 1].

    Raises:
        AudioLoadingError: The file is missing, a directory, empty, not recognised or corrupt,
            has 0 samples, contains NaN/inf samples, or is longer than ``max_duration_s``.
        ValueError: ``sampling_rate`` or ``max_duration_s`` is not positive.

    Warns:
        ShortDecodeWarning: The file decoded to fewer frames than its header claims; the result holds
            only the decoded frames.
    """
    # the whole file as one array: the same samples as streaming it (`AudioStream`), which this reuses
    return np.concatenate(list(AudioStream(path, sampling_rate, max_duration_s=max_duration_s, block_frames=None)))


class AudioStream:
    """A file decoded block by block: mono float32 at ``sampling_rate``, with bounded memory.

    Iterating yields consecutive blocks whose concatenation equals ``load_audio(path, sampling_rate)``
    bit for bit (same float32 decode and channel mean; soxr's streaming resampler gives the same
    samples as its one-shot call), holding at most ``block_frames`` input frames at a time. Each
    iteration decodes the file again, so a caller can make two passes (the peak, then the features)
    without ever holding an hour-long signal.

    A file that decodes to fewer frames than its header claims (a damaged MP3) gives the frames it
    decoded, the same every time, with a `ShortDecodeWarning` per iteration.

    Args:
        block_frames: input frames decoded at a time; None: the whole file in one block.

    Attributes:
        path: The file, as given.
        n_samples: Output length, known after the first complete iteration (None before); from the
            frames actually decoded, not from the header.
    """

    def __init__(self, path: str | os.PathLike, sampling_rate: int = 16000, *, max_duration_s: float = 3600.0,
                 block_frames: int | None = 1 << 16):
        self.info = _check_header(path, sampling_rate, max_duration_s)
        self.path, self.sampling_rate, self.block_frames = path, sampling_rate, block_frames
        self.n_samples: int | None = None

    @property
    def duration_s(self) -> float:
        """Duration from the header, in seconds."""
        return self.info.frames / self.info.samplerate

    def __iter__(self) -> Iterator[np.ndarray]:
        sr_in = self.info.samplerate
        resampler = None if sr_in == self.sampling_rate else soxr.ResampleStream(
            sr_in, self.sampling_rate, 1, dtype="float32", quality="HQ")
        n_in = n_out = 0
        try:
            blocksize = self.block_frames or max(self.info.frames, 1)
            for data in _decoded_blocks(self.path, blocksize):
                if not (np.isfinite(data.min()) and np.isfinite(data.max())):
                    raise AudioLoadingError(self.path, "contains NaN or infinite sample values")
                # (frames, channels) -> (frames,): librosa.to_mono averages the same transposed view
                signal = np.ascontiguousarray(data[:, 0] if data.shape[1] == 1 else np.mean(data.T, axis=0))
                n_in += len(signal)
                out = signal if resampler is None else resampler.resample_chunk(signal)
                n_out += len(out)
                yield out
        except (sf.LibsndfileError, RuntimeError) as err:
            detail = getattr(err, "error_string", None) or str(err)
            raise AudioLoadingError(self.path, f"decoding failed ({detail.rstrip('.')})") from err
        if n_in == 0:
            raise AudioLoadingError(self.path, "contains no audio samples (0 frames decoded)")
        if n_in < self.info.frames:  # said, since the clip is shorter than `duration_s` promised
            warnings.warn(f"{os.fsdecode(self.path)}: decoded {n_in} frames, but its header claims "
                          f"{self.info.frames}; using the {n_in} decoded frames (damaged or truncated file?)",
                          ShortDecodeWarning, stacklevel=2)
        # librosa.resample(res_type="soxr_hq") then fix_length: the resampler's remainder, then the
        # length ceil(n * ratio), zero-padded
        total = n_in if resampler is None else int(math.ceil(n_in * (float(self.sampling_rate) / sr_in)))
        if resampler is not None:
            rest = resampler.resample_chunk(np.zeros(0, np.float32), last=True)[: total - n_out]
            rest = np.concatenate([rest, np.zeros(total - n_out - len(rest), np.float32)])
            if len(rest):
                yield rest
        self.n_samples = total


def cut_wav(source: str | os.PathLike | bytes, start_s: float, end_s: float) -> bytes:
    """The span [start_s, end_s) of an audio file as a WAV file of its own, at the file's rate and channels.

    A chunk is played from these samples: Streamlit's `st.audio` starts and ends a clip at whole seconds,
    so a chunk at 1.4-2.4 s played 1.0-2.2 s (issue 29).

    Args:
        source: an audio file, or its bytes (an upload).
        start_s, end_s: the span in seconds; an end past the clip (a padded short clip) stops at its end.

    Returns:
        16-bit PCM WAV bytes of the span's samples.

    Raises:
        AudioLoadingError: the file cannot be decoded, or the span holds no samples of it.
    """
    name = "upload" if isinstance(source, bytes) else source
    try:
        with sf.SoundFile(io.BytesIO(source) if isinstance(source, bytes) else os.fspath(source)) as f:
            first = min(max(int(round(start_s * f.samplerate)), 0), f.frames)
            f.seek(first)
            data = f.read(max(int(round(end_s * f.samplerate)) - first, 0), dtype="float32", always_2d=True)
            rate = f.samplerate
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise AudioLoadingError(name, f"cannot cut {start_s:.2f}-{end_s:.2f} s ({err})") from err
    if not len(data):
        raise AudioLoadingError(name, f"no samples between {start_s:.2f} and {end_s:.2f} s")
    buffer = io.BytesIO()
    sf.write(buffer, data, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def peak_normalise(signal: np.ndarray) -> np.ndarray:
    """Scale a clip so that its largest absolute sample is 1 (the published per-clip frontend).

    Args:
        signal: 1-D audio samples, shape (n_samples,), any float or int dtype.

    Returns:
        New float32 array ``signal / max|signal|``, same shape; all zeros for a silent or empty clip.

    Raises:
        ValueError: ``signal`` contains NaN or infinite values.
    """
    x = np.asarray(signal, dtype=np.float32)
    if x.size == 0:
        return x.copy()
    peak = float(np.max(np.abs(x)))
    if not math.isfinite(peak):
        raise ValueError("signal contains NaN or infinite values")
    if peak == 0.0:
        return np.zeros_like(x)
    return (x / np.float32(peak)).astype(np.float32, copy=False)
