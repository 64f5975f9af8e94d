"""Search: find the best prompt honestly: designs explored on a selection set, the winner then
tested once against the base on a locked test set, and saved as a new library version."""

import streamlit as st

from ui import search_form, search_views
from ui.feedback import shown_errors
from ui.navigation import through_app

through_app()

st.title("Search")
st.caption(
    "Start from a saved prompt version: shot choice, count, order and format (and your "
    "instruction variants) are tried on a selection set; only the base and the winner ever see "
    "the locked test set, once, at the end. Every candidate is an experiment of one study."
)
with shown_errors():
    search_form.new_search()
with shown_errors():
    chosen = search_views.chosen_search()
    if chosen is not None:
        search_views.search_view(chosen)
