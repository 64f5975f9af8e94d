"""The Playground's draft across reloads. A reload starts a new Streamlit session, which would
forget the variants being composed; so each run keeps the Playground's widget values under a
random id, put in the page's address (?draft=…), and a new session opened on that address takes
them back, for the same user only. Drafts live in this server process (a restart forgets them)
and the oldest go first beyond MAX_DRAFTS."""

import secrets
import threading
from collections import OrderedDict
from typing import Any

import streamlit as st

from ui import identity

PARAM = "draft"
KEPT = ("keep.playground.", "playground.columns")  # the widgets and the variant columns
NOT_KEPT = ("playground.columns.stopped",)  # a one-time notice, not part of the draft
MAX_DRAFTS = 500
ID = "playground.draft.id"
RESTORED = "playground.draft.restored"

_drafts: OrderedDict[str, tuple[str, dict[str, Any]]] = OrderedDict()  # id -> (owner, values)
_lock = threading.Lock()


def restore() -> None:
    """Once per session: take back the draft the address names, if it is this user's."""
    if st.session_state.get(RESTORED):
        return
    st.session_state[RESTORED] = True
    draft = st.query_params.get(PARAM)
    with _lock:
        found = _drafts.get(draft) if draft else None
    if found is None or found[0] != identity.actor().name:
        return
    st.session_state[ID] = draft
    for name, value in found[1].items():
        if name not in st.session_state:  # what this session already holds wins
            st.session_state[name] = list(value) if isinstance(value, list) else value


def keep() -> None:
    """Keep the Playground's values now, under this session's draft id (made on first use)."""
    draft = st.session_state.get(ID)
    if draft is None:
        draft = st.session_state[ID] = secrets.token_urlsafe(12)
    values = {
        name: list(value) if isinstance(value, list) else value
        for name, value in st.session_state.items()
        if isinstance(name, str) and name.startswith(KEPT) and name not in NOT_KEPT
    }
    with _lock:
        _drafts[draft] = (identity.actor().name, values)
        _drafts.move_to_end(draft)
        while len(_drafts) > MAX_DRAFTS:
            _drafts.popitem(last=False)
    if st.query_params.get(PARAM) != draft:
        st.query_params[PARAM] = draft
