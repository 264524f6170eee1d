"""The map of a run's latent space: every utterance, coloured, filtered, searched, selected and inspected by ear."""
import numpy as np
import streamlit as st

from app import curation, figures, inspector, loaders, scatter, tagging, warm_up, widgets
from core.explore.colourings import colouring
from core.explore.exploration import find_utterance

HOVER_TEXT = [("file", "file", None), ("cluster", "cluster", 0), ("speaker", "speaker", None),
              ("emotion", "emotion", None), ("split", "split", None), ("tags", "tags", None), ("unusable", "unusable", None)]

run_id, network = widgets.selected()
st.title("Latent map")
current = curation.corpus_curation(run_id, network)  # read on every rerun: another tab may have tagged since
curation.damaged_warning(current)
table = tagging.annotated(loaders.load_utterances(run_id, network), current)
exploration = loaders.load_exploration(run_id, network)
attributes = list(exploration.latent.predictions.columns)
source = exploration.latent.centroid_source
source = "the run's own K-means centroids" if source == "training" else source
st.caption(f"{len(table):,} utterances in the clustering space (the K-means branch) of network "
           f"`{exploration.network}`; clusters: {source}. Click a point to inspect "
           "and play it; drag to select (box or lasso) and compare the selection with every point; the wheel zooms.")
style = widgets.map_style_ui(table)
shown = widgets.filters_ui(table)
matches = widgets.search_ui(table)
typed = st.session_state.get("latent.inspect", "").strip()
named = find_utterance(typed, table.index) if typed else None
clip = named.match if named else None
timeline = inspector.clip_timeline(clip, run_id, network) if clip else None  # the stars and the inspector's
markers = (inspector.chunk_stars(inspector.chunk_spans(timeline), st.session_state.get("latent.chunk", 0))
           if clip else None)


def _inspect_clicked():
    st.session_state["latent.inspect"] = scatter.clicked_file("latent.map", table) or st.session_state.get("latent.inspect", "")
    st.session_state["latent.chunk"] = 0


state = np.where(shown, np.where(matches, 2, 1) if matches is not None else 1, 0)
hover = [*HOVER_TEXT, *[(c, colouring(c).label, 2) for a in attributes for c in (a, f"{a}_predicted")]]
colours = figures.point_colours(table, style.colour, exploration.run.config.labels)  # on the corpus's label scale
event = scatter.scatter_map(table, colours, key="latent.map",
                            view=f"{run_id}/{network}", state=state, markers=markers,
                            hover=[h for h in hover if h[0] == "file" or h[0] in table],
                            labels=loaders.load_cluster_labels(run_id, network) if style.words else None,
                            size=style.size, opacity=style.opacity, density=style.density, contours=style.contours,
                            max_points=style.max_points, on_click=_inspect_clicked)
if not shown.any():
    st.warning("No utterance passes the filters: every point is greyed. Widen them in the sidebar.")
picked = None if event.selected is None else event.selected.intersection(table.index[shown])
if picked is not None:
    if picked.empty:
        st.info("The selection holds no points inside the filters: drag over coloured points.")
    else:
        from core.explore.analysis import compare_selection  # scipy and scikit-learn: on the first selection, not the map
        columns = [c for c in (*[f"{a}_predicted" for a in attributes], *attributes) if table[c].notna().any()]
        st.subheader(f"Selection: {len(picked):,} utterances")
        st.dataframe(compare_selection(table[shown], picked, columns), key="latent.compare", width="stretch")
        rows = table.loc[picked].drop(columns=["x", "y"])
        st.caption(f"The first {min(len(rows), 1000):,} of them:" if len(rows) > 1000 else "The utterances:")
        st.dataframe(rows.head(1000), key="latent.table", width="stretch")
tagging.tag_ui(table, current, picked, clip)

st.text_input("Inspect a clip", key="latent.inspect", placeholder=f"a file of the corpus, e.g. {table.index[0]}",
              help="Or click its point on the map.")
if typed and clip is None:
    st.warning(f"No utterance named {typed!r} in this corpus" + (f"; did you mean {', '.join(named.candidates)}?"
                                                                 if named.candidates else "."))
if clip:
    inspector.clip_inspector_ui(clip, table, run_id, network, timeline)
warm_up.warm_clip_code()  # the map is drawn: what a click runs is imported meanwhile, once per server
