"""Download every table of the analysis: cluster-emotion, dependence, contingency, utterances, embeddings."""
import tempfile
from pathlib import Path

import streamlit as st

from app import curation, loaders, widgets
from core.curate.corrected import UNUSABLE, export_corpus
from core.curate.edits import annotations
from core.errors import UserError
from core.explore.export import DESCRIPTIONS, FORMATS, corpus_folder, export_exploration, map_columns, zip_files

run_id, network = widgets.selected()
st.title("Export")
fmt = st.segmented_control("Format", FORMATS, default="csv", key="export.format") or "csv"
absolute = st.toggle("Absolute audio paths", key="export.absolute",
                     help="Off: the utterances' audio paths are relative to the corpus folder, as their keys are, so the tables "
                          "can be shared.")
exploration = loaders.load_exploration(run_id, network)
current = curation.corpus_curation(run_id, network)  # tags and unusable marks go in the utterances table
curation.damaged_warning(current)
report = loaders.load_analysis(run_id, network)
with tempfile.TemporaryDirectory() as folder:
    paths = export_exploration(exploration, report, loaders.load_map(run_id, network), Path(folder), fmt,
                               absolute_paths=absolute, annotations=annotations(current.state, exploration.corpus.index))
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

st.subheader("Corrected corpus")
state = current.state
st.caption(f"The corpus with this corpus's edits applied: {len(state.labels):,} labels edited, {len(state.unusable):,} "
           f"clips marked unusable, {len(current.edits):,} edits in all (Review labels, and the map's tags). A CSV "
           "manifest that `--corpus` and the Runs page read, its edits log beside it; training on it makes a new run.")
folder = corpus_folder(exploration.corpus.index, exploration.corpus["path"])
with st.form("export.corrected_form", border=False):
    target = st.text_input("Write the manifest to (on the server)", str(folder / "corrected.csv"), key="export.corrected_path")
    unusable = st.radio("Unusable clips", UNUSABLE, horizontal=True, key="export.unusable",
                        format_func={"drop": "left out", "unlabelled": "kept as unlabelled audio"}.get)
    write = st.form_submit_button("Write the corrected manifest", disabled=current.damaged is not None)
if write:
    try:
        done = export_corpus(exploration.corpus, current.edits, Path(target).expanduser(), exploration.run.config.labels,
                             unusable)
    except (UserError, OSError) as err:  # a bad path or a read-only folder: said, nothing else lost
        st.error(f"{target}: {err}" if isinstance(err, OSError) else str(err))
    else:
        st.success(f"Wrote {done.manifest} ({done.n_clips:,} clips: {done.n_relabelled:,} relabelled, "
                   f"{done.n_unusable:,} unusable {'left out' if unusable == 'drop' else 'kept as unlabelled'}) and its "
                   f"edits log {done.log.name}. Train on it: `python -m core train --corpus {done.manifest}`, or on the "
                   "Runs page.")
        if done.stale:
            st.warning(f"{len(done.stale):,} edited clips are no longer in the corpus (e.g. {done.stale[0]}): their "
                       "edits are not applied; the log says which.")
        st.download_button("Download the manifest", done.manifest.read_bytes(), done.manifest.name, "text/csv",
                           key="export.corrected_download")
