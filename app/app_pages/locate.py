"""Upload or record clips and see where they land: attributes, cluster, map position, chunks, neighbours."""
import io
from pathlib import Path

import pandas as pd
import soundfile as sf
import streamlit as st

from app import figures, inspector, loaders, scatter, widgets
from core.explore.exploration import distinct_names

run_id, network = widgets.selected()
st.title("Locate clips")
run = loaders.load_exploration(run_id, network).run
if run.info.kind == "embeddings":  # vectors made elsewhere: nothing here can embed a new clip as that model would
    st.info(f"{run_id} holds embeddings imported from another model ({run.info.attribution or 'a file'}): a new clip "
            "has none here, so it cannot be located in this space. Compute its embedding with the model that made "
            "them and import it with the corpus, or locate it with a trained run or an acoustic baseline.")
    st.stop()
if run.info.kind == "baseline":
    st.caption(f"{run_id} is an acoustic baseline ({run.info.representation}): a clip is one vector of the whole clip, "
               "so each located clip has one chunk spanning it.")
# the limits, said before a file is chosen: the browser refuses a larger file with its own message, this page a longer one
limit_mb, limit_s = st.get_option("server.maxUploadSize"), run.config.audio.max_duration_s
st.caption(f"Up to {limit_mb} MB and {limit_s / 60:g} min a clip. A larger file: `python -m core locate {run_id} FILE` "
           "on the command line reads it from disk block by block (`python -m core predict` for attributes only).")
uploads = st.file_uploader("Audio clips (wav, flac, ogg, mp3, aiff)", type=["wav", "flac", "ogg", "mp3", "aiff", "aif"],
                           accept_multiple_files=True, key="locate.uploads")
recording = st.audio_input("…or record one", key="locate.record")
files = [*(uploads or []), *([recording] if recording else [])]
# two uploads of the same name are told apart ("a.wav (2)")
names = distinct_names([Path(upload.name or f"recording-{i}.wav").name for i, upload in enumerate(files)])
audio = dict(zip(names, (upload.getvalue() for upload in files)))
for name in list(audio):  # the server's own check of both limits, from the size and the header, before decoding
    try:
        seconds = sf.info(io.BytesIO(audio[name])).duration
    except (sf.LibsndfileError, RuntimeError):  # not audio: locating it says why
        seconds = 0.0
    if len(audio[name]) > limit_mb * 2 ** 20:
        st.error(f"{name}: {len(audio[name]) / 2 ** 20:.1f} MB is over the upload limit of {limit_mb} MB. Locate it from "
                 f"disk instead: `python -m core locate {run_id} '{name}'` reads it block by block.")
    elif seconds > limit_s:
        st.error(f"{name}: {seconds / 60:.1f} min is longer than this run's limit of {limit_s / 60:g} min a clip "
                 f"(audio.max_duration_s). Cut it into parts of at most {limit_s / 60:g} min and locate them all with "
                 f"`python -m core locate {run_id} FOLDER`.")
    else:
        continue
    del audio[name]
table = loaders.load_utterances(run_id, network)
colours = figures.point_colours(table, "cluster")
view = f"{run_id}/{network}/locate"
if not audio:
    scatter.scatter_map(table, colours, key="locate.map", view=view, height=520)
    st.stop()

result = loaders.locate_uploads(run_id, network, tuple(audio.items()))  # once per set of uploads, not per rerun
located = result.table
for name, reason in result.errors.items():
    st.error(f"{name}: {reason}")
if located.empty:
    st.stop()
clip = st.selectbox("Clip", located.index, key="locate.clip", help="Its chunks are drawn on the map as orange stars.")
timeline = result.chunks.loc[clip].reset_index()
spans = inspector.chunk_spans(timeline)
chunk = st.session_state.get("locate.chunk", 0)
chunk = chunk if chunk in set(spans["chunk"]) else 0
# the located clips by their number in the table below, the chosen one also by name, its labels first: the map
# leaves out a label that would cover another (names of clips landing close together were written over each other)
numbers = pd.Series(range(1, len(located) + 1), index=located.index)
clips = pd.DataFrame({"x": located["x"], "y": located["y"], "colour": "#000000",
                      "label": [f"{n} · {name}" if name == clip else str(n) for name, n in numbers.items()]})
markers = pd.concat([clips.loc[[clip]], inspector.chunk_stars(spans, chunk, colour="#fdbf6f"), clips.drop(index=clip)])
scatter.scatter_map(table, colours, key="locate.map", view=view, markers=markers, height=520)
novelty = result.novelty
for name in located.index[located["out_of_distribution"]]:
    st.warning(f"{name} is out of distribution: its nearest corpus utterance is at "
               f"{located.at[name, 'nearest_distance']:.3g}, farther than {novelty.percentile:g} % of the corpus's "
               f"utterances are from their nearest neighbour ({novelty.threshold:.3g}, clustering space).")
shown = located.assign(neighbours=located["neighbours"].map(", ".join))
shown.insert(0, "on the map", numbers)
st.dataframe(shown, key="locate.table", width="stretch")
st.download_button("Download the table (CSV)", shown.to_csv(), "located.csv", "text/csv", key="locate.download")

st.subheader(clip)
st.audio(audio[clip])
st.plotly_chart(figures.chunk_timeline(timeline, list(located.columns.intersection(widgets.ATTRIBUTES))),
                key="locate.timeline", width="stretch")
inspector.chunk_player_ui(spans, audio[clip], "locate.chunk")
st.markdown("**Nearest corpus clips**")
for neighbour in located.at[clip, "neighbours"][:3]:
    st.caption(inspector.neighbour_caption(neighbour, table.loc[neighbour], widgets.ATTRIBUTES))
    st.audio(table.at[neighbour, "path"])
