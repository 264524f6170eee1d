"""The built-in demo corpus: real synthesised English speech whose acoustics follow its labels.

eSpeak NG (the libespeak-ng bundled by the `espeakng-loader` package, driven through ctypes) speaks
short neutral sentences; arousal (A), valence (V) and dominance (D) on the 1-7 scale set its prosody
and a few gentle post-filters. With a = A-4, v = V-4, d = D-4 (each in [-3, 3]):

    cue (non-level cues marked *)                  A        V        D     value
    * mean pitch (eSpeak pitch, ~1 % F0 per unit)  up       .        down  speaker + 9a - 5d
    * pitch variability (eSpeak range)             up       .        down  50 + 20a - 8d
    * speaking rate                                faster   .        .     speaker wpm * (1 + 0.12a)
    * spectral tilt (pre-emphasis x[n]-k*x[n-1])   flatter  .        .     k = speaker + 0.15a
    * pitch contour (SSML prosody per word)        .        rising   .     ramp of 6v % over the sentence,
                                                                           +6v % on the last two words
    * breathiness (speech-gated noise > 1.5 kHz)   .        less     .     -30 - 6v dB re speech
      loudness (eSpeak volume, and so the SNR      up       .        up    +1.5a + 1.5d dB
      against the speaker's fixed noise floor)

The model peak-normalises every clip, so level alone would be invisible: every attribute has the
starred non-level cues.

Labels follow real corpora: latent Gaussians with r(A,D) = 0.75, r(A,V) = 0.10, r(V,D) = 0.20, mapped
to 4 + 1.1 z and clipped to 1-7. Nuisance variation is of the same size as the emotion effects:
24 speakers (eSpeak voice variants with their own base pitch, rate, tilt and a noise floor of
25-35 dB SNR), 14 sentences, per-clip jitter of pitch, range and rate, random pauses and output level.
Speakers: 16 train speakers (the unlabelled pool uses them too), 4 dev and 4 test speakers, so dev and
test speakers never occur in training.

eSpeak keeps state between utterances (pitch flutter phase, automatic gain, libc rand()), so each
clip is spoken by a freshly loaded library with fixed random seeds: same seed, byte-identical corpus.
"""
from __future__ import annotations

import csv
import ctypes
import _ctypes
import json
import os
import threading
from pathlib import Path
from typing import Callable
from xml.sax.saxutils import escape

import numpy as np
import soundfile as sf
import soxr

from core.config import AVD
from core.data.manifest import COLUMNS as MANIFEST_COLUMNS  # the generic CSV format

SAMPLE_RATE = 16_000  # Hz, what the model's frontend expects
FORMAT_VERSION = 3  # bump when the generator changes, so cached demo corpora are rebuilt
LABEL_CORRELATION = np.array([[1.00, 0.10, 0.75],  # order A, V, D
                              [0.10, 1.00, 0.20],
                              [0.75, 0.20, 1.00]])
MIN_SECONDS, MAX_SECONDS = 1.5, 5.0
SPEAKER_SPLITS = {"train": 16, "dev": 4, "test": 4}
VOICES = ("en-us+m1", "en-us+f2", "en-gb-x-rp+m3", "en+f3", "en-us+m7", "en-gb-x-rp+f4", "en+m2", "en-us+f5",
          "en-gb-scotland+m4", "en-us+f1", "en+m6", "en-029+f3", "en-us+klatt3", "en+klatt4", "en+anika", "en-us+m4")
SENTENCES = (
    "The old library closes early on Sundays.",
    "Please put the blue folder on my desk.",
    "We drove to the coast last weekend.",
    "The meeting was moved to Thursday afternoon.",
    "My brother bought a new bicycle yesterday.",
    "The train to the city leaves at nine.",
    "She told me the results this morning.",
    "They painted the kitchen walls bright yellow.",
    "I think the package arrived today.",
    "The children played in the garden all day.",
    "He forgot his keys at the office again.",
    "Our neighbours are moving to another town.",
    "The store on the corner sells fresh bread.",
    "You can find the answer in the second chapter.",
)
_ESPEAK_SR = 22_050  # libespeak-ng's native output rate
_ESPEAK_LOCK = threading.Lock()  # the library has process-global state: one utterance at a time
_LIBC: ctypes.CDLL | None = None  # lazily loaded on first synthesis; never at import time


def draw_labels(rng: np.random.Generator, n: int) -> np.ndarray:
    """Draw attribute labels with the correlations of real corpora.

    Args:
        rng: the random generator to draw from.
        n: number of label triples.

    Returns:
        Array (n, 3) of arousal, valence, dominance in [1, 7], rounded to 0.01.
    """
    z = rng.multivariate_normal(np.zeros(3), LABEL_CORRELATION, size=n, method="cholesky")
    return np.round(np.clip(4.0 + 1.1 * z, 1.0, 7.0), 2)


def emotion_name(arousal: float, valence: float) -> str:
    """Categorical name of an arousal-valence quadrant ('neutral' near the centre of both)."""
    if abs(arousal - 4) < 0.75 and abs(valence - 4) < 0.75:
        return "neutral"
    if arousal >= 4:
        return "happy" if valence >= 4 else "angry"
    return "calm" if valence >= 4 else "sad"


def make_demo_corpus(root: str | os.PathLike, *, seed: int = 0, n_train: int = 240, n_dev: int = 60,
                     n_test: int = 60, n_unlabelled: int = 240,
                     progress: Callable[[int, int], None] | None = None) -> Path:
    """Write (or reuse) the demo corpus under `root`.

    Writes `root/audio/demo_NNNN.wav` (16 kHz mono 16-bit, 1.5-5 s), `root/unlabelled_truth.csv` (latent
    labels of the unlabelled clips, for analysis only), `root/corpus.json` (the parameters) and, last,
    `root/manifest.csv`. When the manifest exists and `corpus.json` records the same parameters, nothing
    is regenerated.

    Args:
        root: output folder (created if missing).
        seed: seed of every random choice; the same seed gives byte-identical files.
        n_train: labelled training clips.
        n_dev: labelled development clips.
        n_test: labelled test clips.
        n_unlabelled: clips of the unlabelled pool.
        progress: optional callable(done, total), called after each clip.

    Returns:
        Path of `root/manifest.csv`.

    Raises:
        ValueError: a negative count, or no clips at all.
        RuntimeError: libespeak-ng could not be loaded or refused a voice.
    """
    counts = {"train": n_train, "dev": n_dev, "test": n_test, "unlabelled": n_unlabelled}
    if min(counts.values()) < 0 or sum(counts.values()) == 0:
        raise ValueError(f"clip counts must be >= 0 and not all 0, got {counts}")
    root = Path(root)
    manifest, info_path = root / "manifest.csv", root / "corpus.json"
    params = {"generator": "core.synthetic", "version": FORMAT_VERSION, "seed": int(seed), **counts}
    if manifest.exists() and info_path.exists():
        try:
            if json.loads(info_path.read_text()) == params:
                return manifest
        except ValueError:
            pass  # an unreadable corpus.json: rebuild
    # the manifest marks a complete corpus: remove it first so an interrupted rebuild is never reused
    manifest.unlink(missing_ok=True)
    audio_dir = root / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    for old in audio_dir.glob("demo_*.wav"):
        old.unlink()

    splits = [s for s in counts for _ in range(counts[s])]
    labels = draw_labels(np.random.default_rng([seed, 0]), len(splits))
    speakers = _make_speakers(np.random.default_rng([seed, 1]))
    pools = {s: [k for k, spk in enumerate(speakers) if spk["split"] == s] for s in SPEAKER_SPLITS}
    pick = np.random.default_rng([seed, 2])
    rows, truth = [], []
    for i, (split, (a, v, d)) in enumerate(zip(splits, labels)):
        spk = int(pick.choice(pools["train" if split == "unlabelled" else split]))
        rel = f"audio/demo_{i:04d}.wav"
        audio = _render_clip(a, v, d, speakers[spk], np.random.default_rng([seed, 3, i]))
        sf.write(root / rel, audio, SAMPLE_RATE, subtype="PCM_16")
        emotion = emotion_name(a, v)
        values = [f"{x:.2f}" for x in (a, v, d)]
        if split == "unlabelled":
            rows.append([rel, split, "", "", "", speakers[spk]["name"], ""])
            truth.append([rel, *values, speakers[spk]["name"], emotion])
        else:
            rows.append([rel, split, *values, speakers[spk]["name"], emotion])
        if progress is not None:
            progress(i + 1, len(splits))
    _write_csv(root / "unlabelled_truth.csv", ["path", *AVD, "speaker", "emotion"], truth)
    info_path.write_text(json.dumps(params, indent=1) + "\n")
    _write_csv(manifest, list(MANIFEST_COLUMNS), rows)
    return manifest


def make_corpus(root: str | os.PathLike, n_files: int = 12, seed: int = 0) -> Path:
    """Write a tiny demo corpus for tests: half unlabelled, the labelled half split train/dev/test.

    Args:
        root: output folder.
        n_files: total number of clips (at least 2).
        seed: random seed.

    Returns:
        Path of the manifest.

    Raises:
        ValueError: fewer than 2 files.
    """
    if n_files < 2:
        raise ValueError(f"n_files must be >= 2, got {n_files}")
    n_lab = n_files - n_files // 2
    n_dev = n_test = max(1, n_lab // 6) if n_lab >= 3 else 0
    return make_demo_corpus(root, seed=seed, n_train=n_lab - n_dev - n_test, n_dev=n_dev, n_test=n_test,
                            n_unlabelled=n_files // 2)


def _make_speakers(rng: np.random.Generator) -> list[dict]:
    """Speaker table: voice variant and personal base pitch, rate, tilt and noise floor."""
    voices = rng.permutation(len(VOICES))
    splits = [s for s, n in SPEAKER_SPLITS.items() for _ in range(n)]
    return [{"name": f"spk{k:02d}", "split": split, "voice": VOICES[voices[k % len(VOICES)]],
             "pitch": rng.normal(50, 8), "wpm": rng.uniform(160, 200), "tilt": rng.uniform(0.25, 0.45),
             "snr_db": rng.uniform(25, 35)} for k, split in enumerate(splits)]


def _render_clip(a: float, v: float, d: float, spk: dict, rng: np.random.Generator) -> np.ndarray:
    """Speak one clip for labels (a, v, d) and apply the post-filters; float32 at SAMPLE_RATE."""
    import scipy.signal  # here, not above: ~1 s of import that every `import core` (the app's start) would pay
    a, v, d = a - 4, v - 4, d - 4
    words = SENTENCES[rng.integers(len(SENTENCES))].split()
    # valence: a pitch ramp over the whole sentence (every ~1-s chunk sees its slope), rising when
    # positive and falling when negative, steepest over the last two words
    ramp = [6 * v * (j / (len(words) - 1) - 0.5) + (6 * v if j >= len(words) - 2 else 0) for j in range(len(words))]
    ssml = "<speak>" + " ".join(f'<prosody pitch="{r:+.0f}%">{escape(w)}</prosody>' for w, r in zip(words, ramp)) + "</speak>"
    level_db = 1.5 * a + 1.5 * d
    wav = _espeak(ssml, spk["voice"],
                  rate=spk["wpm"] * (1 + 0.12 * a) * rng.uniform(0.95, 1.05),
                  volume=100 * 10 ** (level_db / 20),
                  pitch=spk["pitch"] + 9 * a - 5 * d + rng.normal(0, 3),
                  prange=50 + 20 * a - 8 * d + rng.normal(0, 4))
    x = wav.astype(np.float64) / 32768
    loud = np.flatnonzero(np.abs(x) > 0.02 * np.abs(x).max())  # trim eSpeak's leading/trailing silence
    x = x[loud[0]:loud[-1] + 1]
    x = soxr.resample(x, _ESPEAK_SR, SAMPLE_RATE, quality="HQ")
    # arousal: flatter spectral tilt through a stronger first-order pre-emphasis
    x = scipy.signal.lfilter([1.0, -float(np.clip(spk["tilt"] + 0.15 * a, 0.0, 0.9))], [1.0], x)
    speech_rms = np.sqrt(np.mean(x ** 2))
    # valence: breathiness, high-passed noise following the speech envelope (more when negative)
    envelope = scipy.signal.lfilter([0.01], [1, -0.99], np.abs(x))
    breath = scipy.signal.lfilter(*scipy.signal.butter(2, 1500, "highpass", fs=SAMPLE_RATE),
                                  rng.standard_normal(len(x)))
    breath *= envelope / max(np.sqrt(np.mean(envelope ** 2)), 1e-9)
    x = x + breath * speech_rms * 10 ** ((-30 - 6 * v) / 20)
    # pauses around the speech, then fit the duration into [MIN_SECONDS, MAX_SECONDS]
    lead, tail = (int(rng.uniform(0.1, 0.35) * SAMPLE_RATE) for _ in range(2))
    x = np.concatenate([np.zeros(lead), x, np.zeros(max(tail, int(MIN_SECONDS * SAMPLE_RATE) - lead - len(x)))])
    if len(x) > MAX_SECONDS * SAMPLE_RATE:
        x = x[:int(MAX_SECONDS * SAMPLE_RATE)]
        x[-800:] *= np.linspace(1, 0, 800)  # 50 ms fade instead of a click
    # the speaker's fixed noise floor (pinkish): louder speech has a better SNR
    noise = scipy.signal.lfilter([1.0], [1.0, -0.9], rng.standard_normal(len(x)))
    noise *= speech_rms * 10 ** (-(spk["snr_db"] + level_db) / 20) / np.sqrt(np.mean(noise ** 2))
    x = x + noise
    # output level carries loudness too, with a random gain; peak stays below full scale
    peak = np.clip(0.5 * 10 ** (level_db / 20) * rng.uniform(0.8, 1.25), 0.1, 0.95)
    return (x * (peak / np.abs(x).max())).astype(np.float32)


def _espeak(ssml: str, voice: str, *, rate: float, volume: float, pitch: float, prange: float) -> np.ndarray:
    """Speak SSML with libespeak-ng; int16 samples at 22050 Hz.

    The library is loaded afresh and unloaded per utterance: its static state would otherwise make an
    utterance depend on everything spoken before it in the process. (Were libespeak-ng also held open
    elsewhere in the process, dlclose would not unload it, and clips would no longer be reproducible.)
    """
    import espeakng_loader  # imported here so importing this module does no work

    global _LIBC
    with _ESPEAK_LOCK:
        if _LIBC is None:
            _LIBC = ctypes.CDLL(None)
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        chunks: list[np.ndarray] = []

        @ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
        def collect(wav, n, events):
            if wav and n > 0:
                chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0  # 0 = go on synthesising

        try:
            # AUDIO_OUTPUT_SYNCHRONOUS = 2; options 0x8000 = espeakINITIALIZE_DONT_EXIT
            if lib.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0x8000) != _ESPEAK_SR:
                raise RuntimeError("libespeak-ng failed to initialise")
            lib.espeak_SetSynthCallback(collect)
            if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise RuntimeError(f"libespeak-ng has no voice {voice!r}")
            # espeakRATE=1 (80-450 wpm), espeakVOLUME=2, espeakPITCH=3 and espeakRANGE=4 (0-100)
            for param, value in ((1, np.clip(rate, 80, 450)), (2, np.clip(volume, 0, 200)),
                                 (3, np.clip(pitch, 0, 100)), (4, np.clip(prange, 0, 100))):
                lib.espeak_SetParameter(param, int(round(float(value))), 0)
            lib.espeak_ng_SetRandSeed(ctypes.c_long(1))  # its own generator, and libc's (breath noise)
            _LIBC.srand(1)
            text = ssml.encode() + b"\0"
            # POS_CHARACTER = 1; flags espeakCHARS_UTF8 | espeakSSML
            status = lib.espeak_Synth(ctypes.c_char_p(text), ctypes.c_size_t(len(text)), 0, 1, 0, 0x1 | 0x10,
                                      None, None)
            lib.espeak_Synchronize()
            if status != 0 or not chunks:
                raise RuntimeError(f"libespeak-ng failed to speak {ssml!r} (status {status})")
        finally:
            lib.espeak_Terminate()
            _ctypes.dlclose(lib._handle)  # POSIX; the next utterance maps a pristine copy
        return np.concatenate(chunks)


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """Write a CSV through a temporary file, so a reader never sees half of it."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, path)
