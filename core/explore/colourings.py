"""The ways to colour the latent map, declared once, and the colours every figure of the project shares.

One row of `COLOURINGS` per colouring: the map's options, its legend, the sidebar's filters and the export's
description of the utterance table all read it, so a new colouring is one row here. Only constants and small
pure functions: no plotting library is imported, so the app and the static report can both depend on it.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from core.config import AVD, LabelConfig

# one colour per attribute on every page and figure (true and predicted values share it)
ATTRIBUTE_COLOURS = {"arousal": "#d62728", "valence": "#1f77b4", "dominance": "#2ca02c"}
OTHER_COLOUR = "#7f7f7f"  # an attribute without a colour of its own
# 24 categorical colours, distinguishable neighbours, all dark enough against the grey of unselected points
# (Plotly's "Dark24"); clusters beyond cycle
CATEGORICAL_PALETTE = ("#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#222A2A", "#B68100", "#750D86",
                       "#EB663B", "#511CFB", "#00A08B", "#FB00D1", "#FC0080", "#B2828D", "#6C7C32", "#778AAE",
                       "#862A16", "#A777F1", "#620042", "#1616A7", "#DA60CA", "#6C4516", "#0D2A63", "#AF0038")
SEQUENTIAL_PALETTE = ("#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58",
                      "#b5de2b", "#fde725")  # Viridis: low to high, readable in grey print and by the colour-blind
DIVERGING_PALETTE = ("#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7", "#f4a582",
                     "#d6604d", "#b2182b", "#67001f")  # red-blue (RdBu reversed): blue below 0, white at 0, red above
MISSING_COLOUR = "#8c8c8c"  # a value the point does not have (no true label, no speaker)
UNSELECTED_COLOUR = "#bebebe"  # a point outside the filters or the selection (the map's own grey)
KINDS = ("categorical", "continuous", "diverging")
VALUE_SEPARATOR = "; "  # between the values of a column that holds several per utterance (its tags)


@dataclass(frozen=True, kw_only=True)
class Colouring:
    """One way to colour the map by a column of the utterance table (`core.explore.exploration.utterance_table`)."""
    name: str  # the option's key, unique ("arousal_predicted"); the filters' widget keys are made of it
    column: str  # the column it reads
    kind: str  # categorical: a colour per value; continuous: a colour bar over `limits`; diverging: a bar around 0
    label: str  # how the option, the legend's title and the filter read ("arousal predicted")
    palette: tuple[str, ...]  # '#rrggbb' colours: cycled by categorical values, the stops of a colour bar
    missing: str  # what a point in `MISSING_COLOUR` lacks ("no true label")
    legend: str = ""  # said under the legend's title ("predicted − true")
    # continuous: the bar's ends; None: the corpus's label scale (`LabelConfig`), so that colours compare between
    # attributes and runs. Diverging: None is ± the label scale's width (the largest error a label allows)
    limits: tuple[float, float] | None = None
    plural: str = ""  # categorical: what an empty filter keeps, "all <plural>" (default: the label and an s)
    filter: bool = True  # the sidebar filters by it (a choice of values, or a range)
    several: bool = False  # categorical: a cell holds several values (`VALUE_SEPARATOR`); the filter keeps any of them

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"colouring {self.name!r}: kind must be one of {list(KINDS)}, got {self.kind!r}")
        if not self.palette:
            raise ValueError(f"colouring {self.name!r}: the palette holds no colour")
        if self.limits is not None and not self.limits[0] < self.limits[1]:
            raise ValueError(f"colouring {self.name!r}: limits must rise, got {self.limits}")

    @property
    def every(self) -> str:
        """What an empty choice of values means: "all splits"."""
        return f"all {self.plural or self.label + 's'}"

    def bounds(self, labels: LabelConfig) -> tuple[float, float]:
        """The colour bar's (low, high) for a continuous or diverging colouring, on `labels`' scale unless fixed."""
        if self.limits is not None:
            return self.limits
        if self.kind == "diverging":
            width = labels.maximum - labels.minimum
            return -width, width
        return labels.minimum, labels.maximum


def _attribute_rows(attribute: str) -> tuple[Colouring, ...]:
    """An attribute's true value, its prediction and the prediction's error."""
    return (Colouring(name=attribute, column=attribute, kind="continuous", label=f"{attribute} true",
                      palette=SEQUENTIAL_PALETTE, missing="no true label"),
            Colouring(name=f"{attribute}_predicted", column=f"{attribute}_predicted", kind="continuous",
                      label=f"{attribute} predicted", palette=SEQUENTIAL_PALETTE, missing="no prediction"),
            Colouring(name=f"{attribute}_error", column=f"{attribute}_error", kind="diverging",
                      label=f"{attribute} error", palette=DIVERGING_PALETTE, missing="no true label",
                      legend="predicted − true", filter=False))


COLOURINGS: tuple[Colouring, ...] = (  # in the order the map offers them
    Colouring(name="cluster", column="cluster", kind="categorical", label="cluster", palette=CATEGORICAL_PALETTE,
              missing="no cluster"),
    *[row for attribute in AVD for row in _attribute_rows(attribute)],
    Colouring(name="emotion", column="emotion", kind="categorical", label="emotion", palette=CATEGORICAL_PALETTE,
              missing="no emotion category"),
    Colouring(name="speaker", column="speaker", kind="categorical", label="speaker", palette=CATEGORICAL_PALETTE,
              missing="no speaker"),
    Colouring(name="split", column="split", kind="categorical", label="split", palette=CATEGORICAL_PALETTE,
              missing="no split"),
    # a person's curation (`core.curate`): present once a clip of the corpus is tagged or marked unusable
    Colouring(name="tags", column="tags", kind="categorical", label="tag", palette=CATEGORICAL_PALETTE,
              missing="no tag", several=True),
    Colouring(name="unusable", column="unusable", kind="categorical", label="unusable", palette=CATEGORICAL_PALETTE,
              missing="usable", legend="why it was marked unusable", plural="reasons"),
)


def colouring(name: str) -> Colouring:
    """The row of `COLOURINGS` called `name`.

    Raises:
        KeyError: no colouring of that name (the message lists them).
    """
    for row in COLOURINGS:
        if row.name == name:
            return row
    raise KeyError(f"no colouring {name!r}, expected one of {[row.name for row in COLOURINGS]}")


def colourings_of(table: pd.DataFrame) -> tuple[Colouring, ...]:
    """The colourings `table` can be drawn in: their column is there and holds at least one value."""
    return tuple(row for row in COLOURINGS if row.column in table and table[row.column].notna().any())


def text_columns(table: pd.DataFrame) -> list[str]:
    """The columns of `table` that categorical colourings read as text (the map sends them dictionary-encoded)."""
    columns = dict.fromkeys(row.column for row in COLOURINGS if row.kind == "categorical" and row.column in table)
    return [c for c in columns if table[c].dtype == object or pd.api.types.is_string_dtype(table[c])]


def column_notes(columns=None) -> str:
    """What the map's columns among `columns` (default: all of them) hold, one clause each: "arousal_error: arousal
    error, predicted − true (empty: no true label)"."""
    notes = {}
    for row in COLOURINGS:
        if (columns is None or row.column in columns) and row.column not in notes:
            said = ", ".join(text for text in (row.label if row.label != row.column else "", row.legend) if text)
            notes[row.column] = row.column + (f": {said}" if said else "") + f" (empty: {row.missing})"
    return "; ".join(notes.values())
