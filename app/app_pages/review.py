"""Review the labels most likely wrong (`core.explore.suspects`), one clip at a time in rank order: hear it beside
its nearest clips, then keep its label, set a new one, mark it unusable or skip it. Each action is appended to the
corpus's curation log at once (`app.curation`); the page holds no state of its own beyond this tab's skips."""
import numpy as np
import pandas as pd
import streamlit as st

from app import curation, figures, inspector, loaders, scatter, widgets
from core.curate.edits import keep_label, mark_unusable, set_label, stale_files
from core.explore.suspects import SUSPECT_SCORE

IN_SAMPLE = ("A train clip's prediction is in-sample: the network was fitted to this very label, so its prediction gap "
             "understates a wrong label. The neighbour gap (the mean label of its nearest labelled clips in the "
             "clustering space) has no such bias.")

run_id, network = widgets.selected()
st.title("Review labels")
exploration = loaders.load_exploration(run_id, network)
corpus, scale, cfg = exploration.corpus, exploration.run.config.labels, exploration.run.config
ranking = loaders.load_suspects(run_id, network)
current = curation.corpus_curation(run_id, network)  # read now, on every run: another tab may have written
pick, back = st.columns([4, 1], vertical_alignment="bottom")
attribute = pick.selectbox("Attribute", list(exploration.latent.predictions.columns), key="review.attribute")
back.button("Undo", key="review.undo", shortcut="z", icon=":material/undo:", width="stretch",
            disabled=not curation.can_undo() or current.damaged is not None,
            help="Take back the last thing this tab did (its old values are appended to the log).",
            on_click=curation.undo_review, args=(run_id, network))
ranked = ranking[ranking["attribute"] == attribute]
queue = curation.review_queue(ranking, current.state, attribute)
reviewed = ranked.index[[(f, attribute) in current.state.reviewed or f in current.state.unusable for f in ranked.index]]
skipped = st.session_state.get(curation.SKIPPED, {}).get(attribute, [])
st.caption(f"{len(ranked):,} labelled clips ranked by how far their {attribute} label lies from their neighbours' "
           f"labels in the clustering space and from the prediction: the suspects first "
           f"({int(ranked['suspect'].sum()):,} with a score ≥ {SUSPECT_SCORE:g}), then the rest, least suspicious "
           f"last. {len(queue):,} left to review ({int(queue['suspect'].sum()):,} of them suspects); "
           f"{len(reviewed):,} reviewed or unusable, {len(skipped):,} skipped in this tab.")
curation.message_ui()
curation.damaged_warning(current)
if stale := stale_files(current.state, corpus):
    st.warning(f"{len(stale)} clip(s) named in the edits log are no longer in this corpus, e.g. {stale[:3]}: "
               "their edits are not applied.")
if len(reviewed):
    with st.expander(f"Reviewed or unusable ({len(reviewed):,})"):
        done = pd.DataFrame({"rank": ranked.loc[reviewed, "rank"], "label in the corpus": ranked.loc[reviewed, "label"],
                             "label now": [current.state.label(corpus, f, attribute) for f in reviewed],
                             "unusable": [current.state.unusable.get(f, "") for f in reviewed]})
        st.dataframe(done, key="review.done", width="stretch")
if ranked.empty:
    st.info(f"No clip of this corpus has a {attribute} label: nothing to review.")
    st.stop()
if queue.empty:
    st.success(f"No {attribute} label left to review" + (f": {len(skipped):,} skipped in this tab." if skipped
                                                         else "."))
    if skipped:
        st.button("Review the skipped clips again", key="review.unskip", on_click=curation.unskip, args=(attribute,))
    st.stop()

file, row = queue.index[0], queue.iloc[0]
now = current.state.label(corpus, file, attribute)
st.subheader(f"Suspect {int(row['rank']):,} of {len(ranked):,}: {file}")
facts = st.columns(6)
facts[0].metric("label now" + (" (edited)" if (file, attribute) in current.state.labels else ""), f"{now:.2f}",
                help=f"split {row['split']}; the corpus's scale is {scale.minimum:g}–{scale.maximum:g}")
facts[1].metric("neighbours' label", f"{row['neighbours_label']:.2f}",
                help="The mean label of its nearest labelled clips in the clustering space.")
facts[2].metric("prediction", f"{row['prediction']:.2f}", help=IN_SAMPLE)
facts[3].metric("neighbour gap", f"{row['neighbour_gap']:.2f}", help=f"z = {row['neighbour_gap_z']:.1f}")
facts[4].metric("prediction gap", f"{row['prediction_gap']:.2f}",
                help=f"z = {row['prediction_gap_z']:.1f}. {IN_SAMPLE}")
facts[5].metric("score", f"{row['score']:.1f}", help=f"The mean of the two z-scores; a suspect from {SUSPECT_SCORE:g}.")
st.caption("A train clip: its prediction is in-sample, so trust the neighbour gap more." if row["split"] == "train"
           else f"A {row['split']} clip: its prediction is out-of-sample.")

if st.session_state.get("review.shown") != (attribute, file) or "review.value" not in st.session_state:
    st.session_state["review.shown"] = (attribute, file)  # a new clip: the value starts at its neighbours' label
    st.session_state["review.value"] = float(np.clip(round(row["neighbours_label"], 2), scale.minimum, scale.maximum))
locked = current.damaged is not None
keep, value, reason, rest = st.columns([2, 3, 3, 2], vertical_alignment="bottom")
keep.button("Keep label", key="review.keep", shortcut="k", type="primary", width="stretch", disabled=locked,
            help="The label is right (shortcut K).", on_click=curation.act,
            args=(run_id, network, lambda c, f=file, a=attribute: keep_label(corpus, c.state, f, a)))
value.number_input(f"New {attribute} label", min_value=float(scale.minimum), max_value=float(scale.maximum),
                   step=0.1, format="%.2f", key="review.value", disabled=locked,
                   help=f"On the corpus's scale {scale.minimum:g}–{scale.maximum:g}; starts at the neighbours' "
                        "label.")
value.button("Set", key="review.set", shortcut="s", width="stretch", disabled=locked,
             help="Give the clip the new label (shortcut S, with the cursor outside the number box).",
             on_click=curation.act, args=(run_id, network, lambda c, f=file, a=attribute: set_label(
                 corpus, c.state, f, a, st.session_state["review.value"], scale)))
reason.selectbox("Why unusable", curation.REASONS, key="review.reason", disabled=locked)
reason.button("Unusable", key="review.unusable", shortcut="u", width="stretch", disabled=locked,
              help="Leave the clip out of every attribute's review and of the corrected corpus (shortcut U).",
              on_click=curation.act, args=(run_id, network, lambda c, f=file: mark_unusable(
                  corpus, c.state, [f], st.session_state["review.reason"])))
rest.button("Skip", key="review.skip", shortcut="n", width="stretch", on_click=curation.skip, args=(attribute, file),
            help="Next clip; this one comes back when the skipped list is cleared (shortcut N).")

table = loaders.load_utterances(run_id, network)
neighbours = loaders.load_locator(run_id, network).corpus_neighbours(file)
clip, near = st.columns(2)
with clip:
    st.audio(row["path"])
    frame_s = cfg.features.hop_length / cfg.audio.sampling_rate
    st.plotly_chart(figures.spectrogram(loaders.load_spectrogram(row["path"], run_id), frame_s, cfg.features.log),
                    key="review.spectrogram", width="stretch")
with near:
    st.markdown("**Nearest corpus clips** (clustering space)")
    for other, distance in neighbours.items():
        st.caption(inspector.neighbour_caption(other, table.loc[other], [attribute], distance))
        st.audio(table.at[other, "path"])

spots = table.loc[[file, *neighbours.index], ["x", "y"]]
markers = spots.assign(label=["suspect", *[f"neighbour {k + 1}" for k in range(len(neighbours))]],
                       colour=[inspector.PLAYING, *[inspector.CHUNK] * len(neighbours)])
state = np.where(table.index.isin(spots.index), 2, 1)
hover = [("file", "file", None), ("cluster", "cluster", 0), (attribute, f"{attribute} true", 2),
         (f"{attribute}_predicted", f"{attribute} predicted", 2)]
st.caption(f"The map, coloured by the true {attribute} label: the suspect (orange star) and its nearest clips.")
scatter.scatter_map(table, figures.point_colours(table, attribute, scale), key="review.map",
                    view=f"review/{run_id}/{network}", state=state, markers=markers, hover=hover, height=420)
