"""Prompts: the library of named prompts and their versions; the diff of any two versions; labels
and tags; prompt files out and in; and the designs experiments ran unnamed, to be named."""

import streamlit as st

from ui import prompt_diff_views, prompt_file_views, prompt_views
from ui.feedback import shown_errors
from ui.navigation import through_app

through_app()

st.title("Prompts")
prompt_views.show_notice()
summaries = []
with shown_errors():
    summaries = prompt_views.prompt_list()
    name = prompt_views.chosen_prompt(summaries)
    if name:
        versions = prompt_views.version_list(name)
        with shown_errors():
            prompt_diff_views.diff_section(name, summaries)
        version = prompt_views.chosen_version(name, versions)
        prompt_views.label_and_tag(version)
        with shown_errors():
            prompt_file_views.export_buttons(version)
with shown_errors():
    prompt_file_views.import_step()
with shown_errors():
    prompt_views.unnamed_versions([s.name for s in summaries])
