"""First start on a fresh machine: the demo corpus is built and a demo model trained in the background."""
import os

import streamlit as st

from app import trainings, widgets
from core.store.paths import default_data_dir

STEPS = [("synthesising", "1/4 · Generating the demo corpus"), ("features", "2/4 · Extracting features"),
         ("epoch", "3/4 · Training the model"), (trainings.EMBEDDING_FOR_MAP, "4/4 · Making the map: embedding every clip"),
         (trainings.FITTING_MAP, "4/4 · Making the map: fitting UMAP")]  # (words in the job's stage, what the page says)

st.title("DeepEmoCluster Explorer")
st.write("No trained run yet. The built-in demo corpus (synthesised speech whose prosody follows arousal, "
         "valence and dominance) is generated, a DeepEmoCluster model trained on it (`demo` preset, a few "
         "minutes on 2 CPU cores: the ETA below says how many) and its latent map fitted. From the first epoch on, "
         "the page draws the space each epoch clustered; the explorer opens by itself when it is done.")
st.caption("Your own corpus: `python -m core train --corpus PATH --preset default` (see the README); "
           "the published MSP-Podcast models: `python -m core import-official --from DIR`.")
job = trainings.demo_job(str(default_data_dir()), os.environ.get("SER_DEMO_PRESET", "demo"))


@st.fragment(run_every=widgets.PROGRESS_EVERY_S)
def _progress() -> None:
    """The job's step and progress, redrawn on their own (the whole app reruns once, when the job ends)."""
    if job.error or job.finished.is_set():
        st.rerun()  # the whole app: the error below, or the explorer
    st.subheader(next((words for key, words in STEPS if key in job.stage), "Starting"))
    widgets.job_progress_ui(job)


if job.error:
    st.error(f"The demo could not be prepared:\n\n{job.error}")
elif job.finished.is_set():
    st.success("Done: opening the explorer…")
    st.rerun()
else:
    _progress()
