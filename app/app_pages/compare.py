"""Runs over one corpus compared: two side by side (linked selections, how far their clusters agree; utterances
matched by their audio file, so a run over the corrected corpus, `python -m core export-corpus`, compares with the
original's), then the run against other representations (`app.representations`), with their baselines one click away."""
import numpy as np
import pandas as pd
import streamlit as st

from app import figures, loaders, representations, scatter, widgets


def two_maps(run_id: str, network: str | None, other: str) -> None:
    """Both maps, linked, and the agreement of their clusters (a warning where they share no utterance)."""
    from core.explore.agreement import NoCommonUtterances, best_matches, cluster_agreement
    first, second = loaders.load_utterances(run_id, network), loaders.load_utterances(other, None)
    try:  # utterances matched by their audio file: a corrected corpus written elsewhere keys them by other names
        agreement = cluster_agreement(first["cluster"].set_axis(first["path"]), second["cluster"].set_axis(second["path"]))
    except NoCommonUtterances as err:
        st.warning(f"{run_id} and {other}: {err}")
        return
    left, middle, right = st.columns(3)
    left.metric("NMI", f"{agreement.nmi:.3f}", help="Normalised mutual information of the two clusterings: 1 = the same "
                                                     "partition up to renaming the clusters, about 0 = independent.")
    middle.metric("ARI", f"{agreement.ari:.3f}", help="Adjusted Rand index: 1 = the same partition, about 0 = chance.")
    right.metric("common utterances", f"{agreement.n_common:,}",
                 help=f"{agreement.n_only_first:,} only in {run_id}, {agreement.n_only_second:,} only in {other}.")
    st.caption("Select (box or lasso) on either map: the same utterances stay coloured on the other, the rest grey.")
    maps = {"compare.first": (run_id, first, f"{run_id}/{network}/compare"),
            "compare.second": (other, second, f"{other}/compare")}
    selected = {key: scatter.stored_selection(key, table, view) for key, (_, table, view) in maps.items()}
    selections = {key: None if files is None else maps[key][1].loc[files, "path"]  # audio files
                  for key, files in selected.items()}
    columns = st.columns(2)
    for column, (key, (name, table, view)), linked in zip(columns, maps.items(), reversed(list(selections.values()))):
        with column:
            st.markdown(f"**{name}**" + (f": {len(linked):,} utterances selected on the other map"
                                         if linked is not None else ""))
            state = None if linked is None else np.where(table["path"].isin(linked), 1, 0)
            scatter.scatter_map(table, figures.point_colours(table, "cluster"), key=key, view=view, state=state, height=460,
                                hover=[("file", "file", None), ("cluster", "cluster", 0)],
                                labels=loaders.load_cluster_labels(name, network if key == "compare.first" else None))
    st.markdown(f"**Contingency**: utterances per cluster of {run_id} (rows) and of {other} (columns)")
    st.dataframe(agreement.contingency.rename_axis(index=f"{run_id} cluster", columns=f"{other} cluster"),
                 key="compare.contingency", width="stretch")
    matches = best_matches(agreement.contingency)
    st.markdown(f"**Best match** of each cluster of {run_id} in {other}")
    st.dataframe(pd.DataFrame({f"cluster of {other}": matches["match"],
                               "share of its utterances": matches["share"].round(3)}), key="compare.matches", width="stretch")


run_id, network = widgets.selected()
st.title("Compare runs")
runs = loaders.list_runs()
others = [r.run_id for r in runs if r.run_id != run_id]
if others:  # a single stored run: the section below offers its baselines
    st.subheader("Two runs side by side")
    two_maps(run_id, network, st.selectbox("Compare with", others, key="compare.other",
                                           help="A second run over the same corpus (imported models are explored "
                                                "over the demo corpus)."))
st.subheader("Against other representations")
representations.comparison_ui(run_id, network, runs)
