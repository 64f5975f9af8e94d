"""Prompt Lab: page set-up and navigation, nothing else."""

import streamlit as st

st.set_page_config(page_title="Prompt Lab", page_icon="🧪", layout="wide")
pages = [st.Page("pages/playground.py", title="Playground", icon="✏️", default=True)]
st.navigation(pages).run()
