"""Session state that outlives page switches.

Streamlit forgets a widget's value when a run does not draw it, so the prompt being composed
would be lost on a visit to Compare. Widgets drawn with `**kept(page, name)` get a stable key
and Streamlit's session-wide persistence, so their values return when the user comes back.
"""

from typing import Any

KEEP = "keep."


def key(page: str, name: str) -> str:
    """The session-state key of a widget whose value must survive page switches."""
    return f"{KEEP}{page}.{name}"


def kept(page: str, name: str) -> dict[str, Any]:
    """Keyword arguments for a widget whose value is kept for the whole session."""
    return {"key": key(page, name), "persist_state": "session"}
