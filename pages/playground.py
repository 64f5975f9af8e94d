"""Playground: compose a prompt, see exactly what the model receives, run it, score it; every
run is stored as an experiment. With variants, several prompts side by side on one input."""

import streamlit as st

from ui import (
    drafts,
    playground_views,
    prompt_forms,
    variant_columns,
    variant_trials,
    variant_views,
)
from ui.navigation import through_app

through_app()
drafts.restore()  # a reload of this page keeps the prompts being composed

st.title("Playground")
st.caption("Compose a prompt, see exactly what the model receives, run it and score it.")

if variant_columns.comparing():
    variant_views.side_by_side(then=variant_trials.try_on_examples)
else:
    setup = playground_views.sidebar()
    source, design = playground_views.input_and_design()
    if design is not None and setup.settings is not None:
        prompt_forms.save_version_form(playground_views.PAGE, design, setup.settings)
        variant_columns.add_button()
    if playground_views.ready(setup, source, design):
        playground_views.prompt_and_run(setup, source, design)
drafts.keep()
