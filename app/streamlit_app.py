"""DeepEmoCluster Explorer: `streamlit run app` from the repository root."""
import streamlit as st

st.set_page_config(page_title="DeepEmoCluster Explorer", page_icon=":material/graphic_eq:", layout="wide")
st.navigation([
    st.Page("app_pages/demo_corpus.py", title="Demo corpus", icon=":material/library_music:", default=True),
    st.Page("app_pages/predict.py", title="Predict", icon=":material/insights:"),
]).run()
