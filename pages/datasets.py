"""Datasets: the built-in dialogues and imported CSV/JSONL files; preview, search, download,
delete, and import with a column mapping whose row problems are listed by line number."""

import streamlit as st

from ui import dataset_views
from ui.feedback import shown_errors
from ui.navigation import through_app

through_app()

st.title("Datasets")
dataset_views.show_notice()
names: list[str] = []
with shown_errors():
    names = [s.name for s in dataset_views.stored_datasets()]
with shown_errors():
    dataset_views.preview(names)
with shown_errors():
    dataset_views.upload_step(set(names))
