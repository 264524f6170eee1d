"""Plotly figures of the app: pure functions of tables, no Streamlit, unit-tested on their own."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from core.config import LabelConfig
from core.explore.colourings import (ATTRIBUTE_COLOURS, CATEGORICAL_PALETTE, MISSING_COLOUR, UNSELECTED_COLOUR, Colouring,
                                     colouring)

LEGEND_ITEMS = 20  # a colour legend lists at most this many categories


@dataclass(frozen=True)
class Legend:
    """What the map's legend says (`app/scatter.js` draws it)."""
    title: str
    items: tuple[tuple[str, str], ...]  # (label, css colour): categories, then what the greys mean
    stops: tuple[str, ...] = ()  # a colour bar's colours, low to high; none for categories
    low: str = ""  # the colour bar's ends
    high: str = ""
    notes: tuple[str, ...] = ()  # lines under the title and bar ("predicted − true", values outside the bar's ends)


@dataclass(frozen=True)
class PointColours:
    """Each point's colour for the map (`app/scatter.py`) and the legend that explains it."""
    rgba: np.ndarray  # (N,) uint32: r | g << 8 | b << 16 | a << 24
    legend: Legend


def point_colours(table: pd.DataFrame, colour: str, labels: LabelConfig | None = None) -> PointColours:
    """Colours of `table`'s points by the colouring named `colour` (`core.explore.colourings.COLOURINGS`): a palette
    colour per category, or a colour bar over a fixed scale, the corpus's label scale `labels` unless the colouring
    fixes its own (values beyond its ends are drawn in the end colours, and the legend counts them); points without
    a value in `MISSING_COLOUR`.

    Raises:
        KeyError: an unknown colouring.
        ValueError: a colouring on the label scale without `labels`.
    """
    row = colouring(colour)
    values = table[row.column]
    missing = values.isna().to_numpy()
    if row.kind == "categorical":
        rgb, legend = _categorical_colours(values, row)
    else:
        if row.limits is None and labels is None:
            raise ValueError(f"colouring by {row.label!r} needs the corpus's label scale (labels)")
        rgb, legend = _scale_colours(values.to_numpy(float), row, row.bounds(labels))
    rgb = np.where(missing[:, None], _hex_to_rgb(np.array([MISSING_COLOUR]))[0], rgb).astype(np.uint32)
    greys = ((row.missing, MISSING_COLOUR),) if missing.any() else ()
    legend = dataclasses.replace(legend, items=(*legend.items, *greys,
                                                ("outside the filters or the selection", UNSELECTED_COLOUR)),
                                 notes=(*([row.legend] if row.legend else []), *legend.notes))
    rgba = rgb[:, 0] | rgb[:, 1] << 8 | rgb[:, 2] << 16 | np.uint32(255) << 24
    return PointColours(rgba.astype(np.uint32), legend)


def _categorical_colours(values: pd.Series, row: Colouring) -> tuple[np.ndarray, Legend]:
    """(N, 3) palette colours of the values (sorted naturally, the palette cycled) and their legend."""
    categories = sorted(values.dropna().unique(), key=_natural)
    code = pd.Categorical(values, categories=categories).codes
    hexes = np.array([row.palette[k % len(row.palette)] for k in range(max(len(categories), 1))])
    items = [(str(c), hexes[k]) for k, c in enumerate(categories[:LEGEND_ITEMS])]
    if len(categories) > LEGEND_ITEMS:
        items.append((f"… {len(categories) - LEGEND_ITEMS} more (colours repeat)", "transparent"))
    return _hex_to_rgb(hexes)[np.maximum(code, 0)], Legend(row.label, tuple(items))


def _scale_colours(numbers: np.ndarray, row: Colouring, bounds: tuple[float, float]) -> tuple[np.ndarray, Legend]:
    """(N, 3) colours of the numbers along the colouring's palette from `bounds[0]` to `bounds[1]`, values beyond
    drawn in the end colours, and the colour bar's legend (saying how many lie beyond)."""
    low, high = bounds
    t = np.clip((np.nan_to_num(numbers, nan=low) - low) / (high - low), 0, 1)
    stops = _hex_to_rgb(np.array(row.palette))
    grid = np.linspace(0, 1, len(stops))
    rgb = np.stack([np.interp(t, grid, stops[:, j]) for j in range(3)], 1).round()
    beyond = int(np.sum((numbers < low) | (numbers > high)))  # NaN compares False: not counted
    ends = f"±{high:g}" if row.kind == "diverging" and low == -high else f"{low:g}–{high:g}"
    notes = (f"{beyond:,} outside {ends}, drawn at the ends",) if beyond else ()
    return rgb, Legend(row.label, (), row.palette, f"{low:g}", f"{high:g}", notes)


def dependence_table(dependence: pd.DataFrame) -> pd.DataFrame:
    """The dependence statistics of the clusters (`core.explore.analysis.dependence`) as a reader names them
    ("Kruskal–Wallis H"), counts as integers; exports keep the machine-readable names."""
    from core.explore.analysis import DEPENDENCE_COLUMNS  # scipy: the page has analysed with it already
    counts = {"n": "int64"} if "n" in dependence else {}
    return dependence.astype(counts).rename(columns=DEPENDENCE_COLUMNS)


def contingency_text(statistics: dict[str, float]) -> str:
    """The test of clusters against emotion categories (`core.explore.analysis.contingency`) in one line a reader
    names: "χ² = 41.2, p-value = 3.10e-04, degrees of freedom = 18, Cramér's V = 0.31"."""
    from core.explore.analysis import CONTINGENCY_STATISTICS
    shown = {"p_value": lambda v: f"{v:.2e}", "dof": lambda v: f"{int(v)}"}
    return ", ".join(f"{CONTINGENCY_STATISTICS.get(k, k)} = {shown.get(k, lambda v: f'{v:.4g}')(v)}"
                     for k, v in statistics.items())


def _hex_to_rgb(hexes: np.ndarray) -> np.ndarray:
    """(K, 3) integer channels of K '#rrggbb' colours."""
    return np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in hexes], dtype=np.int64).reshape(-1, 3)


def chunk_timeline(timeline: pd.DataFrame, attributes: list[str]) -> go.Figure:
    """Each chunk's predicted attributes over the clip's time (a step per chunk span), its cluster as text."""
    fig = go.Figure()
    for attribute in attributes:
        fig.add_trace(go.Scatter(x=(timeline["start_s"] + timeline["end_s"]) / 2, y=timeline[attribute], name=attribute,
                                 mode="lines+markers", line={"color": ATTRIBUTE_COLOURS.get(attribute)}, text=[f"chunk {c}, cluster {k}" for c, k in
                                                              zip(timeline["chunk"], timeline["cluster"])]))
    for row in timeline.itertuples():
        fig.add_annotation(x=(row.start_s + row.end_s) / 2, y=1.02, yref="paper", text=str(row.cluster),
                           showarrow=False, font={"size": 10})
    return fig.update_layout(height=260, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                             xaxis={"title": "time in the clip (s); cluster of each chunk above"},
                             yaxis={"title": "predicted value"})


def epoch_lines(table: pd.DataFrame, y_title: str) -> go.Figure:
    """One line per column over the index (epochs from 1), attributes in their own colours, the legend below
    in as many rows as its names need (Streamlit's own line chart cut long names and the last entries off)."""
    fig = go.Figure()
    for column in table.columns:
        fig.add_trace(go.Scatter(x=table.index, y=table[column], name=str(column), mode="lines+markers",
                                 line={"color": ATTRIBUTE_COLOURS.get(column)}))
    return fig.update_layout(height=340, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                             legend={"orientation": "h", "yanchor": "top", "y": -0.25, "x": 0},
                             xaxis={"title": "epoch", "dtick": 1}, yaxis={"title": y_title})


def spectrogram(features, frame_seconds: float, log: bool) -> go.Figure:
    """A clip's mel features (frames x mel bins) as the network sees them, time in seconds.

    Args:
        features: (T, F) un-normalised features as the frontend computes them.
        log: whether they are already log-mel (`FeatureConfig.log`): drawn as stored, in natural-log units.
            Mel power (the published model's input) is drawn in dB (10 log10 of the power, floored 100 dB
            under the clip's loudest bin): its linear values would be one bright band on black.
    """
    values = np.asarray(features, float).T  # (F, T)
    if log:
        image, unit = values, "log mel (as the network sees it)"
    else:
        floor = max(float(values.max(initial=0.0)), 1e-10) * 1e-10
        image, unit = 10 * np.log10(np.maximum(values, floor)), "mel power, dB (the network sees the power)"
    fig = px.imshow(image, origin="lower", aspect="auto", color_continuous_scale="Magma",
                    x=np.arange(image.shape[1]) * frame_seconds, labels={"x": "time (s)", "y": "mel bin", "color": unit})
    return fig.update_layout(height=220, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                             coloraxis_colorbar={"title": {"text": unit.split(" (")[0], "side": "right"}})


def attribute_boxes(table: pd.DataFrame, attributes: list[str], by: str = "cluster") -> go.Figure:
    """One box per cluster for each attribute, side by side."""
    long = table.melt(id_vars=[by], value_vars=attributes, var_name="attribute", value_name="value").dropna()
    long[by] = long[by].astype(str)
    fig = px.box(long, x=by, y="value", color="attribute", points=False, color_discrete_map=ATTRIBUTE_COLOURS,
                 category_orders={by: sorted(long[by].unique(), key=_natural)})
    return fig.update_layout(height=420, xaxis={"title": by, "type": "category", "dtick": 1},
                             yaxis={"title": "attribute value"})


def cluster_heatmap(per_cluster: pd.DataFrame, attributes: list[str]) -> go.Figure:
    """Cluster x attribute heatmap of the mean (rows: clusters)."""
    means = per_cluster[[f"{a}_mean" for a in attributes]].rename(columns=lambda c: c[:-5])
    fig = px.imshow(means, text_auto=".2f", aspect="auto", color_continuous_scale="Viridis",
                     labels={"x": "attribute", "y": "cluster", "color": "mean"})
    # a row of 28 px per cluster above the axis titles and margins (at 60 + 28 px a row, a run of 3 clusters was
    # drawn as a strip whose labels overlapped)
    return fig.update_layout(height=max(260, 130 + 28 * len(means)), margin={"t": 30, "b": 60},
                             yaxis={"type": "category", "dtick": 1})


def _natural(value) -> tuple:
    text = str(value)
    return (0, int(text)) if text.lstrip("-").isdigit() else (1, text)


def page_icon():
    """The browser tab's icon, drawn here (a sound wave in the cluster palette's first colour): a named
    Material icon would be fetched from a font server on every page load."""
    from PIL import Image, ImageDraw
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    for i, height in enumerate((12, 28, 44, 56, 36, 20, 48, 24, 10)):
        x = 4 + i * 6.5
        draw.rounded_rectangle((x, 32 - height / 2, x + 4, 32 + height / 2), radius=2, fill=CATEGORICAL_PALETTE[0])
    return image
