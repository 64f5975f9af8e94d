"""Prompt Lab: page set-up and navigation, nothing else."""

import streamlit as st

from ui.state import keep_widget_values

st.set_page_config(page_title="Prompt Lab", page_icon="🧪", layout="wide")
keep_widget_values()
pages = [
    st.Page("pages/playground.py", title="Playground", icon="✏️", default=True),
    st.Page("pages/experiments.py", title="Experiments", icon="🧪"),
    st.Page("pages/compare.py", title="Compare", icon="⚖️"),
    st.Page("pages/datasets.py", title="Datasets", icon="📚"),
    st.Page("pages/models.py", title="Models", icon="🧠"),
]
st.navigation(pages).run()
