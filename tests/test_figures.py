"""The app's pure functions of tables: point colours and legends, file sizes."""
import numpy as np
import pandas as pd

from app.figures import ATTRIBUTE_COLOURS, MISSING, PALETTE, cluster_heatmap, epoch_lines, point_colours, spectrogram
from core.audio.features import mel_spectrogram
from core.config import FeatureConfig
from tests.helpers import sine
from app.widgets import size_text


def _rgb(rgba: np.ndarray) -> np.ndarray:
    return np.stack([rgba & 255, rgba >> 8 & 255, rgba >> 16 & 255], 1)


def _hex(colour: str) -> list[int]:
    return [int(colour[i:i + 2], 16) for i in (1, 3, 5)]


def test_categorical_colours_follow_the_palette_and_missing_values_are_grey():
    table = pd.DataFrame({"emotion": ["sad", "angry", None, "sad"], "cluster": [0, 1, 2, 25]})
    colours = point_colours(table, "emotion")
    rgb = _rgb(colours.rgba)
    assert (rgb[0] == _hex(PALETTE[1])).all() and (rgb[1] == _hex(PALETTE[0])).all()  # sorted: angry, sad
    assert (rgb[0] == rgb[3]).all() and (rgb[2] == _hex(MISSING)).all()
    labels = [label for label, _ in colours.legend["items"]]
    assert labels[:2] == ["angry", "sad"] and "no emotion" in labels and "outside the filters or the selection" in labels
    assert (colours.rgba >> 24 == 255).all()
    clusters = _rgb(point_colours(table, "cluster").rgba)
    assert len({tuple(c) for c in clusters}) == 4  # 4 clusters, 4 colours (the palette holds 24)


def test_continuous_colours_span_the_range_and_errors_centre_on_zero():
    table = pd.DataFrame({"arousal": [1.0, 4.0, 7.0, np.nan], "arousal_error": [-2.0, 0.0, 1.0, np.nan]})
    colours = point_colours(table, "arousal")
    assert (colours.legend["low"], colours.legend["high"]) == ("1.00", "7.00")
    rgb = _rgb(colours.rgba)
    assert (rgb[0] == _hex(colours.legend["stops"][0])).all() and (rgb[2] == _hex(colours.legend["stops"][-1])).all()
    assert (rgb[3] == _hex(MISSING)).all() and any("no true label" in label for label, _ in colours.legend["items"])
    errors = point_colours(table, "arousal_error")
    assert (errors.legend["low"], errors.legend["high"]) == ("-2.00", "2.00")  # symmetric: white is no error


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
