"""The clip inspector under the latent map: listen to a clip, its spectrogram, its chunks and its neighbours."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app import figures, loaders
from core.latent import chunk_timeline


def timeline_of(clip: str, run_id: str, network: str | None) -> pd.DataFrame:
    """One row per chunk of `clip`: start_s, end_s, cluster, attributes (`core.latent.chunk_timeline`)."""
    exploration = loaders.load_exploration(run_id, network)
    cfg = exploration.run.config
    return chunk_timeline(exploration.latent, clip, cfg.features.hop_length / cfg.audio.sampling_rate,
                          cfg.chunks.chunk_frames)


def chunk_markers(clip: str, run_id: str, network: str | None, playing: int | None) -> pd.DataFrame:
    """Where `clip`'s chunks sit on the map (placed as uploads are: k nearest corpus utterances): x, y, label."""
    positions = loaders.load_locator(run_id, network).chunk_positions(clip)
    return pd.DataFrame({"x": positions[:, 0], "y": positions[:, 1],
                         "label": [f"chunk {c}" + (" ▶" if c == playing else "") for c in range(len(positions))],
                         "colour": ["#ff7f0e" if c == playing else "#000000" for c in range(len(positions))]})


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
    timeline = timeline_of(clip, run_id, network)
    st.plotly_chart(figures.chunk_timeline(timeline, attributes), key="latent.timeline", width="stretch")
    chunk = st.radio("Play a chunk (its star turns orange on the map above)", list(timeline["chunk"]), horizontal=True,
                     key="latent.chunk", format_func=lambda c: f"{c}: {timeline.at[c, 'start_s']:.1f}-"
                                                               f"{timeline.at[c, 'end_s']:.1f} s, cluster {timeline.at[c, 'cluster']}")
    st.audio(row["path"], start_time=float(timeline.at[chunk, "start_s"]), end_time=float(timeline.at[chunk, "end_s"]))
    st.markdown("**Nearest corpus clips** (clustering space)")
    locator = loaders.load_locator(run_id, network)
    vector = latent.embeddings[locator.cfg.space][[latent.files.get_loc(clip)]]
    distances, neighbours = locator.projector.neighbours(vector, 6)
    for j, d in zip(neighbours[0], distances[0]):
        other = latent.files[j]
        if other == clip:
            continue
        near = table.loc[other]
        st.caption(f"{other}: cluster {near['cluster']}, split {near['split']}, distance {d:.3g}")
        st.audio(near["path"])
