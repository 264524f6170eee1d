"""The UMAP map of a run's latent space: colour, filter, select, compare, listen."""
import streamlit as st

from app import figures, loaders, widgets
from core.analysis import compare_selection
from core.inference import file_chunk_times

run_id, network = widgets.selected()
st.title("Latent map")
table = loaders.load_utterances(run_id, network)
exploration = loaders.load_exploration(run_id, network)
st.caption(f"{len(table)} utterances in the K-means (cluster-branch) space of network "
           f"`{exploration.network}`; clusters: {exploration.latent.centroid_source}.")
colour = widgets.colour_ui(table)
shown = widgets.filters_ui(table)
sample = figures.downsample(shown)
if len(sample) < len(shown):
    st.info(f"Showing a random {len(sample):,} of {len(shown):,} points to keep the map fluid; "
            "statistics below use every selected point.")
event = st.plotly_chart(figures.latent_map(sample, colour), key="latent.map", on_select="rerun",
                        selection_mode=("box", "lasso", "points"), width="stretch")
picked = [p["customdata"][0] for p in event.selection.points] if event and event.selection else []
if not picked:
    st.caption("Draw a box or lasso on the map to compare a selection with all points.")
    st.stop()
attributes = [c for c in ("arousal_predicted", "valence_predicted", "dominance_predicted", "arousal", "valence", "dominance")
              if c in shown and shown[c].notna().any()]
st.subheader(f"Selection: {len(picked)} utterances")
st.dataframe(compare_selection(shown, shown.index.intersection(picked), attributes), key="latent.compare")
st.dataframe(shown.loc[shown.index.intersection(picked)].drop(columns=["x", "y"]), key="latent.table")
clip = st.selectbox("Listen", picked, key="latent.clip")
chunk = st.slider("1-s chunk (0 = whole clip)", 0, exploration.latent.n_chunks, 0, key="latent.chunk")
path = table.at[clip, "path"]
if chunk == 0:
    st.audio(path)
else:
    start, end = file_chunk_times(path, exploration.run.config)[chunk - 1]
    st.audio(path, start_time=start, end_time=end)
