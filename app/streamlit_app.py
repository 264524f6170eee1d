"""DeepEmoCluster Explorer: `streamlit run app` from the repository root."""
import streamlit as st

from app import figures, loaders, trainings, warm_up, widgets
from core.errors import UserError
from core.runtime.process import keep_freed_memory


keep_freed_memory()  # the server embeds, trains and predicts: `core.runtime.process` says why; idempotent on every rerun
st.set_page_config(page_title="DeepEmoCluster Explorer", page_icon=figures.page_icon(), layout="wide")
if not loaders.list_runs() or trainings.DEMO_RUNNING.is_set():  # a fresh machine: the demo is trained and mapped first
    st.navigation([st.Page("app_pages/getting_started.py", title="Getting started", icon=":material/hourglass_top:")]).run()
    st.stop()
widgets.run_picker_ui()
for job in trainings.resumed_trainings().values():  # trainings a stopped server left: resumed once per server
    if not job.finished.is_set():
        st.sidebar.info(f"Training {job.label} in the background: see Runs.")
page = st.navigation([
    st.Page("app_pages/latent_map.py", title="Latent map", icon=":material/scatter_plot:", default=True),
    st.Page("app_pages/clusters.py", title="Clusters × emotion", icon=":material/bubble_chart:"),
    st.Page("app_pages/review.py", title="Review labels", icon=":material/fact_check:"),
    st.Page("app_pages/locate.py", title="Locate clips", icon=":material/my_location:"),
    st.Page("app_pages/compare.py", title="Compare runs", icon=":material/compare:"),
    st.Page("app_pages/runs.py", title="Runs", icon=":material/model_training:"),
    st.Page("app_pages/export.py", title="Export", icon=":material/download:"),
])
notes = st.container()  # above the page: what its results could not be cached in (a full or read-only runs folder)
if page.title != "Latent map":  # the map starts the clip code's warm-up once drawn; any other page imports some of the
    warm_up.warm_clip_code().join()  # same modules: two threads importing scikit-learn at once can deadlock its imports
try:
    page.run()
except Exception as err:
    if not isinstance(err, UserError):  # core's errors a user can cause and fix: a message, never a traceback
        raise
    st.error(str(err))
    st.stop()
for message in loaders.unsaved_caches():
    notes.warning(message, icon=":material/save:")
