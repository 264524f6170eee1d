"""Plotly figures of the app: pure functions of tables, no Streamlit, unit-tested on their own."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from core.explore.palette import ATTRIBUTE_COLOURS  # one colour per attribute, shared with the static report (`core.report.report`)

# 24 categorical colours, distinguishable neighbours, all dark enough against the grey of unselected points (Plotly's "Dark24"); clusters beyond cycle
PALETTE = px.colors.qualitative.Dark24
MISSING = "#8c8c8c"  # a value the point does not have (no true label, no speaker)
LEGEND_ITEMS = 20  # a colour legend lists at most this many categories
CATEGORICAL = ("cluster", "split", "emotion", "speaker")


@dataclass(frozen=True)
class PointColours:
    """Each point's colour for the map (`app/scatter.py`) and the legend that explains it."""
    rgba: np.ndarray  # (N,) uint32: r | g << 8 | b << 16 | a << 24
    legend: dict  # title; items [(label, css colour)]; for a colour bar also stops, low, high


def point_colours(table: pd.DataFrame, colour: str) -> PointColours:
    """Colours by a categorical column (cluster, split, emotion, speaker: `PALETTE`) or a numeric one
    (true or predicted attribute: Viridis; prediction error: red-blue around 0); missing values `MISSING`."""
    values = table[colour]
    missing = values.isna().to_numpy()
    if colour in CATEGORICAL:
        categories = sorted(values.dropna().unique(), key=_natural)
        code = pd.Categorical(values, categories=categories).codes
        hexes = np.array([PALETTE[k % len(PALETTE)] for k in range(max(len(categories), 1))])
        rgb = _hex_to_rgb(hexes)[np.maximum(code, 0)]
        items = [(str(c), hexes[k]) for k, c in enumerate(categories[:LEGEND_ITEMS])]
        if len(categories) > LEGEND_ITEMS:
            items.append((f"… {len(categories) - LEGEND_ITEMS} more (colours repeat)", "transparent"))
        legend = {"title": colour, "items": items}
    else:
        numbers = values.to_numpy(float)
        scale = px.colors.diverging.RdBu_r if colour.endswith("_error") else px.colors.sequential.Viridis
        if missing.all():
            low, high = 0.0, 1.0
        elif colour.endswith("_error"):
            high = float(np.nanmax(np.abs(numbers))) or 1.0
            low = -high
        else:
            low, high = float(np.nanmin(numbers)), float(np.nanmax(numbers))
        t = np.clip((np.nan_to_num(numbers, nan=low) - low) / ((high - low) or 1.0), 0, 1)
        stops = _hex_to_rgb(np.array([_as_hex(c) for c in scale]))
        grid = np.linspace(0, 1, len(stops))
        rgb = np.stack([np.interp(t, grid, stops[:, j]) for j in range(3)], 1)
        name = colour.replace("_", " ")
        legend = {"title": name + (" (predicted − true)" if colour.endswith("_error") else ""),
                  "stops": [_as_hex(c) for c in scale], "low": f"{low:.2f}", "high": f"{high:.2f}", "items": []}
    rgb = np.where(missing[:, None], _hex_to_rgb(np.array([MISSING]))[0], rgb).astype(np.uint32)
    if missing.any():
        legend["items"].append((f"no {colour.replace('_', ' ')}" + (" (no true label)" if colour not in CATEGORICAL else ""),
                                MISSING))
    legend["items"].append(("outside the filters or the selection", "#bebebe"))
    rgba = rgb[:, 0] | rgb[:, 1] << 8 | rgb[:, 2] << 16 | np.uint32(255) << 24
    return PointColours(rgba.astype(np.uint32), legend)


def _as_hex(colour: str) -> str:
    """'#rrggbb' of a Plotly colour given as hex or 'rgb(r, g, b)'."""
    if colour.startswith("#"):
        return colour
    r, g, b = (int(float(v)) for v in colour[colour.index("(") + 1: colour.index(")")].split(",")[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


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
        draw.rounded_rectangle((x, 32 - height / 2, x + 4, 32 + height / 2), radius=2, fill=PALETTE[0])
    return image
