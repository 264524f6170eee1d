"""Runs in the store: corpus, config, training curves, test CCC beside the published numbers; train new ones."""
import time

import pandas as pd
import streamlit as st

from app import loaders, widgets
from app.figures import ATTRIBUTE_COLOURS
from core.config import PRESETS
from core.official import PUBLISHED_TEST_CCC

st.title("Runs")
runs = loaders.list_runs()


def corpus_words(sizes: dict[str, int]) -> str:
    """{"train": 30, "dev": 10} -> "40 utterances: 30 train, 10 dev"."""
    if not sizes:
        return "none of its own (explored over the demo corpus)"
    return f"{sum(sizes.values()):,} utterances: " + ", ".join(f"{n:,} {split}" for split, n in sizes.items())


st.dataframe(pd.DataFrame([{"run": r.run_id, "kind": r.info.kind, "created": r.info.created,
                            "corpus": corpus_words(r.info.corpus_size)} for r in runs]).set_index("run"),
             key="runs.table", width="stretch")
run_id, _ = widgets.selected()
run = next(r for r in runs if r.run_id == run_id)
st.subheader(run_id)
with st.expander("Config"):
    st.json(run.config.to_dict())
history = run.history()
if not history.empty:
    dev = pd.DataFrame(history["dev_ccc"].tolist(), index=history["epoch"] + 1).rename_axis("epoch")
    dev = dev[sorted(dev.columns)]  # the chart orders its series by name: the colours follow the same order
    left, right = st.columns(2)
    left.markdown("**Dev CCC per epoch**")
    left.line_chart(dev, x_label="epoch", y_label="dev CCC", color=[ATTRIBUTE_COLOURS.get(a, "#7f7f7f") for a in dev.columns])
    right.markdown("**Losses and cluster stability (NMI vs the previous epoch)**")
    right.line_chart(history.set_index(history["epoch"] + 1)[["cluster_loss", "joint_ce", "joint_ccc_loss", "nmi_previous"]]
                     .rename(columns={"cluster_loss": "unlabelled stage: cluster CE", "joint_ce": "labelled stage: cluster CE",
                                      "joint_ccc_loss": "labelled stage: 1 - CCC", "nmi_previous": "NMI with the previous epoch"}),
                     x_label="epoch", y_label="loss / NMI")
metrics = run.metrics()
test = pd.DataFrame(metrics.test_ccc if metrics else {}).T
published = pd.DataFrame([PUBLISHED_TEST_CCC], index=["published DeepEmoCluster (MSP-Podcast test set: another corpus)"])
st.markdown("**Test CCC** (this run's corpus) beside the published DeepEmoCluster numbers (MSP-Podcast v1.6)")
st.dataframe(pd.concat([test, published]), key="runs.test_ccc")

partner = loaders.ablation_partner(run_id)
if partner is not None:
    other_metrics = partner.metrics()
    other = pd.DataFrame(other_metrics.test_ccc if other_metrics else {}).T
    use = run.config.train.use_unlabelled
    st.markdown(f"**SSL ablation**: the same config and corpus {'without' if use else 'with'} the unlabelled stage "
                f"(`{partner.run_id}`)")
    st.dataframe(pd.concat({("with" if use else "without") + " unlabelled": test,
                            ("without" if use else "with") + " unlabelled": other}), key="runs.ablation")

st.subheader("Train a new run")
with st.form("runs.train"):
    corpus = st.text_input("Corpus (manifest CSV, MSP-Podcast folder or folder of clips)", key="runs.corpus")
    preset = st.selectbox("Preset", [p for p in PRESETS if p != "tiny"], key="runs.preset")
    submitted = st.form_submit_button("Train in the background")
if submitted and corpus:
    try:
        st.session_state["runs.job"] = loaders.start_training(corpus, preset)
    except (ValueError, OSError) as err:  # ManifestError is a ValueError: a bad path or corpus
        st.error(str(err))
jobs = [*loaders.resumed_trainings().values(), *([st.session_state["runs.job"]] if "runs.job" in st.session_state else [])]
for job in jobs:
    st.markdown(f"**{job.label}**")
    if job.error:
        st.error(job.error)
    elif job.finished.is_set():
        st.success(f"Finished: {job.result.run_id}. Pick it in the sidebar.")
    else:
        widgets.job_progress_ui(job)
if any(not job.finished.is_set() for job in jobs):
    time.sleep(1.0)
    st.rerun()
