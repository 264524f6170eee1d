"""Plotly figures of the app: pure functions of tables, no Streamlit, unit-tested on their own."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

MAX_POINTS = 50_000  # above this the map shows a random sample (said on the page); WebGL stays fluid


def downsample(table: pd.DataFrame, max_points: int = MAX_POINTS, seed: int = 0) -> pd.DataFrame:
    return table if len(table) <= max_points else table.sample(max_points, random_state=seed)


def latent_map(table: pd.DataFrame, colour: str, markers: pd.DataFrame | None = None,
               labels: pd.DataFrame | None = None, markers_name: str = "located clips") -> go.Figure:
    """Scattergl map of utterances coloured by `colour`; optional `markers` (x, y, label) drawn on top and
    cluster `labels` (x, y, label: `core.cluster_words`) written at the clusters' centres."""
    categorical = colour in ("cluster", "split")
    data = table.assign(**{colour: table[colour].astype(str)}) if categorical else table
    fig = px.scatter(data, x="x", y="y", color=colour, render_mode="webgl", hover_name=data.index,
                     custom_data=[data.index], opacity=0.75,
                     color_continuous_scale="RdBu_r" if colour.endswith("_error") else "Viridis",
                     category_orders={colour: sorted(data[colour].unique(), key=_natural)} if categorical else None)
    fig.update_traces(marker={"size": 5})
    if markers is not None and len(markers):
        fig.add_trace(go.Scattergl(x=markers["x"], y=markers["y"], mode="markers+text", text=markers["label"],
                                   textposition="top center", name=markers_name,
                                   marker={"symbol": "star", "size": 18, "color": "black", "line": {"width": 1, "color": "white"}}))
    for row in (labels.dropna().itertuples() if labels is not None else ()):
        fig.add_annotation(x=row.x, y=row.y, text=row.label, showarrow=False, font={"size": 11, "color": "black"},
                           bgcolor="rgba(255,255,255,0.75)", borderpad=2)
    fig.update_layout(height=620, dragmode="zoom",  # a click inspects a point; box and lasso from the toolbar
                      legend={"itemsizing": "constant"}, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      xaxis={"title": "UMAP 1"}, yaxis={"title": "UMAP 2"})
    return fig


def chunk_timeline(timeline: pd.DataFrame, attributes: list[str]) -> go.Figure:
    """Each chunk's predicted attributes over the clip's time (a step per chunk span), its cluster as text."""
    fig = go.Figure()
    for attribute in attributes:
        fig.add_trace(go.Scatter(x=(timeline["start_s"] + timeline["end_s"]) / 2, y=timeline[attribute], name=attribute,
                                 mode="lines+markers", text=[f"chunk {c}, cluster {k}" for c, k in
                                                              zip(timeline["chunk"], timeline["cluster"])]))
    for row in timeline.itertuples():
        fig.add_annotation(x=(row.start_s + row.end_s) / 2, y=1.02, yref="paper", text=str(row.cluster),
                           showarrow=False, font={"size": 10})
    return fig.update_layout(height=260, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                             xaxis={"title": "time in the clip (s); cluster of each chunk above"},
                             yaxis={"title": "predicted value"})


def spectrogram(mel, frame_seconds: float) -> go.Figure:
    """The clip's log-mel spectrogram (frames x mel bins), time in seconds."""
    import numpy as np
    image = np.log(np.asarray(mel, float).T + 1e-6)
    fig = px.imshow(image, origin="lower", aspect="auto", color_continuous_scale="Magma",
                    x=np.arange(image.shape[1]) * frame_seconds, labels={"x": "time (s)", "y": "mel bin", "color": "log power"})
    return fig.update_layout(height=220, margin={"l": 10, "r": 10, "t": 10, "b": 10})


def attribute_boxes(table: pd.DataFrame, attributes: list[str], by: str = "cluster") -> go.Figure:
    """One box per cluster for each attribute, side by side."""
    long = table.melt(id_vars=[by], value_vars=attributes, var_name="attribute", value_name="value").dropna()
    long[by] = long[by].astype(str)
    return px.box(long, x=by, y="value", color="attribute", points=False,
                  category_orders={by: sorted(long[by].unique(), key=_natural)}).update_layout(height=420)


def cluster_heatmap(per_cluster: pd.DataFrame, attributes: list[str]) -> go.Figure:
    """Cluster x attribute heatmap of the mean (rows: clusters)."""
    means = per_cluster[[f"{a}_mean" for a in attributes]].rename(columns=lambda c: c[:-5])
    return px.imshow(means, text_auto=".2f", aspect="auto", color_continuous_scale="Viridis",
                     labels={"x": "attribute", "y": "cluster", "color": "mean"}).update_layout(height=60 + 28 * len(means))


def _natural(value) -> tuple:
    text = str(value)
    return (0, int(text)) if text.lstrip("-").isdigit() else (1, text)
