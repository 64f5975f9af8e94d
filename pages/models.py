"""Models: load the embedded model, a Hugging Face id or a local folder; see what is loaded, what
it costs in memory, the exact text its chat template makes of a prompt; unload it."""

import streamlit as st

from ui import model_views
from ui.feedback import shown_errors
from ui.navigation import through_app

through_app()

st.title("Models")
with shown_errors():
    model_views.load_requested()
model_views.show_unload_report()
model_views.loaded_model()
