"""Runs in the store: corpus, config, training curves, test CCC with intervals beside the published numbers, the
ablation's paired difference, other corpora; train new ones."""

import pandas as pd
import streamlit as st

from app import figures, loaders, trainings, widgets
from core.config import PRESETS
from core.evaluate.cross_corpus import EvaluationError, run_test_predictions, unpredicted_test_clips
from core.evaluate.evaluation import estimate_text
from core.evaluate.uncertainty import MIN_RESAMPLED_SPEAKERS
from core.model.official import PUBLISHED_TEST_CCC

st.title("Runs")
runs = loaders.list_runs()


def corpus_words(sizes: dict[str, int]) -> str:
    """{"train": 30, "dev": 10} -> "40 utterances: 30 train, 10 dev"."""
    if not sizes:
        return "none of its own (explored over the demo corpus)"
    return f"{sum(sizes.values()):,} utterances: " + ", ".join(f"{n:,} {split}" for split, n in sizes.items())


def test_predicted(run, key: str) -> bool:
    """Whether the run's test predictions are stored (or cannot be: `test_estimates` says why). A run stored before
    runs kept them gets a button instead: predicting a large corpus's test split takes minutes, never inside a visit."""
    if not (unpredicted := unpredicted_test_clips(run)):
        return True
    st.info(f"Run `{run.run_id}` was stored before runs kept their test predictions: its {unpredicted:,} test clips "
            "are predicted once, then stored with it (`python -m core evaluate RUN` does the same).")
    if st.button(f"Predict the {unpredicted:,} test clips of {run.run_id}", key=key):
        bar = st.progress(0.0, "Predicting the test clips…")
        run_test_predictions(run, progress=lambda done, total: bar.progress(done / total, f"{done:,} of {total:,} clips"))
        st.rerun()
    return False


st.dataframe(pd.DataFrame([{"run": r.run_id, "kind": r.info.kind, "created": r.info.created,
                            "corpus": corpus_words(r.info.corpus_size)} for r in runs]).set_index("run"),
             key="runs.table", width="stretch")
run_id, _ = widgets.selected()
run = next(r for r in runs if r.run_id == run_id)
st.subheader(run_id)
st.download_button("Report (one HTML page)", data=lambda: loaders.load_report_html(run_id), key="runs.report",
                   file_name=f"{run_id}-report.html", mime="text/html",
                   help="Config, corpus, training curves, test CCC with intervals, ablation, cluster-emotion dependence "
                        "and other corpora; self-contained, to share (`python -m core report` writes it too)")
with st.expander("Config"):
    st.json(run.config.to_dict())
history = run.history()
if not history.empty:
    dev = pd.DataFrame(history["dev_ccc"].tolist(), index=history["epoch"] + 1).rename_axis("epoch")
    left, right = st.columns(2)
    left.markdown("**Dev CCC per epoch**")
    left.plotly_chart(figures.epoch_lines(dev, "dev CCC"), key="runs.dev_ccc", width="stretch")
    right.markdown("**Losses and cluster stability (NMI vs the previous epoch)**")
    right.plotly_chart(figures.epoch_lines(history.set_index(history["epoch"] + 1)[[
        "cluster_loss", "joint_ce", "joint_ccc_loss", "nmi_previous"]].rename(columns={
            "cluster_loss": "unlabelled stage: cluster CE", "joint_ce": "labelled stage: cluster CE",
            "joint_ccc_loss": "labelled stage: 1 - CCC", "nmi_previous": "NMI with the previous epoch"}), "loss / NMI"),
        key="runs.losses", width="stretch")
    if "precision" in history:
        st.caption("Training passes ran in " + " and ".join(history["precision"].dropna().unique())
                   + f" (`train.precision` = {run.config.train.precision!r}, as the training device resolved it)")
st.markdown("**Test CCC** (this run's corpus) with 95 % bootstrap intervals (1 000 resamples of utterances; also "
            f"of whole speakers where at least {MIN_RESAMPLED_SPEAKERS} are known)")
if own_predicted := test_predicted(run, "runs.predict_test"):
    try:
        st.dataframe(estimate_text(loaders.load_test_estimates(run_id)), key="runs.test_ccc", width="stretch")
    except EvaluationError as err:
        st.info(str(err))
st.caption("Published DeepEmoCluster test CCC, on MSP-Podcast v1.6 (another corpus: comparable only for a run "
           "trained on it): " + ", ".join(f"{a} {v:.3f}" for a, v in PUBLISHED_TEST_CCC.items()))

partner = loaders.ablation_partner(run_id)
if partner is not None:
    use = run.config.train.use_unlabelled
    st.markdown(f"**SSL ablation**: the same config and corpus {'without' if use else 'with'} the unlabelled stage "
                f"(`{partner.run_id}`). What the unlabelled data bought: test CCC with minus without, with a paired "
                "bootstrap interval (both runs judged on the same resamples); an interval above 0 is a gain.")
    pair = (run_id, partner.run_id) if use else (partner.run_id, run_id)
    if test_predicted(partner, "runs.predict_partner_test") and own_predicted:
        st.dataframe(estimate_text(loaders.load_paired_difference(*pair)), key="runs.ablation", width="stretch")

stored = loaders.evaluations(run_id)
if stored:
    st.markdown("**Other corpora** (`python -m core evaluate RUN --corpus …`)")
for evaluation in stored:
    st.caption(f"{', '.join(f'{name} ({source})' for name, source in evaluation.corpora.items())}; "
               f"evaluated {evaluation.created}" + "".join(f"; {note}" for note in evaluation.notes))
    st.dataframe(estimate_text(evaluation.table), key=f"runs.evaluation.{evaluation.key}", width="stretch")

st.subheader("Train a new run")
with st.form("runs.train"):
    corpus = st.text_input("Corpus (manifest CSV, MSP-Podcast folder or folder of clips)", key="runs.corpus")
    preset = st.selectbox("Preset", [p for p in PRESETS if p != "tiny"], key="runs.preset")
    submitted = st.form_submit_button("Train in the background")
if submitted and corpus:
    try:
        st.session_state["runs.job"] = trainings.start_training(corpus, preset)
    except (ValueError, OSError) as err:  # ManifestError is a ValueError: a bad path or corpus
        st.error(str(err))
jobs = [*trainings.resumed_trainings().values(), *([st.session_state["runs.job"]] if "runs.job" in st.session_state else [])]
running = any(not job.finished.is_set() for job in jobs)


@st.fragment(run_every=widgets.PROGRESS_EVERY_S if running else None)
def _trainings() -> None:
    """The background trainings, redrawn on their own while one runs (not the whole page)."""
    for job in jobs:
        st.markdown(f"**{job.label}**")
        if job.error:
            st.error(job.error)
        elif job.finished.is_set():
            st.success(f"Finished: {job.result.run_id}. Pick it in the sidebar.")
        else:
            widgets.job_progress_ui(job)
    if running and all(job.finished.is_set() for job in jobs):
        st.rerun()  # the whole app: the new run appears in the sidebar and the tables above


_trainings()
