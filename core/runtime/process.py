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

Memory kept that way is kept per malloc arena, and glibc gives each thread that allocates while another does an
arena of its own (up to 8 per core): torch's intra-op threads, the loader's gather threads and the server's
sessions each came to hold their own copy of the peak. One arena bounds it. Measured (2 cores): `predict` over
4 000 clips peaked at 845 MB with one arena, 966 MB with two and 1294 MB with glibc's default, still growing
(10 000 clips: 1343 MB); a 3-epoch `demo` training peaked at 1189-1214 MB instead of 1363-1422 MB, at the same
speed (36.1-36.3 s against 34.3-36.2 s; embedding 682-698 chunks/s either way). The limit binds the arenas
made after it: an entry point sets it before torch is imported where it can (`core/__main__.py`). Predicting
2 000 clips peaked at 1064 MB with the options set after torch's import, 907 MB with them set before.
"""
from __future__ import annotations

import ctypes

ARENAS = 1  # malloc arenas for the whole process (M_ARENA_MAX)


def keep_freed_memory() -> bool:
    """Stop glibc from returning large freed blocks to the OS between network passes, in `ARENAS` arenas.

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
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8  # glibc's mallopt parameter numbers
    return bool(libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 1 << 31)
                and libc.mallopt(m_arena_max, ARENAS))
