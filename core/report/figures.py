"""The static figures of a run report, as PNG bytes: pure functions of tables, drawn with matplotlib's Agg
canvas on a `Figure` of their own (never pyplot's global state, so they are safe in threads and servers).

One colour per attribute, the app's (`core.explore.colourings`).
"""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from core.explore.colourings import ATTRIBUTE_COLOURS, OTHER_COLOUR

DPI = 110  # sharp enough on a laptop screen, small enough to embed a dozen figures in one page
PUBLISHED_COLOUR = "#444444"
LOSSES = {"cluster_loss": "unlabelled stage: cluster CE", "joint_ce": "labelled stage: cluster CE",
          "joint_ccc_loss": "labelled stage: 1 - CCC"}


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG bytes, rendered by the Agg canvas."""
    FigureCanvasAgg(figure)  # attaches itself to the figure: savefig renders through it
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def colour(attribute: str) -> str:
    return ATTRIBUTE_COLOURS.get(attribute, OTHER_COLOUR)


def dev_ccc_table(history: pd.DataFrame) -> pd.DataFrame:
    """(epochs, attributes) development CCC, attributes in the palette's order (history stores them sorted)."""
    dev = pd.DataFrame(history["dev_ccc"].tolist(), index=history.index)
    order = list(ATTRIBUTE_COLOURS)
    return dev[sorted(dev.columns, key=lambda a: (order.index(a) if a in order else len(order), a))]


def training_figure(history: pd.DataFrame, best_epoch: int | None) -> bytes:
    """Losses, dev CCC per attribute and NMI with the previous epoch, per epoch (1-based), best epoch marked.

    Args:
        history: `Run.history()`: one row per epoch; columns epoch (0-based), the `LOSSES` columns,
            dev_ccc (attribute -> CCC), nmi_previous.
        best_epoch: the kept checkpoint's epoch (0-based), or None.
    """
    epochs = history["epoch"].to_numpy() + 1
    figure = Figure(figsize=(13, 3.6))
    losses, dev, nmi = figure.subplots(1, 3)
    for column, label in LOSSES.items():
        if column in history and history[column].notna().any():
            losses.plot(epochs, history[column].astype(float), marker="o", label=label)
    dev_ccc = dev_ccc_table(history)
    for attribute in dev_ccc.columns:
        dev.plot(epochs, dev_ccc[attribute].to_numpy(float), marker="o", color=colour(attribute), label=attribute)
    nmi.plot(epochs, history["nmi_previous"].astype(float), marker="o", color="#555555")
    for axes, title, ylabel in ((losses, "Losses", "loss"), (dev, "Development CCC", "CCC"),
                                (nmi, "Cluster stability", "NMI with the previous epoch")):
        axes.set(title=title, xlabel="epoch", ylabel=ylabel)
        axes.xaxis.get_major_locator().set_params(integer=True)
        if best_epoch is not None:
            axes.axvline(best_epoch + 1, color="#999999", linestyle="--", linewidth=1, label="best epoch (kept)")
        axes.grid(alpha=0.3)
    losses.legend(fontsize=8)
    dev.legend(fontsize=8)
    nmi.set_ylim(0, 1.05)
    return png_bytes(figure)


def cluster_size_figure(history: pd.DataFrame) -> bytes | None:
    """Per epoch, each cluster's share of the chunks, clusters sorted from largest to smallest: a collapse
    (one giant cluster) shows as one bright column; labelled and (where used) unlabelled chunks side by side.
    None when no epoch recorded cluster sizes."""
    panels = {"labelled chunks": "cluster_sizes", "unlabelled chunks": "unlabelled_cluster_sizes"}
    panels = {title: column for title, column in panels.items()
              if column in history and any(len(sizes or []) for sizes in history[column])}
    if not panels:
        return None
    figure = Figure(figsize=(6 * len(panels), 3.4))
    for axes, (title, column) in zip(np.atleast_1d(figure.subplots(1, len(panels))), panels.items()):
        shares = _sorted_shares(history[column].tolist())  # (epochs, K)
        image = axes.imshow(shares, aspect="auto", cmap="viridis", vmin=0, interpolation="nearest",
                            extent=(0.5, shares.shape[1] + 0.5, len(shares) + 0.5, 0.5))
        axes.set(title=f"Cluster sizes, {title}", xlabel="cluster rank (largest first)", ylabel="epoch")
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.yaxis.get_major_locator().set_params(integer=True)
        figure.colorbar(image, ax=axes, label="share of chunks")
    return png_bytes(figure)


def _sorted_shares(sizes: list[list[int]]) -> np.ndarray:
    """(epochs, K) shares per epoch, sorted descending; epochs with fewer clusters padded with NaN."""
    k = max(len(s or []) for s in sizes)
    out = np.full((len(sizes), k), np.nan)
    for i, row in enumerate(sizes):
        row = np.sort(np.asarray(row or [], float))[::-1]
        if row.sum() > 0:
            out[i, : len(row)] = row / row.sum()
    return out


def estimate_figure(table: pd.DataFrame, *, value: str = "ccc", published: dict[str, float] | None = None,
                    title: str = "") -> bytes:
    """Dot and whisker: one row per (split, attribute), the 95 % interval over utterances as a line and over
    speakers (where known) as a wider pale bar; published values (another corpus) as hollow diamonds.

    Args:
        table: index (split, attribute) [or more levels, attribute last]; columns `value`, low, high,
            and optionally speaker_low, speaker_high (`core.evaluate.evaluation.split_estimates`,
            `core.training.ablation.paired_difference`).
        published: attribute -> a published value, drawn on every row of that attribute.
    """
    labels = [" · ".join(map(str, key)) if isinstance(key, tuple) else str(key) for key in table.index]
    attributes = [key[-1] if isinstance(key, tuple) else key for key in table.index]
    figure = Figure(figsize=(7.5, 0.55 * len(table) + 1.4))
    axes = figure.subplots()
    y = np.arange(len(table))[::-1]
    legend: set[str] = set()

    def once(label: str) -> str | None:  # each legend entry from its first row only
        if label in legend:
            return None
        legend.add(label)
        return label
    for i, (row, attribute) in enumerate(zip(table.itertuples(), attributes)):
        shade = colour(attribute)
        if "speaker_low" in table and pd.notna(row.speaker_low):
            axes.plot([row.speaker_low, row.speaker_high], [y[i]] * 2, color=shade, alpha=0.25, linewidth=9,
                      solid_capstyle="butt", label=once("95 % interval, speakers resampled"))
        if pd.notna(row.low):
            axes.plot([row.low, row.high], [y[i]] * 2, color=shade, linewidth=2,
                      label=once("95 % interval, utterances resampled"))
        if pd.notna(getattr(row, value)):
            axes.plot(getattr(row, value), y[i], "o", color=shade, markersize=7)
        else:
            axes.text(0, y[i], "undefined", va="center", ha="center", fontsize=8, color="#777777")
        if published and attribute in published:
            axes.plot(published[attribute], y[i], "D", markerfacecolor="none", markeredgecolor=PUBLISHED_COLOUR,
                      markersize=8, label=once("published, on MSP-Podcast (not comparable)"))
    axes.axvline(0, color="#999999", linewidth=0.8)
    axes.set_yticks(y, labels)
    axes.set(xlabel="CCC difference" if value == "difference" else "CCC", title=title)
    axes.grid(axis="x", alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8, loc="best")
    return png_bytes(figure)


def dependence_figure(dependence: pd.DataFrame) -> bytes:
    """Epsilon² (Kruskal-Wallis) and mutual information of the clusters with each attribute, observed (bars)
    vs shuffled clusters (mean ± std, black): a bar well above its whisker is a dependence.

    Args:
        dependence: `DependenceReport.dependence`: index (source, attribute); columns epsilon2, mutual_info,
            shuffled_{epsilon2,mi}_{mean,std}.
    """
    figure = Figure(figsize=(12.5, 3.8))
    labels = [f"{attribute}\n({'true' if source == 'label' else 'predicted'})" for source, attribute in dependence.index]
    shades = [colour(attribute) for _, attribute in dependence.index]
    x = np.arange(len(dependence))
    for axes, (observed, shuffled, title) in zip(figure.subplots(1, 2), (
            ("epsilon2", "shuffled_epsilon2", "Effect size epsilon² (Kruskal-Wallis)"),
            ("mutual_info", "shuffled_mi", "Mutual information (nats, binned attribute)"))):
        axes.bar(x, dependence[observed], color=shades, label="observed clusters")
        axes.errorbar(x, dependence[f"{shuffled}_mean"], yerr=dependence[f"{shuffled}_std"], fmt="_", color="black",
                      markersize=14, capsize=4, label="shuffled clusters (mean ± std)")
        axes.set_xticks(x, labels, fontsize=8)
        axes.set_title(title)
        axes.grid(axis="y", alpha=0.3)
        axes.legend(fontsize=8)
    return png_bytes(figure)
