"""Predict arousal, valence and dominance for uploaded clips with a stored run."""
import tempfile
from pathlib import Path

import streamlit as st

from app import loaders

st.title("Predict emotional attributes")
runs = loaders.list_runs()
if not runs:
    st.info("No runs yet. Import the published models: "
            "`python -m core import-official --from <folder with checkpoints and norm_terms>`")
    st.stop()
run_id = st.selectbox("Run", [r.run_id for r in runs], key="predict.run")
uploads = st.file_uploader("Audio clips", type=["wav", "flac", "ogg", "mp3"], accept_multiple_files=True,
                           key="predict.uploads")
if not uploads:
    st.stop()

predictor = loaders.load_predictor(run_id)
with tempfile.TemporaryDirectory() as folder:
    paths = []
    for upload in uploads:
        path = Path(folder) / Path(upload.name).name
        path.write_bytes(upload.getvalue())
        paths.append(path)
    result = predictor.predict_files(paths)
for path, reason in result.errors.items():
    st.error(f"{Path(path).name}: {reason}")
if len(result.utterances):
    table = result.utterances.drop(columns="path").rename(index=lambda p: Path(p).name)
    st.dataframe(table, width="stretch", key="predict.table")
    st.download_button("Download CSV", table.to_csv(), "predictions.csv", "text/csv", key="predict.download")
