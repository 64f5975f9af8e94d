"""Session state that outlives page switches.

Streamlit forgets a widget's value when a run does not draw it, so the prompt being composed
would be lost on a visit to Compare. Widgets whose key starts with KEEP are written back to
session state on every run, which detaches them from that clean-up.
"""

from typing import Any

import streamlit as st

KEEP = "keep."


def keep_widget_values() -> None:
    """Call once per run, before the page draws anything."""
    for key in list(st.session_state.keys()):
        if isinstance(key, str) and key.startswith(KEEP):
            st.session_state[key] = st.session_state[key]


def key(page: str, name: str) -> str:
    """The session-state key of a widget whose value must survive page switches."""
    return f"{KEEP}{page}.{name}"


def preset(values: dict[str, Any]) -> None:
    """Put values into widgets before they are drawn (e.g. a form pre-filled from a record)."""
    for name, value in values.items():
        st.session_state[name] = value
