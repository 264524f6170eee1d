"""The clip inspector under the latent map, and the chunk player it shares with the Locate page."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from app import figures, loaders
from core.audio.decode import audio_duration_s, cut_wav
from core.store.latent import chunk_timeline

PLAYING, CHUNK = "#ff7f0e", "#000000"  # star colours: the chunk being played, the clip's other chunks


def chunk_spans(timeline: pd.DataFrame) -> pd.DataFrame:
    """The clip's distinct chunk spans, one row each (the first chunk's row) with `label` ("chunk 3", "chunks
    0-10") and `span` ("1.41-2.40 s"): a clip barely longer than a chunk has C chunks of one span (SPEC 2.2),
    the same frames, cluster and map position, which were listed and starred C times."""
    first = timeline.groupby(["start_s", "end_s"], sort=False)["chunk"].agg(["first", "last"])
    spans = timeline.set_index("chunk").loc[first["first"]].reset_index()
    spans["label"] = [f"chunk {a}" if a == b else f"chunks {a}-{b}" for a, b in zip(first["first"], first["last"])]
    decimals = next(d for d in (2, 3, 6) if spans["start_s"].round(d).nunique() == len(spans))
    spans["span"] = [f"{a:.{decimals}f}-{b:.{decimals}f} s" for a, b in zip(spans["start_s"], spans["end_s"])]
    return spans


def chunk_stars(spans: pd.DataFrame, playing: int, colour: str = CHUNK) -> pd.DataFrame:
    """Markers (x, y, label, colour) of a clip's chunk spans on the map, the `playing` chunk's first (its label is
    written first where labels would overlap) and in `PLAYING`."""
    stars = pd.DataFrame({"x": spans["x"], "y": spans["y"], "label": [label + (" ▶" if c == playing else "")
                                                                      for c, label in zip(spans["chunk"], spans["label"])],
                          "colour": [PLAYING if c == playing else colour for c in spans["chunk"]]})
    return stars.iloc[np.argsort(~(spans["chunk"] == playing).to_numpy(), kind="stable")]


def chunk_player_ui(spans: pd.DataFrame, source, key: str) -> int:
    """A chunk span to play (its cluster and span as the label) and a player of exactly its samples (cut out
    as a clip of its own); returns the first chunk of the span. `source`: the audio file, or its bytes."""
    by_chunk = spans.set_index("chunk")
    chunk = st.radio("Play a chunk (its star turns orange on the map above)", list(by_chunk.index), horizontal=True,
                     key=key, format_func=lambda c: f"{by_chunk.at[c, 'label']}: {by_chunk.at[c, 'span']}, "
                                                    f"cluster {by_chunk.at[c, 'cluster']}")
    chunk = chunk if chunk in by_chunk.index else by_chunk.index[0]
    st.audio(cut_wav(source, float(by_chunk.at[chunk, "start_s"]), float(by_chunk.at[chunk, "end_s"])),
             format="audio/wav")
    return chunk


def clip_timeline(clip: str, run_id: str, network: str | None) -> pd.DataFrame:
    """`chunk_timeline` of a corpus clip, with each chunk's place on the map (x, y: placed as uploads are, from the
    k nearest corpus utterances); the page makes it once per run of it, for the map's stars and the inspector."""
    exploration = loaders.load_exploration(run_id, network)
    cfg = exploration.run.config
    timeline = chunk_timeline(exploration.latent, clip, cfg.features.hop_length / cfg.audio.sampling_rate,
                              cfg.chunks.chunk_frames)
    if "start_s" not in timeline:  # a representation run's vector is of the whole clip: one "chunk" spanning it
        timeline = timeline.assign(start_s=0.0, end_s=audio_duration_s(exploration.corpus.at[clip, "path"]))
    positions = loaders.load_locator(run_id, network).chunk_positions(clip)
    return timeline.assign(x=positions[:, 0], y=positions[:, 1])


def neighbour_caption(name: str, row: pd.Series, attributes: list[str], distance: float | None = None) -> str:
    """One line on a corpus clip near another: cluster, split, its true attributes ("unlabelled" without)."""
    labels = [f"{a} {row[a]:.2f}" for a in attributes if a in row and pd.notna(row[a])]
    return (f"{name}: cluster {row['cluster']}, split {row['split']}, " + (", ".join(labels) or "unlabelled")
            + ("" if distance is None else f", distance {distance:.3g}"))


def clip_inspector_ui(clip: str, table: pd.DataFrame, run_id: str, network: str | None, timeline: pd.DataFrame) -> None:
    """Facts, audio, spectrogram, chunk timeline (`clip_timeline`; a chunk to play) and the nearest corpus clips
    of `clip`."""
    exploration = loaders.load_exploration(run_id, network)
    latent, cfg = exploration.latent, exploration.run.config
    row = table.loc[clip]
    st.subheader(f"Clip {clip}")
    attributes = list(latent.predictions.columns)
    facts = {"split": row["split"], "speaker": row.get("speaker"), "emotion": row.get("emotion"), "cluster": row["cluster"]}
    facts |= {name: row[name] for name in ("tags", "unusable") if pd.notna(row.get(name))}  # a person's curation
    facts |= {f"{a} (true / predicted)": f"{'no label' if pd.isna(row[a]) else f'{row[a]:.2f}'} / "
                                         f"{row[f'{a}_predicted']:.2f}" for a in attributes}
    st.dataframe(pd.DataFrame([facts]).astype(str), hide_index=True, key="latent.facts", width="stretch")
    st.audio(row["path"])
    frame_s = cfg.features.hop_length / cfg.audio.sampling_rate
    st.plotly_chart(figures.spectrogram(loaders.load_spectrogram(row["path"], run_id), frame_s, cfg.features.log),
                    key="latent.spectrogram", width="stretch")
    st.plotly_chart(figures.chunk_timeline(timeline, attributes), key="latent.timeline", width="stretch")
    chunk_player_ui(chunk_spans(timeline), row["path"], "latent.chunk")
    st.markdown("**Nearest corpus clips** (clustering space)")
    for other, distance in loaders.load_locator(run_id, network).corpus_neighbours(clip).items():
        st.caption(neighbour_caption(other, table.loc[other], attributes, distance))
        st.audio(table.at[other, "path"])
