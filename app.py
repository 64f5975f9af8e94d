"""Prompt Lab: page set-up, the sign-in gate and navigation, nothing else."""

import streamlit as st

from ui.identity import gate
from ui.navigation import configure, pages

configure()
allowed = gate()  # with sign-in set up, before any page runs, a direct link to one included
navigation = st.navigation(pages(), position="sidebar" if allowed else "hidden")
if allowed:
    navigation.run()
