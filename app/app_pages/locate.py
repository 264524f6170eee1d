"""Upload or record clips and see where they land: attributes, cluster, map position, chunks, neighbours."""
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from app import figures, loaders, scatter, widgets
from core.explore import distinct_names

run_id, network = widgets.selected()
st.title("Locate clips")
uploads = st.file_uploader("Audio clips (wav, flac, ogg, mp3, aiff)", type=["wav", "flac", "ogg", "mp3", "aiff", "aif"],
                           accept_multiple_files=True, key="locate.uploads")
recording = st.audio_input("…or record one", key="locate.record")
files = [*(uploads or []), *([recording] if recording else [])]
table = loaders.load_utterances(run_id, network)
colours = figures.point_colours(table, "cluster")
view = f"{run_id}/{network}/locate"
if not files:
    scatter.scatter_map(table, colours, key="locate.map", view=view, height=520)
    st.stop()

locator = loaders.load_locator(run_id, network)
names = distinct_names([Path(upload.name or f"recording-{i}.wav").name for i, upload in enumerate(files)])
audio = dict(zip(names, (upload.getvalue() for upload in files)))
with tempfile.TemporaryDirectory() as folder:
    paths = {}
    for i, name in enumerate(names):  # two uploads of the same name are told apart ("a.wav (2)")
        path = Path(folder) / f"{i:03d}-{Path(name).name}"
        path.write_bytes(audio[name])
        paths[str(path)] = name
    # files over two minutes are streamed (bounded memory); the run's audio.max_duration_s refuses longer ones
    result = locator.locate_files(list(paths), refuse_silent=True)
located = result.table
for path, reason in result.errors.items():
    st.error(f"{paths[path]}: {reason}")
if located.empty:
    st.stop()
located = located.rename(index=paths)
chunks = result.chunks.rename(index=paths, level="file")
clip = st.selectbox("Clip", located.index, key="locate.clip", help="Its chunks are drawn on the map as orange stars.")
timeline = chunks.loc[clip].reset_index()
chunk = st.session_state.get("locate.chunk", 0)
chunk = chunk if chunk in set(timeline["chunk"]) else 0
markers = pd.concat([pd.DataFrame({"x": located["x"], "y": located["y"], "label": located.index, "colour": "#000000"}),
                     pd.DataFrame({"x": timeline["x"], "y": timeline["y"], "label": [f"{clip} · chunk {c}" for c in timeline["chunk"]],
                                   "colour": ["#ff7f0e" if c == chunk else "#fdbf6f" for c in timeline["chunk"]]})])
scatter.scatter_map(table, colours, key="locate.map", view=view, markers=markers, height=520)
novelty = result.novelty
for name in located.index[located["out_of_distribution"]]:
    st.warning(f"{name} is out of distribution: its nearest corpus utterance is at "
               f"{located.at[name, 'nearest_distance']:.3g}, farther than {novelty.percentile:g} % of the corpus's "
               f"utterances are from their nearest neighbour ({novelty.threshold:.3g}, clustering space).")
shown = located.assign(neighbours=located["neighbours"].map(", ".join))
st.dataframe(shown, key="locate.table", width="stretch")
st.download_button("Download the table (CSV)", shown.to_csv(), "located.csv", "text/csv", key="locate.download")

st.subheader(clip)
st.audio(audio[clip])
st.plotly_chart(figures.chunk_timeline(timeline, list(locator.predictor.attributes)), key="locate.timeline", width="stretch")
st.radio("Play a chunk", list(timeline["chunk"]), horizontal=True, key="locate.chunk",
         format_func=lambda c: f"{c}: {timeline.at[c, 'start_s']:.1f}-{timeline.at[c, 'end_s']:.1f} s, "
                               f"cluster {timeline.at[c, 'cluster']}")
st.audio(audio[clip], start_time=float(timeline.at[chunk, "start_s"]), end_time=float(timeline.at[chunk, "end_s"]))
st.markdown("**Nearest corpus clips**")
for neighbour in located.at[clip, "neighbours"][:3]:
    row = table.loc[neighbour]
    st.caption(f"{neighbour} — cluster {row['cluster']}, split {row['split']}, arousal "
               f"{row.get('arousal', float('nan')):.2f}, valence {row.get('valence', float('nan')):.2f}, "
               f"dominance {row.get('dominance', float('nan')):.2f}")
    st.audio(row["path"])
