"""The UMAP map of a run's latent space: colour, filter, select, compare, and inspect a clip by ear."""
import pandas as pd
import streamlit as st

from app import figures, loaders, widgets
from core.analysis import compare_selection
from core.latent import chunk_timeline

run_id, network = widgets.selected()
st.title("Latent map")
table = loaders.load_utterances(run_id, network)
exploration = loaders.load_exploration(run_id, network)
latent, cfg = exploration.latent, exploration.run.config
st.caption(f"{len(table)} utterances in the K-means (cluster-branch) space of network "
           f"`{exploration.network}`; clusters: {latent.centroid_source}. Click a point to inspect it; "
           "pick Box or Lasso Select in the toolbar to compare a selection with all points.")
colour = widgets.colour_ui(table)
show_words = st.toggle("Cluster labels on the map", value=True, key="latent.words",
                       help="Each cluster at its centre, named by the attributes its predicted means depart on "
                            "(at least half a corpus standard deviation above: high, below: low).")
shown = widgets.filters_ui(table)
sample = figures.downsample(shown)
if len(sample) < len(shown):
    st.info(f"Showing a random {len(sample):,} of {len(shown):,} points to keep the map fluid; "
            "statistics below use every selected point.")
words = loaders.load_cluster_labels(run_id, network) if show_words else None
event = st.plotly_chart(figures.latent_map(sample, colour, labels=words), key="latent.map", on_select="rerun",
                        selection_mode=("box", "lasso", "points"), width="stretch")
picked = [p["customdata"][0] for p in event.selection.points] if event and event.selection else []
typed = st.text_input("Inspect a clip", key="latent.inspect", placeholder="a file of the corpus, e.g. "
                      f"{table.index[0]}", help="Or click its point on the map.").strip()
if typed and typed not in table.index:
    st.warning(f"No utterance named {typed!r} in this corpus.")
    typed = ""
if not picked and not typed:
    st.stop()
if len(picked) > 1:
    attributes = [c for c in ("arousal_predicted", "valence_predicted", "dominance_predicted", "arousal", "valence",
                              "dominance") if c in shown and shown[c].notna().any()]
    st.subheader(f"Selection: {len(picked)} utterances")
    st.dataframe(compare_selection(shown, shown.index.intersection(picked), attributes), key="latent.compare",
                 width="stretch")
    st.dataframe(shown.loc[shown.index.intersection(picked)].drop(columns=["x", "y"]), key="latent.table",
                 width="stretch")

# --- the clip inspector ---------------------------------------------------------------------------
clip = typed or (picked[0] if len(picked) == 1 else st.selectbox("Inspect", picked, key="latent.clip"))
row = table.loc[clip]
st.subheader(f"Clip {clip}")
attributes = list(latent.predictions.columns)
facts = {"split": row["split"], "speaker": row.get("speaker"), "emotion": row.get("emotion"), "cluster": row["cluster"]}
facts |= {f"{a} (true / predicted)": f"{'no label' if pd.isna(row[a]) else f'{row[a]:.2f}'} / "
                                     f"{row[f'{a}_predicted']:.2f}" for a in attributes}
st.dataframe(pd.DataFrame([facts]).astype(str), hide_index=True, key="latent.facts", width="stretch")
st.audio(row["path"])
frame_s = cfg.features.hop_length / cfg.audio.sampling_rate
st.plotly_chart(figures.spectrogram(loaders.load_spectrogram(row["path"], run_id), frame_s), key="latent.spectrogram",
                width="stretch")
timeline = chunk_timeline(latent, clip, frame_s, cfg.chunks.chunk_frames)
st.plotly_chart(figures.chunk_timeline(timeline, attributes), key="latent.timeline", width="stretch")
locator = loaders.load_locator(run_id, network)
chunk = st.radio("Play a chunk", list(timeline["chunk"]), horizontal=True, key="latent.chunk",
                 format_func=lambda c: f"{c}: {timeline.at[c, 'start_s']:.1f}-{timeline.at[c, 'end_s']:.1f} s, "
                                       f"cluster {timeline.at[c, 'cluster']}")
st.audio(row["path"], start_time=float(timeline.at[chunk, "start_s"]), end_time=float(timeline.at[chunk, "end_s"]))
positions = locator.chunk_positions(clip)
markers = pd.DataFrame({"x": positions[:, 0], "y": positions[:, 1],
                        "label": [f"chunk {c}" + (" (playing)" if c == chunk else "") for c in timeline["chunk"]]})
st.caption("Where its chunks sit on the map (placed as uploads are: k nearest corpus utterances).")
st.plotly_chart(figures.latent_map(sample, colour, markers, markers_name=f"chunks of {clip}"), key="latent.chunks",
                width="stretch")
st.markdown("**Nearest corpus clips**")
distances, neighbours = locator.projector.neighbours(latent.embeddings[locator.cfg.space][[latent.files.get_loc(clip)]], 6)
for j, d in zip(neighbours[0], distances[0]):
    other = latent.files[j]
    if other == clip:
        continue
    near = table.loc[other]
    st.caption(f"{other}: cluster {near['cluster']}, split {near['split']}, distance {d:.3g}")
    st.audio(near["path"])
