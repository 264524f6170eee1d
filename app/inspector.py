"""The clip inspector under the latent map, and the chunk player it shares with the Locate page."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app import figures, loaders
from core.latent import chunk_timeline

PLAYING, CHUNK = "#ff7f0e", "#000000"  # star colours: the chunk being played, the clip's other chunks


def chunk_stars(x, y, playing: int, name: str = "chunk", colour: str = CHUNK) -> pd.DataFrame:
    """Markers (x, y, label, colour) of a clip's chunks on the map, the `playing` one marked in `PLAYING`."""
    return pd.DataFrame({"x": x, "y": y, "label": [f"{name} {c}" + (" ▶" if c == playing else "") for c in range(len(x))],
                         "colour": [PLAYING if c == playing else colour for c in range(len(x))]})


def chunk_player_ui(timeline: pd.DataFrame, audio, key: str) -> int:
    """A chunk to play (its cluster and span as the label) and the player of that span; returns its number."""
    chunk = st.radio("Play a chunk (its star turns orange on the map above)", list(timeline["chunk"]), horizontal=True,
                     key=key, format_func=lambda c: f"{c}: {timeline.at[c, 'start_s']:.1f}-"
                                                    f"{timeline.at[c, 'end_s']:.1f} s, cluster {timeline.at[c, 'cluster']}")
    st.audio(audio, start_time=float(timeline.at[chunk, "start_s"]), end_time=float(timeline.at[chunk, "end_s"]))
    return chunk


def chunk_markers(clip: str, run_id: str, network: str | None, playing: int | None) -> pd.DataFrame:
    """Where `clip`'s chunks sit on the map (placed as uploads are: k nearest corpus utterances)."""
    positions = loaders.load_locator(run_id, network).chunk_positions(clip)
    return chunk_stars(positions[:, 0], positions[:, 1], playing)


def clip_inspector_ui(clip: str, table: pd.DataFrame, run_id: str, network: str | None) -> None:
    """Facts, audio, spectrogram, chunk timeline (a chunk to play) and the nearest corpus clips of `clip`."""
    exploration = loaders.load_exploration(run_id, network)
    latent, cfg = exploration.latent, exploration.run.config
    row = table.loc[clip]
    st.subheader(f"Clip {clip}")
    attributes = list(latent.predictions.columns)
    facts = {"split": row["split"], "speaker": row.get("speaker"), "emotion": row.get("emotion"), "cluster": row["cluster"]}
    facts |= {f"{a} (true / predicted)": f"{'no label' if pd.isna(row[a]) else f'{row[a]:.2f}'} / "
                                         f"{row[f'{a}_predicted']:.2f}" for a in attributes}
    st.dataframe(pd.DataFrame([facts]).astype(str), hide_index=True, key="latent.facts", width="stretch")
    st.audio(row["path"])
    frame_s = cfg.features.hop_length / cfg.audio.sampling_rate
    st.plotly_chart(figures.spectrogram(loaders.load_spectrogram(row["path"], run_id), frame_s),
                    key="latent.spectrogram", width="stretch")
    timeline = chunk_timeline(latent, clip, frame_s, cfg.chunks.chunk_frames)
    st.plotly_chart(figures.chunk_timeline(timeline, attributes), key="latent.timeline", width="stretch")
    chunk_player_ui(timeline, row["path"], "latent.chunk")
    st.markdown("**Nearest corpus clips** (clustering space)")
    for other, distance in loaders.load_locator(run_id, network).corpus_neighbours(clip).items():
        near = table.loc[other]
        st.caption(f"{other}: cluster {near['cluster']}, split {near['split']}, distance {distance:.3g}")
        st.audio(near["path"])
