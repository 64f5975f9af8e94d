"""Turning errors into messages: a user's mistake is shown as it is, a bug as a short apology."""

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from core.errors import PromptLabError

log = logging.getLogger("prompt_lab.ui")
MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def plain(text: str) -> str:
    """Text for a Markdown element (st.error, st.success…) shown as written: a file called
    my_data_v2.csv stays un-italicised, and a name cannot inject a link or an image."""
    return MARKDOWN.sub(r"\\\1", text)


@contextmanager
def shown_errors() -> Iterator[None]:
    """Show PromptLabError messages; log anything else with its traceback for developers."""
    try:
        yield
    except PromptLabError as exc:
        st.error(plain(str(exc)))
    except Exception:
        log.exception("unexpected error in a page")
        st.error(
            "Something went wrong inside Prompt Lab (not something you did). "
            "The details are in the terminal that runs the app."
        )
