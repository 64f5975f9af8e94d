"""Prompt Lab: page set-up and navigation, nothing else."""

import streamlit as st

from ui.navigation import configure, pages

configure()
st.navigation(pages()).run()
