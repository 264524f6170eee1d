"""Tags on the latent map: the selection, a cluster or the inspected clip tagged with free text; the map's table
with each clip's tags and unusable mark, which colour, filter and export it like any column."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app import curation
from core.curate.edits import MAX_TAG, annotations, tag
from core.errors import UserError


def annotated(table: pd.DataFrame, current: curation.CorpusCuration) -> pd.DataFrame:
    """`table` with the columns `tags` and `unusable` where the corpus has any (categorical, as the map's text
    columns are); `table` itself, shared and uncopied, where it has none."""
    if not (current.state.tags or current.state.unusable):
        return table
    return table.join(annotations(current.state, table.index).astype("category"))


def tag_ui(table: pd.DataFrame, current: curation.CorpusCuration, selection: pd.Index | None, clip: str | None,
           key: str = "latent") -> None:
    """Add or remove a tag on the map's selection, a cluster or the inspected clip; undo this tab's last edit."""
    with st.expander("Tags", expanded=selection is not None):
        targets = [f"the selection ({0 if selection is None else len(selection):,} clips)", "a cluster"]
        targets += [f"the inspected clip ({clip})"] if clip else []
        target = st.radio("Tag", targets, horizontal=True, key=f"{key}.tag_target",
                          help="Select on the map (box or lasso), pick a cluster, or inspect a clip.")
        if target == "a cluster":
            cluster = st.selectbox("Cluster", sorted(table["cluster"].unique()), key=f"{key}.tag_cluster")
            files = list(table.index[table["cluster"] == cluster])
        else:
            files = [clip] if target.startswith("the inspected") else list(selection if selection is not None else [])
        in_use = current.state.all_tags()
        text = st.text_input("Tag text", key=f"{key}.tag_text", max_chars=MAX_TAG,
                             placeholder=f"e.g. {in_use[0] if in_use else 'laughter'}: a new tag, or one in use (below)")
        add, remove, undo = st.columns(3)
        try:
            if add.button("Add tag", key=f"{key}.tag_add", type="primary"):
                _record(current, tag(table, current.state, files, text or ""), "tagged")
            if remove.button("Remove tag", key=f"{key}.tag_remove"):
                _record(current, tag(table, current.state, files, text or "", remove=True), "untagged")
            if undo.button("Undo", key=f"{key}.tag_undo", disabled=not curation.can_undo(),
                           help="Take back this tab's last edit (a tag, or a label reviewed)."):
                curation.undo_last(current)
                st.rerun()
        except UserError as err:  # an empty selection or tag, a damaged or read-only log: said, nothing else lost
            st.error(str(err))
        if current.state.tags:
            counts = pd.Series([t for tags in current.state.tags.values() for t in tags]).value_counts()
            st.caption("In use: " + ", ".join(f"{name} ({n:,})" for name, n in counts.items()))


def _record(current: curation.CorpusCuration, edits, done: str) -> None:
    if not edits:
        st.info(f"Nothing to change: every one of those clips is already {done} so.")
        return
    curation.record(current, edits)
    st.rerun()
