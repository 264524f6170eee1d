"""The built-in demo corpus: generated on first start, then listened to and inspected."""
import time

import plotly.express as px
import streamlit as st

from app import loaders

st.title("Built-in demo corpus")
st.caption("Synthesised English speech (espeak-ng) whose prosody follows arousal, valence and dominance; "
           "see `core/synthetic.py` for the mapping. Training and the latent map arrive with the next releases.")

job = loaders.demo_corpus_job(str(loaders.demo_root()))
if not job.finished.is_set():
    st.progress(job.done / job.total if job.total else 0.0, text=f"Synthesising clips… {job.done}/{job.total or '?'}")
    time.sleep(1.0)
    st.rerun()
if job.error:
    st.error(f"The demo corpus could not be generated:\n\n{job.error}")
    st.stop()

table = loaders.load_demo_table(str(job.result))
labelled = table[table["split"] != "unlabelled"]
left, right = st.columns(2)
left.metric("labelled clips", len(labelled))
right.metric("unlabelled clips", len(table) - len(labelled))
st.plotly_chart(px.scatter(labelled, x="arousal", y="valence", color="dominance", symbol="split",
                           hover_name=labelled.index, range_x=[1, 7], range_y=[1, 7],
                           title="Labels of the labelled clips"), width="stretch")
split = st.segmented_control("Split", sorted(table["split"].unique()), default="train", key="demo.split")
shown = table[table["split"] == split] if split else table
st.dataframe(shown.drop(columns="path"), width="stretch", key="demo.table")
clip = st.selectbox("Listen to a clip", shown.index, key="demo.clip")
if clip:
    st.audio(shown.at[clip, "path"])
