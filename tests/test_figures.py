"""The app's pure functions of tables: point colours and legends, file sizes."""
import numpy as np
import pandas as pd

import pytest

from app.figures import (cluster_heatmap, contingency_text, dependence_table, epoch_lines, point_colours,
                         spectrogram)
from core.audio.features import mel_spectrogram
from core.config import FeatureConfig, LabelConfig
from core.explore import colourings
from core.explore.colourings import ATTRIBUTE_COLOURS, CATEGORICAL_PALETTE, MISSING_COLOUR, Colouring
from tests.helpers import sine
from app.widgets import size_text


def _rgb(rgba: np.ndarray) -> np.ndarray:
    return np.stack([rgba & 255, rgba >> 8 & 255, rgba >> 16 & 255], 1)


def _hex(colour: str) -> list[int]:
    return [int(colour[i:i + 2], 16) for i in (1, 3, 5)]


def test_point_colours_categorical_follow_the_palette_and_missing_values_are_grey():
    table = pd.DataFrame({"emotion": ["sad", "angry", None, "sad"], "cluster": [0, 1, 2, 25]})
    colours = point_colours(table, "emotion")
    rgb = _rgb(colours.rgba)
    assert (rgb[0] == _hex(CATEGORICAL_PALETTE[1])).all() and (rgb[1] == _hex(CATEGORICAL_PALETTE[0])).all()  # angry, sad
    assert (rgb[0] == rgb[3]).all() and (rgb[2] == _hex(MISSING_COLOUR)).all()
    labels = [label for label, _ in colours.legend.items]
    assert labels[:2] == ["angry", "sad"] and "no emotion category" in labels
    assert "outside the filters or the selection" in labels
    assert (colours.rgba >> 24 == 255).all()
    clusters = _rgb(point_colours(table, "cluster").rgba)
    assert len({tuple(c) for c in clusters}) == 4  # 4 clusters, 4 colours (the palette holds 24)


def test_point_colours_continuous_span_the_label_scale_not_the_data():
    """Issue 30: "arousal predicted" ran from -0.27 to 7.26, so colours did not compare between attributes or runs."""
    scale = LabelConfig(minimum=1.0, maximum=7.0)
    table = pd.DataFrame({"arousal_predicted": [-0.27, 1.0, 4.0, 7.0, 7.26], "valence_predicted": [3.0, 3.5, 4.0, 4.5, 5.0]})
    colours = point_colours(table, "arousal_predicted", scale)
    assert (colours.legend.low, colours.legend.high) == ("1", "7") and colours.legend.title == "arousal predicted"
    assert colours.legend.notes == ("2 outside 1–7, drawn at the ends",)
    rgb, stops = _rgb(colours.rgba), colours.legend.stops
    assert (rgb[0] == _hex(stops[0])).all() and (rgb[1] == _hex(stops[0])).all()  # below the scale: its low end
    assert (rgb[3] == _hex(stops[-1])).all() and (rgb[4] == _hex(stops[-1])).all()
    other = _rgb(point_colours(table, "valence_predicted", scale).rgba)
    assert (other[2] == rgb[2]).all()  # 4.0 is one colour whatever the other values of its attribute
    assert point_colours(table[["valence_predicted"]], "valence_predicted", scale).legend.notes == ()


def test_point_colours_errors_span_the_label_scales_width_around_zero():
    table = pd.DataFrame({"arousal": [1.0, 4.0, 7.0, np.nan], "arousal_error": [-2.0, 0.0, 1.0, np.nan]})
    errors = point_colours(table, "arousal_error", LabelConfig(minimum=1.0, maximum=5.0))
    assert (errors.legend.low, errors.legend.high) == ("-4", "4")  # symmetric, the widest error labels allow
    assert errors.legend.notes == ("predicted − true",)
    rgb = _rgb(errors.rgba)
    assert (rgb[1] == _hex(errors.legend.stops[len(errors.legend.stops) // 2])).all()  # no error: the middle
    assert (rgb[3] == _hex(MISSING_COLOUR)).all() and "no true label" in [label for label, _ in errors.legend.items]
    with pytest.raises(ValueError, match="label scale"):
        point_colours(table, "arousal")  # a colouring on the label scale needs it


def test_point_colours_draw_a_colouring_added_as_one_row(monkeypatch):
    """Issue 30: a new way to colour the map is one row of `core.explore.colourings.COLOURINGS`."""
    row = Colouring(name="chunk_agreement", column="chunks_in_cluster", kind="continuous", label="chunks in its cluster",
                    palette=("#000000", "#ffffff"), missing="no chunks", limits=(0.0, 1.0))
    monkeypatch.setattr(colourings, "COLOURINGS", (*colourings.COLOURINGS, row))
    colours = point_colours(pd.DataFrame({"chunks_in_cluster": [0.0, 0.5, 1.0]}), "chunk_agreement")
    assert colours.legend.title == "chunks in its cluster" and (colours.legend.low, colours.legend.high) == ("0", "1")
    assert _rgb(colours.rgba).tolist() == [[0, 0, 0], [128, 128, 128], [255, 255, 255]]


def test_dependence_table_names_columns_for_readers_and_counts_as_integers():
    """Issue 30: the Clusters × emotion page showed `kruskal_h`, `shuffled_h_mean` and n = "360.000"."""
    raw = pd.DataFrame({"n": [360.0, 120.0], "kruskal_h": [30.2, 1.1], "p_value": [1e-6, 0.5],
                        "shuffled_h_mean": [2.0, 2.1]}, index=pd.Index(["arousal", "valence"], name="attribute"))
    shown = dependence_table(raw)
    assert list(shown.columns) == ["n", "Kruskal–Wallis H", "p-value", "H with shuffled clusters (mean)"]
    assert shown["n"].dtype == np.int64 and shown["n"].tolist() == [360, 120]
    assert list(raw.columns) == ["n", "kruskal_h", "p_value", "shuffled_h_mean"]  # the exported table keeps its names


def test_contingency_text_names_the_statistics_for_readers():
    text = contingency_text({"chi2": 41.2, "p_value": 3.1e-4, "dof": 18, "cramers_v": 0.31})
    assert text == "χ² = 41.2, p-value = 3.10e-04, degrees of freedom = 18, Cramér's V = 0.31"


def test_size_text_is_never_zero_kilobytes():
    assert [size_text(n) for n in (0, 812, 4_200, 31_000_000, 2_500_000_000)] == ["0 B", "812 B", "4.2 kB", "31 MB", "2.5 GB"]


def test_the_cluster_heatmap_gives_every_cluster_a_readable_row():
    for k in (3, 10, 30):
        means = pd.DataFrame({"arousal_mean": np.linspace(2, 6, k), "valence_mean": 4.0},
                             index=pd.Index(range(k), name="cluster"))
        layout = cluster_heatmap(means, ["arousal", "valence"]).layout
        rows_px = (layout.height - layout.margin.t - layout.margin.b) / k
        assert rows_px >= 20, (k, layout.height)


def test_epoch_lines_name_every_series_in_full_and_colour_attributes_as_everywhere():
    table = pd.DataFrame({"arousal": [0.1, 0.3], "NMI with the previous epoch": [0.5, 0.7]}, index=[1, 2])
    fig = epoch_lines(table, "dev CCC")
    assert [t.name for t in fig.data] == ["arousal", "NMI with the previous epoch"]
    assert fig.data[0].line.color == ATTRIBUTE_COLOURS["arousal"]
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.y < 0  # below the plot, wrapped by plotly
    assert fig.layout.xaxis.title.text == "epoch" and fig.layout.yaxis.title.text == "dev CCC"


def test_the_spectrogram_draws_every_pixel_of_log_and_power_features():
    """Issue 29: log-mel features were logged again, and ~96 % of the pixels became NaN (drawn white)."""
    signal = np.concatenate([sine(1.0, frequency_hz=220), np.zeros(8_000, np.float32)])  # a tone, then silence
    for log, unit in ((True, "log mel"), (False, "mel power, dB")):
        features = mel_spectrogram(signal, 16_000, FeatureConfig(log=log))
        fig = spectrogram(features, 0.016, log)
        image = np.asarray(fig.data[0].z, float)
        assert image.shape == features.T.shape and np.isfinite(image).all()
        assert fig.layout.coloraxis.colorbar.title.text == unit
        assert image.max() - image.min() > 20  # the tone stands out of the silence
    assert np.allclose(spectrogram(features := mel_spectrogram(signal, 16_000, FeatureConfig(log=True)), 0.016,
                                   True).data[0].z, features.T)  # log-mel: drawn as stored
