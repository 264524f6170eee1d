"""Widget groups: each `*_ui()` draws its widgets and returns the selection (keys "<page>.<name>")."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from app import figures, loaders, scatter, trainings
from app.scatter import MAX_POINTS
from core.config import AVD, LabelConfig
from core.explore.colourings import VALUE_SEPARATOR, colouring, colourings_of

ATTRIBUTES = AVD  # core fixes the order of the attributes everywhere


def run_picker_ui() -> None:
    """The shared sidebar run picker; the newest run is selected on first load."""
    runs = loaders.list_runs()
    ids = [r.run_id for r in runs]
    if st.session_state.get("run") not in ids:
        st.session_state["run"] = ids[0]
    run_id = st.sidebar.selectbox("Run", ids, key="run")
    run = next(r for r in runs if r.run_id == run_id)
    networks = run.info.source
    if networks:  # an imported published model: one network (and latent space) per attribute
        st.sidebar.selectbox("Latent space of", list(networks), key="network",
                             help="The published release has one model per attribute; each has its own space.")
    else:
        st.session_state["network"] = None
    st.sidebar.caption(f"{run.info.kind} run, created {run.info.created}")


def size_text(n_bytes: int) -> str:
    """A file size as people read it: 812 B, 4.2 kB, 31 MB."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= size:
            return f"{n_bytes / size:.2g} {unit}" if n_bytes < 10 * size else f"{n_bytes / size:.0f} {unit}"
    return f"{n_bytes} B"


def selected() -> tuple[str, str | None]:
    return st.session_state["run"], st.session_state.get("network")


PROGRESS_EVERY_S = 2.0  # how often a page redraws a background job's progress (a fragment); every 1 s slowed the demo
# training beside it by 8 % on 2 cores (README, "fresh machine")


def job_progress_ui(job: trainings.Job) -> None:
    """Progress of a background job (drawn by a fragment that reruns every `PROGRESS_EVERY_S`)."""
    if job.resumed_after is not None:
        st.info(f"Resumed after epoch {job.resumed_after}: the server had stopped while it trained.")
    if job.epochs:  # the whole job: epochs done, then the map
        overall = (job.epoch + (job.done / job.total if job.total else 0.0)) / job.epochs
        st.progress(min(overall, 1.0), text=f"overall: epoch {min(job.epoch + 1, job.epochs)} of {job.epochs}"
                    if not job.stage.startswith((trainings.EMBEDDING_FOR_MAP, trainings.FITTING_MAP)) else
                    "overall: training done, making the map")
    fraction = job.done / job.total if job.total else 0.0
    st.progress(min(fraction, 1.0), text=f"{job.stage} — {job.done}/{job.total or '?'}")
    cols = st.columns(3)
    cols[0].metric("elapsed", f"{time.time() - job.started:.0f} s")
    if job.eta_s is not None:
        cols[1].metric("ETA", f"{job.eta_s / 60:.1f} min")
    if job.dev_ccc:
        loss = f"; dev chunk loss {job.dev_chunk_loss:.3f}" if job.dev_chunk_loss is not None else ""
        cols[2].write("dev CCC: " + ", ".join(f"{a} {v:.2f}" for a, v in job.dev_ccc.items()) + loss)
    if job.live is not None:
        live_map_ui(job.live, key=f"live.{job.label}", drawing=job.live_drawing, labels=job.labels)


LIVE_HOVER = [("file", "file", None), ("cluster", "pseudo-label", 0), ("speaker", "speaker", None),
              ("emotion", "emotion", None), *[(a, a, 2) for a in ATTRIBUTES]]


def live_map_ui(live: trainings.LiveMap, key: str, drawing: bool = False, labels: LabelConfig = LabelConfig()) -> None:
    """A training's map of its latest epoch (`core.training.epoch_space`), coloured by pseudo-label, a true attribute,
    speaker or emotion (the map's colourings its table holds) on the training's label scale `labels`;
    `drawing`: a newer epoch's map is being fitted (said under the heading)."""
    st.subheader(f"The latent space as epoch {live.epoch + 1} clustered it")
    # one caption whatever the state: an element shown only while drawing moved the map's place in the page, and
    # Streamlit then sent the map its (unchanged) data again
    newer = " The map of a newer epoch is being drawn." if drawing else ""
    if live.table is None:
        st.caption(f"No map of this epoch: {live.error}.{newer}")
        return
    sample = f" (a sample of {len(live.table):,} of {live.n_utterances:,})" if len(live.table) < live.n_utterances else ""
    st.caption(f"{len(live.table):,} labelled training utterances{sample} in the clustering space, as the epoch's K-means "
               "saw them before its joint stage: each point's cluster is the pseudo-label of most of its chunks. "
               f"Redrawn every epoch; the run's own map (every clip, the kept model) opens when the training ends.{newer}")
    colours = [row.name for row in colourings_of(live.table)]
    colour = st.radio("Colour by", colours, horizontal=True, key=f"{key}.colour",
                      format_func=lambda c: "pseudo-label" if c == "cluster" else colouring(c).label)
    scatter.scatter_map(live.table, figures.point_colours(live.table, colour, labels), key=key,
                        view=f"{key}/{live.epoch}", hover=[h for h in LIVE_HOVER if h[0] == "file" or h[0] in live.table],
                        size=7.0, height=440, kind="live")


@dataclass(frozen=True)
class MapStyle:
    colour: str  # the name of a colouring (`core.explore.colourings.COLOURINGS`)
    size: float  # point diameter in pixels
    opacity: float
    density: bool  # density shading under the points
    contours: bool  # density contour lines over them
    words: bool  # the clusters' labels at their centres
    max_points: int  # more points in view than this: their density is drawn instead (zoom in for points)


def map_style_ui(table: pd.DataFrame, page: str = "latent") -> MapStyle:
    """Colour, point size, opacity, density shading and cluster labels of a map."""
    options = [row.name for row in colourings_of(table)]
    left, size, opacity, density, more = st.columns([3, 2, 2, 2, 2])
    colour = left.selectbox("Colour by", options, key=f"{page}.color_by", format_func=lambda c: colouring(c).label,
                            help="error: predicted minus true value (labelled utterances only).")
    return MapStyle(colour, size.slider("Point size", 1.0, 12.0, 4.0, 0.5, key=f"{page}.size"),
                    opacity.slider("Opacity", 0.1, 1.0, 0.8, 0.05, key=f"{page}.opacity"),
                    density.toggle("Density shading", key=f"{page}.density",
                                   help="How many points each part of the map holds, drawn under the points."),
                    density.toggle("Density contours", key=f"{page}.contours",
                                   help="Lines around the densest parts of the map: they enclose 30 %, 60 % and "
                                        "90 % of the points in view (a smoothed count), recomputed as you zoom."),
                    more.toggle("Cluster labels", value=True, key=f"{page}.words",
                                help="Each cluster at its centre, named by the attributes its predicted means "
                                     "depart on (at least half a corpus standard deviation above: high, below: low)."),
                    int(more.number_input("Points drawn up to", 10, 5_000_000, MAX_POINTS, 10_000, key=f"{page}.max_points",
                                          help="With more points than this in view the map shows their density; zoom "
                                               "in and the points appear. Lower it on a slow machine.")))


def filters_ui(table: pd.DataFrame) -> np.ndarray:
    """Filters in the sidebar, one per colouring of the map that filters (`core.explore.colourings`): a choice of
    values (empty: all of them) or a range.

    Returns:
        (N,) bool, the rows kept (the map greys the others).
    """
    keep = np.ones(len(table), bool)
    rows = [row for row in colourings_of(table) if row.filter]
    with st.sidebar.expander("Filters", expanded=False):
        for row in (row for row in rows if row.kind == "categorical"):
            values = table[row.column].dropna()
            if row.several:  # a cell holds several values: offer each, keep a row holding any chosen one
                values = values.astype(str).str.split(VALUE_SEPARATOR).explode()
            chosen = st.multiselect(row.label.capitalize(), sorted(values.unique()), key=f"latent.{row.name}s",
                                    placeholder=row.every)
            if chosen and row.several:
                keep &= table[row.column].astype("string").str.split(VALUE_SEPARATOR).map(
                    lambda held: isinstance(held, list) and not set(held).isdisjoint(chosen)).to_numpy(bool)
            elif chosen:
                keep &= table[row.column].isin(chosen).to_numpy()
        for row in (row for row in rows if row.kind != "categorical"):
            lo, hi = float(np.floor(table[row.column].min())), float(np.ceil(table[row.column].max()))
            chosen = st.slider(row.label, lo, hi, (lo, hi), 0.1, key=f"latent.range_{row.name}",
                               help="Utterances without a value pass only while the filter spans the whole range.")
            if chosen != (lo, hi):
                keep &= table[row.column].between(*chosen).to_numpy()
    return keep


def search_ui(table: pd.DataFrame, page: str = "latent") -> np.ndarray | None:
    """A search box over file names and speakers (case-insensitive substring); None when empty.

    Returns:
        (N,) bool, the matches (highlighted on the map).
    """
    text = st.text_input("Search", key=f"{page}.search", placeholder="part of a file name or a speaker",
                         help="Matching points are drawn larger, on top.").strip().lower()
    if not text:
        return None
    found = np.asarray(table.index.str.lower().str.contains(text, regex=False), bool)
    if "speaker" in table:
        found |= table["speaker"].astype("string").str.lower().str.contains(text, regex=False).fillna(False).to_numpy(bool)
    if found.any():
        st.caption(f"{found.sum():,} utterances match {text!r}: drawn larger on the map.")
    else:
        st.warning(f"No file or speaker contains {text!r}.")
    return found
