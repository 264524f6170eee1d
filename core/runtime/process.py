"""Process-wide settings, decided in one place: which processes change glibc's malloc behaviour, and why.

Library functions (`train`, `Predictor`, `explore`) never change process settings. The entry points do,
once, at start: the CLI (`python -m core`, also under torchrun), the benchmarks, the app server
(`app/streamlit_app.py`) and the test session. Each of them runs the CNN's forward and backward passes
over and over, whose tens of MB of activations glibc would otherwise map and zero afresh at every step.

Measured (2 cores, `benchmarks/embedding.py`): an embedding pass runs at 546 chunks/s with the options and
290 without (1240 page faults per chunk without, 2 with); the training loop's own pass runs at 515-533.
The app server pays for it in memory: after embedding the 600-clip demo corpus and fitting its map it
holds 959 MB instead of 846 MB (a cached start: 470 MB either way). The server embeds whole corpora and
trains runs, so it sets them too.
"""
from __future__ import annotations

import ctypes


def keep_freed_memory() -> bool:
    """Stop glibc from returning large freed blocks to the OS between network passes.

    Each training step or embedding batch allocates and frees activations of tens of MB; by default
    glibc maps them fresh every time, and the page faults that zero them took ~25 % of training time
    here (and as much kernel time as user time); an embedding pass ran at half the training loop's
    speed without it. Keeping them mapped makes the CNN ~1.5-2x faster on CPU; the cost is that the
    process keeps its peak memory. Process-wide, Linux/glibc only; returns whether it applied.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameter numbers
    return bool(libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 1 << 31))
