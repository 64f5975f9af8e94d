"""Experiments: define a run or a sweep over a dataset slice and follow it; find, open, re-run,
duplicate, resume and delete stored experiments."""

import streamlit as st

from ui import experiment_views, jobs_panel, rescore_views, run_form
from ui.feedback import shown_errors
from ui.navigation import through_app

through_app()

st.title("Experiments")
st.caption(
    "Run a prompt design over a slice of a dataset, or a sweep of variants on the same "
    "examples. Every result is stored as it finishes; a cancelled run keeps them."
)
jobs_panel.panel()
experiment_views.show_done()
rescore_views.show_done()
run_form.fill_requested()

new_run, stored = st.tabs(["New run or sweep", "Stored experiments"])
with new_run, shown_errors():
    run_form.new_run()
with stored, shown_errors():
    experiment_views.stored_list(run_form.FILL)
