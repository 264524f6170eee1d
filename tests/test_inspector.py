"""The clip inspector's pure parts: chunk spans to play and star, captions of neighbouring clips (issue 29)."""
import numpy as np
import pandas as pd

from app.inspector import chunk_spans, chunk_stars, neighbour_caption
from core.audio.features import chunk_starts
from core.config import ChunkConfig

FRAME_S = 0.016


def _timeline(n_frames: int, cfg: ChunkConfig = ChunkConfig()) -> pd.DataFrame:
    start = chunk_starts(n_frames, cfg) * FRAME_S
    return pd.DataFrame({"chunk": np.arange(cfg.n_chunks), "start_s": start, "end_s": start + cfg.chunk_frames * FRAME_S,
                         "cluster": 3, "x": 0.5, "y": 1.5})


def test_a_clip_barely_longer_than_a_chunk_has_one_span_to_play_and_star():
    spans = chunk_spans(_timeline(69))  # 1.1 s: 11 chunks of the same frames (step 0)
    assert list(spans["label"]) == ["chunks 0-10"] and list(spans["span"]) == ["0.00-0.99 s"]
    assert list(chunk_stars(spans, playing=0)["label"]) == ["chunks 0-10 ▶"]


def test_distinct_chunk_spans_are_labelled_apart_with_the_playing_one_first():
    spans = chunk_spans(_timeline(80))  # step 1 frame: spans 16 ms apart, two decimals tell them apart
    assert list(spans["label"]) == [f"chunk {c}" for c in range(11)]
    assert spans["span"].nunique() == 11 and spans["span"].iloc[1] == "0.02-1.01 s"
    stars = chunk_stars(spans, playing=4)
    assert stars["label"].iloc[0] == "chunk 4 ▶" and len(stars) == 11


def test_a_neighbour_without_labels_is_said_unlabelled_not_nan():
    row = pd.Series({"cluster": 2, "split": "unlabelled", "arousal": np.nan, "valence": np.nan})
    assert neighbour_caption("a.wav", row, ["arousal", "valence", "dominance"]) == \
        "a.wav: cluster 2, split unlabelled, unlabelled"
    labelled = pd.Series({"cluster": 1, "split": "dev", "arousal": 5.0, "valence": 3.25})
    assert neighbour_caption("b.wav", labelled, ["arousal", "valence"], 0.5) == \
        "b.wav: cluster 1, split dev, arousal 5.00, valence 3.25, distance 0.5"
