"""The latent map as a Streamlit component: every point drawn by WebGL in `scatter.js`, points sent as Arrow.

Why not `st.plotly_chart`: at 150 000 points each rerun re-sends the whole figure as JSON (~16 MB with
hover text) and a box selection returns every selected point's data; measured in headless chromium a
selection took 5.4 s to reach the page. Here the browser keeps the view and the selection, Python gets
back row numbers only, and a rerun sends one Arrow table, numbers as float32 and text dictionary-encoded
(12.6 MB at 150 000 points; README, "The latent map at corpus scale").
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from app.figures import PointColours

MAX_POINTS = 200_000  # more points in view than this: a density image, points once a zoom brings it under
_component = st.components.v2.component("deepemocluster_latent_map", js=Path(__file__).with_name("scatter.js").read_text())


@dataclass(frozen=True)
class MapEvent:
    selected: pd.Index | None  # the files of the box or lasso selection; None: nothing selected
    clicked: str | None  # the file of the point clicked in this run of the page


def scatter_map(table: pd.DataFrame, colours: PointColours, *, key: str, view: str, state: np.ndarray | None = None,
                hover: list[tuple[str, str, int | None]] = (), markers: pd.DataFrame | None = None,
                labels: pd.DataFrame | None = None, size: float = 4.0, opacity: float = 0.8, density: bool = False,
                contours: bool = False, max_points: int = MAX_POINTS, height: int = 620, on_click=None,
                kind: str = "corpus") -> MapEvent:
    """Draw `table`'s points (index: file; columns x, y and the `hover` columns) coloured by `colours`.

    Args:
        view: names the set of points; a new one resets zoom, pan and the selection (run, network).
        state: (N,) 0 = greyed (outside the filters: not selectable), 1 = drawn, 2 = highlighted; default all 1.
        hover: (column, label, decimals or None for text) shown when the pointer is over a point.
        markers: x, y, label (and optional colour) drawn as stars on top (chunks, located clips).
        labels: x, y, label written on the map (the clusters' words at their centres).
        density, contours: density shading under the points; contour lines of the points in view.
        max_points: more points in view than this and the map draws their density instead (zoom in for points).
        on_click: called when a point is clicked, before the page reruns; `clicked_file(key, table)` reads it.
        kind: "corpus" (a run's map) or "live" (a training's latest epoch, `core.training.epoch_space`), on the map's element.
    """
    points = pd.DataFrame({"x": table["x"].to_numpy(np.float32), "y": table["y"].to_numpy(np.float32),
                           "rgba": colours.rgba, "state": np.ones(len(table), np.uint8) if state is None
                           else np.asarray(state, np.uint8)})
    fields = []
    for k, (column, label, digits) in enumerate(hover):
        if digits is not None:
            points[f"h{k}"] = table[column].to_numpy(np.float32)
        else:  # text: the file names as they are, other text dictionary-encoded (a few distinct values); both
            # assigned as pandas arrays, which Arrow takes as they are (`to_numpy()` made Python strings of them)
            points[f"h{k}"] = table.index.array if column == "file" else table[column].astype("category").array
        fields.append([f"h{k}", label, digits])
    result = _component(key=key, height="content", default={"selection": None}, on_selection_change=lambda: None,
                        on_clicked_change=on_click or (lambda: None), data={
        "points": points, "key": view, "hover": fields, "legend": asdict(colours.legend), "max_points": max_points,
        "height": height, "kind": kind, "size": size, "opacity": opacity, "density": density, "contours": contours,
        "markers": [] if markers is None else markers.to_dict("records"),
        "labels": [] if labels is None else labels.dropna(subset=["x", "y"])[["x", "y", "label"]].to_dict("records")})
    return MapEvent(stored_selection(key, table, view), _file_at(table, result.clicked))


def stored_selection(key: str, table: pd.DataFrame, view: str) -> pd.Index | None:
    """The files of map `key`'s selection as the browser last reported it (None: none), readable before the map
    is drawn in this run of the page (another map links to it)."""
    value = st.session_state.get(key)
    selection = value.get("selection") if isinstance(value, dict) else None
    if not isinstance(selection, dict) or selection.get("view") != view:
        return None
    rows = np.asarray(selection.get("rows") or [], dtype=np.int64)
    return table.index[rows[(rows >= 0) & (rows < len(table))]]


def clicked_file(key: str, table: pd.DataFrame) -> str | None:
    """In an `on_click` callback: the file of the point just clicked on the map `key`."""
    value = st.session_state.get(key)
    return _file_at(table, value.get("clicked") if isinstance(value, dict) else None)


def _file_at(table: pd.DataFrame, row) -> str | None:
    return table.index[row] if isinstance(row, int) and 0 <= row < len(table) else None
