"""The app's pages and page settings, and keeping every page inside that navigation.

Because the pages live in `pages/`, Streamlit starts in its legacy mode, in which each file of
that folder is a page of its own. The first request after the server starts, if it is a direct
link such as /compare, then runs the page without app.py: the wrong sidebar, the layout lost,
and the legacy mode kept for every session until someone opens the home page.
"""

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner_utils.script_run_context import ThreadState

from ui.identity import gate


def configure() -> None:
    st.set_page_config(page_title="Prompt Lab", page_icon="🧪", layout="wide")


def pages() -> list[st.Page]:
    return [
        st.Page("pages/playground.py", title="Playground", icon="✏️", default=True),
        st.Page("pages/experiments.py", title="Experiments", icon="🧪"),
        st.Page("pages/search.py", title="Search", icon="🔎"),
        st.Page("pages/compare.py", title="Compare", icon="⚖️"),
        st.Page("pages/prompts.py", title="Prompts", icon="📝"),
        st.Page("pages/datasets.py", title="Datasets", icon="📚"),
        st.Page("pages/models.py", title="Models", icon="🧠"),
    ]


def through_app() -> None:
    """Call first in every page. A page run in legacy mode puts the app's navigation and
    settings in place (which ends the legacy mode) and goes on in the same run, so nothing the
    user just did, such as a click, is lost to a rerun; unless the sign-in gate stops it (app.py
    runs that gate itself otherwise)."""
    if not PagesManager.uses_pages_directory:
        return
    running = ThreadState.get().active_script_hash
    configure()
    allowed = gate()
    # The same page stays current: its file is the one running.
    st.navigation(pages(), position="sidebar" if allowed else "hidden")
    if not allowed:
        st.stop()
    # st.navigation points widget ids at the main script; they must stay this page's, as
    # they are when app.py runs the page (Streamlit 1.67 internals, pinned in requirements).
    ThreadState.update(active_script_hash=running)
