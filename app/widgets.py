"""Widget groups: each `*_ui()` draws its widgets and returns the selection (keys "<page>.<name>")."""
from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from app import loaders
from core.config import AVD

ATTRIBUTES = AVD  # core fixes the order of the attributes everywhere


def run_picker_ui() -> None:
    """The shared sidebar run picker; the newest run is selected on first load."""
    runs = loaders.list_runs()
    ids = [r.run_id for r in runs]
    if st.session_state.get("run") not in ids:
        st.session_state["run"] = ids[0]
    run_id = st.sidebar.selectbox("Run", ids, key="run")
    run = next(r for r in runs if r.run_id == run_id)
    networks = run.info.source
    if networks:  # an imported published model: one network (and latent space) per attribute
        st.sidebar.selectbox("Latent space of", list(networks), key="network",
                             help="The published release has one model per attribute; each has its own space.")
    else:
        st.session_state["network"] = None
    st.sidebar.caption(f"{run.info.kind} run, created {run.info.created}")


def selected() -> tuple[str, str | None]:
    return st.session_state["run"], st.session_state.get("network")


def job_progress_ui(job: loaders.Job) -> None:
    """Progress of a background job; reruns the page every second until it ends."""
    fraction = job.done / job.total if job.total else 0.0
    st.progress(min(fraction, 1.0), text=f"{job.stage} — {job.done}/{job.total or '?'}")
    cols = st.columns(3)
    cols[0].metric("elapsed", f"{time.time() - job.started:.0f} s")
    if job.eta_s is not None:
        cols[1].metric("ETA", f"{job.eta_s / 60:.1f} min")
    if job.dev_ccc:
        cols[2].write("dev CCC: " + ", ".join(f"{a} {v:.2f}" for a, v in job.dev_ccc.items()))


def colour_ui(table: pd.DataFrame) -> str:
    options = ["cluster", *[a for a in ATTRIBUTES if a in table], *[f"{a}_predicted" for a in ATTRIBUTES if f"{a}_predicted" in table],
               "split", *[f"{a}_error" for a in ATTRIBUTES if a in table]]
    return st.selectbox("Colour by", options, key="latent.color_by")


def filters_ui(table: pd.DataFrame) -> pd.DataFrame:
    """Split, cluster and attribute-range filters in the sidebar; returns the rows kept."""
    with st.sidebar.expander("Filters", expanded=False):
        splits = st.multiselect("Split", sorted(table["split"].unique()), key="latent.splits")
        clusters = st.multiselect("Cluster", sorted(table["cluster"].unique()), key="latent.clusters")
        keep = pd.Series(True, index=table.index)
        if splits:
            keep &= table["split"].isin(splits)
        if clusters:
            keep &= table["cluster"].isin(clusters)
        for attribute in ATTRIBUTES:
            column = f"{attribute}_predicted"
            if column in table:
                lo, hi = st.slider(f"predicted {attribute}", 1.0, 7.0, (1.0, 7.0), 0.1, key=f"latent.range_{attribute}")
                keep &= table[column].between(lo, hi)
    return table[keep]
