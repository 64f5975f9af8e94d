"""Compare: two or more experiments (or a study) side by side: the settings that differ, ROUGE
with confidence intervals, the curve over shots, the examples on which they disagree most, and
people's judgement (ratings of outputs, and a blind A/B mode)."""

import streamlit as st

from ui import blind_views, compare_views, judgement_views
from ui.feedback import shown_errors
from ui.navigation import through_app

through_app()

st.title("Compare")
with shown_errors():
    stored, variants = compare_views.chosen()
    if variants and judgement_views.view() == judgement_views.BLIND:
        blind_views.blind_mode(variants, stored)
    elif variants:
        compare_views.comparison(variants, stored)
        judgement_views.people_section(variants, stored)
