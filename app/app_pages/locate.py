"""Upload or record clips and see where they land: attributes, cluster, map position, neighbours."""
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from app import figures, loaders, widgets
from core.explore import distinct_names

run_id, network = widgets.selected()
st.title("Locate clips")
uploads = st.file_uploader("Audio clips (wav, flac, ogg, mp3, aiff)", type=["wav", "flac", "ogg", "mp3", "aiff", "aif"],
                           accept_multiple_files=True, key="locate.uploads")
recording = st.audio_input("…or record one", key="locate.record")
files = [*(uploads or []), *([recording] if recording else [])]
table = loaders.load_utterances(run_id, network)
if not files:
    st.plotly_chart(figures.latent_map(figures.downsample(table), "cluster"), key="locate.map", width="stretch")
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
markers = pd.DataFrame({"x": located["x"], "y": located["y"], "label": located.index})
st.plotly_chart(figures.latent_map(figures.downsample(table), "cluster", markers), key="locate.map", width="stretch")
novelty = result.novelty
for name in located.index[located["out_of_distribution"]]:
    st.warning(f"{name} is out of distribution: its nearest corpus utterance is at "
               f"{located.at[name, 'nearest_distance']:.3g}, farther than {novelty.percentile:g} % of the corpus's "
               f"utterances are from their nearest neighbour ({novelty.threshold:.3g}, clustering space).")
shown = located.assign(neighbours=located["neighbours"].map(", ".join))
st.dataframe(shown, key="locate.table", width="stretch")
st.download_button("Download the table (CSV)", shown.to_csv(), "located.csv", "text/csv", key="locate.download")
clip = st.selectbox("Nearest corpus clips of", located.index, key="locate.clip")
st.audio(audio[clip])
for neighbour in located.at[clip, "neighbours"][:3]:
    row = table.loc[neighbour]
    st.caption(f"{neighbour} — cluster {row['cluster']}, split {row['split']}, arousal "
               f"{row.get('arousal', float('nan')):.2f}, valence {row.get('valence', float('nan')):.2f}, "
               f"dominance {row.get('dominance', float('nan')):.2f}")
    st.audio(row["path"])
