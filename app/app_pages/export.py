"""Download every table of the analysis: cluster-emotion, dependence, contingency, utterances, embeddings."""
import tempfile
from pathlib import Path

import streamlit as st

from app import loaders, widgets
from core.export import FORMATS, export_exploration

run_id, network = widgets.selected()
st.title("Export")
fmt = st.segmented_control("Format", FORMATS, default="csv", key="export.format") or "csv"
exploration = loaders.load_exploration(run_id, network)
report = loaders.load_analysis(run_id, network)
with tempfile.TemporaryDirectory() as folder:
    paths = export_exploration(exploration, report, loaders.load_map(run_id, network), Path(folder), fmt)
    files = {p.name: p.read_bytes() for p in paths}
st.caption("CSV cells that a spreadsheet would run as formulas are quoted (CSV injection).")
mime = {"csv": "text/csv", "parquet": "application/octet-stream", "json": "application/json"}[fmt]
for name, data in files.items():
    st.download_button(f"{name} ({len(data) / 1024:.0f} kB)", data, name, mime, key=f"export.{name}")
