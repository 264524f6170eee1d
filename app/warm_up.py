"""Imports warmed up in threads of their own, once per server: UMAP's compiled code before the first map, and
what a click on a point runs once the map is drawn (the map page itself is drawn without them: `core/__init__`)."""
from __future__ import annotations

import importlib
import threading

import streamlit as st

_WARMING_LOCK, _WARMING = threading.Lock(), []  # the server's one warm-up thread, once started


def warm_map_code() -> threading.Thread:
    """Once per server: `core.explore.projection.warm_up` in a thread, started by the first job before its own work
    (the demo job: while it generates the corpus, which leaves a core idle). A job joins it before its map."""
    with _WARMING_LOCK:
        if not _WARMING:
            _WARMING.append(threading.Thread(target=_warm_up_map_code, name="UMAP warm-up", daemon=True))
            _WARMING[0].start()
        return _WARMING[0]


def _warm_up_map_code() -> None:
    from core.explore.projection import warm_up  # imports scikit-learn (~2 s): in this thread, not in the job that starts it
    warm_up()


CLIP_MODULES = ("core.explore.locator", "core.audio.frontend", "core.explore.analysis")  # what a click on a point imports: torch, librosa,
# scikit-learn and scipy.stats, about 3 s on two cores


@st.cache_resource(show_spinner=False)
def warm_clip_code() -> threading.Thread:
    """Once per server, after the first map: `CLIP_MODULES` imported in a thread, so that the first click on a point
    does not wait for them (the map page is drawn without them: `core/__init__` says why)."""
    thread = threading.Thread(target=lambda: [importlib.import_module(m) for m in CLIP_MODULES],
                              name="clip-code warm-up", daemon=True)
    thread.start()
    return thread
