"""Download every table of the analysis: cluster-emotion, dependence, contingency, utterances, embeddings."""
import tempfile
from pathlib import Path

import streamlit as st

from app import loaders, widgets
from core.explore.export import DESCRIPTIONS, FORMATS, corpus_folder, export_exploration, map_columns, zip_files

run_id, network = widgets.selected()
st.title("Export")
fmt = st.segmented_control("Format", FORMATS, default="csv", key="export.format") or "csv"
absolute = st.toggle("Absolute audio paths", key="export.absolute",
                     help="Off: the utterances' audio paths are relative to the corpus folder, as their keys are, so the tables "
                          "can be shared.")
exploration = loaders.load_exploration(run_id, network)
report = loaders.load_analysis(run_id, network)
with tempfile.TemporaryDirectory() as folder:
    paths = export_exploration(exploration, report, loaders.load_map(run_id, network), Path(folder), fmt,
                               absolute_paths=absolute)
    files = {p.name: p.read_bytes() for p in paths}
    archive = zip_files(paths)
if not absolute:
    st.caption(f"Audio paths (`path`) and utterance keys (`file`) are both relative to the corpus folder "
               f"{corpus_folder(exploration.corpus.index, exploration.corpus['path'])}.")
if fmt == "csv":
    st.caption("CSV cells that a spreadsheet would run as formulas are quoted (CSV injection).")
mime = {"csv": "text/csv", "parquet": "application/octet-stream", "json": "application/json"}[fmt]
st.download_button(f"Download all ({widgets.size_text(len(archive))}, zip)", archive, f"{run_id}-{fmt}.zip",
                   "application/zip", key="export.all", type="primary")
for name, data in files.items():
    left, right = st.columns([1, 3])
    left.download_button(f"{name} ({widgets.size_text(len(data))})", data, name, mime, key=f"export.{name}")
    right.caption(DESCRIPTIONS[Path(name).stem], help=map_columns(Path(name).stem) or None)
