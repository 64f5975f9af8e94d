"""Compare: two or more experiments (or a study) side by side: the settings that differ, ROUGE
with confidence intervals, the curve over shots, and the examples on which they disagree most."""

import streamlit as st

from ui import compare_views
from ui.feedback import shown_errors
from ui.navigation import through_app

through_app()

st.title("Compare")
with shown_errors():
    stored, variants = compare_views.chosen()
    if variants:
        compare_views.comparison(variants, stored)
