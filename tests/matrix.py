"""The failure matrix's inputs, made on the spot: awkward but valid audio, and files that are not audio."""
import io
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.helpers import sine

GOOD = {  # file name -> (signal, sampling rate, subtype): each must be processed
    "silent.wav": (np.zeros(16_000, np.float32), 16_000, "PCM_16"),
    "dc offset.wav": (np.full(16_000, 0.3, np.float32), 16_000, "PCM_16"),
    "short 0.2 s.wav": (sine(0.2), 16_000, "PCM_16"),
    "narrowband 8k.wav": (sine(1.5, 8_000), 8_000, "PCM_16"),
    "studio 96k.flac": (sine(1.5, 96_000), 96_000, "PCM_24"),
    "surround 6ch.wav": (np.tile(sine(1.5)[:, None], (1, 6)), 16_000, "PCM_16"),
    "deep 24bit.wav": (sine(1.5), 16_000, "PCM_24"),
    "float 32bit.wav": (sine(1.5), 16_000, "FLOAT"),
    "ünïcödé name.wav": (sine(1.5), 16_000, "PCM_16"),
}


def _bad_files(folder: Path) -> dict[str, str]:
    """file name -> a fragment the error must contain."""
    (folder / "empty.wav").write_bytes(b"")
    buffer = io.BytesIO()
    sf.write(buffer, sine(1.0), 16_000, format="WAV")
    (folder / "truncated.wav").write_bytes(buffer.getvalue()[:20])
    (folder / "random bytes.wav").write_bytes(np.random.default_rng(0).bytes(4096))
    (folder / "text.mp3").write_text("this is not an mp3\n" * 50)
    nan = sine(1.0)
    nan[100] = np.nan
    sf.write(folder / "nan.wav", nan, 16_000, subtype="FLOAT")
    return {"empty.wav": "empty file", "truncated.wav": "not a recognised audio file",
            "random bytes.wav": "not a recognised audio file", "text.mp3": "not a recognised audio file",
            "nan.wav": "NaN"}


def write_failure_matrix(folder: Path, one_hour: Path) -> tuple[dict[str, str], list[str]]:
    """Write every input into `folder` (the hour-long clip as a link to `one_hour`).

    Returns:
        {bad file name: a fragment its error must contain} and the sorted names of the good files.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name, (signal, rate, subtype) in GOOD.items():
        sf.write(folder / name, signal, rate, subtype=subtype)
    (folder / one_hour.name).symlink_to(one_hour)
    return _bad_files(folder), sorted([*GOOD, one_hour.name])
