"""Prompt Lab: page set-up and navigation, nothing else."""

import streamlit as st

st.set_page_config(page_title="Prompt Lab", page_icon="🧪", layout="wide")
pages = [
    st.Page("pages/playground.py", title="Playground", icon="✏️", default=True),
    st.Page("pages/experiments.py", title="Experiments", icon="🧪"),
    st.Page("pages/compare.py", title="Compare", icon="⚖️"),
    st.Page("pages/datasets.py", title="Datasets", icon="📚"),
    st.Page("pages/models.py", title="Models", icon="🧠"),
]
st.navigation(pages).run()
