"""The prompt-library forms other pages embed: save the design being composed as a version (the
Playground), and start from a stored version (the Experiments form)."""

import contextlib

import streamlit as st

from core.errors import PromptLabError
from core.generation.settings import GenerationSettings
from core.library import versions as library
from core.library.versions import PromptVersion
from core.prompting.design import PromptDesign
from ui import identity, widgets
from ui.feedback import plain, shown_errors
from ui.prompt_views import prompt_name_input
from ui.state import kept, key

STARTED = "prompts.started."  # + page: the version a form was filled from
START_ERROR = "prompts.start_error."  # + page: why the last "Use this version" did nothing


def save_version_form(
    page: str, design: PromptDesign, settings: GenerationSettings | None
) -> PromptVersion | None:
    """The Save-as-version form: the design (and, if ticked, the settings) as the next version
    of a prompt picked or typed; shows the saved ref or the refusal, and returns the version."""
    with st.expander("Save as a version of a prompt"):
        names = [s.name for s in library.list_prompts()]
        name = prompt_name_input(f"prompts.{page}.save", names)
        message = st.text_input(
            "Message", placeholder="what changed, and why", key=f"prompts.{page}.save.message"
        )
        with_settings = st.checkbox(
            "Include the generation settings", value=True, key=f"prompts.{page}.save.settings"
        )
        if not st.button("Save version", key=f"prompts.{page}.save.button"):
            return None
        with shown_errors():
            saved = library.save_version(
                name, design, settings if with_settings else None, message, actor=identity.actor()
            )
            st.session_state[f"prompts.{page}.save.saved"] = saved.name
            st.success(plain(f"Saved {saved.ref}"))
            return saved
    return None


def start_from_version(page: str) -> PromptVersion | None:
    """Pick a stored version and fill `page`'s design and settings widgets with it (call before
    they are drawn); returns the version last used so, if any."""
    remembered = st.session_state.get(STARTED + page)
    choices = version_choices()
    if not choices:
        st.caption(
            "No saved prompt versions yet: save one from the Playground or the Prompts page."
        )
        return remembered
    state = key(page, "start_from")
    if st.session_state.get(state) not in choices:
        st.session_state.pop(state, None)
    pick, use = st.columns([3, 1], vertical_alignment="bottom")
    pick.selectbox(
        "Start from a prompt version",
        list(choices),
        format_func=choices.get,
        **kept(page, "start_from"),
    )
    use.button("Use this version", key=f"prompts.{page}.start", on_click=_use_version, args=(page,))
    if error := st.session_state.pop(START_ERROR + page, None):
        st.error(plain(error))
    remembered = st.session_state.get(STARTED + page)
    if remembered is not None:
        st.caption(plain(f"Filled in from {remembered.ref}."))
    return remembered


def remember_version(page: str, ref: str | None) -> None:
    """The version a form filled from elsewhere (a duplicated experiment's) started from; none
    when it has none or it is gone."""
    st.session_state.pop(STARTED + page, None)
    if ref:
        with contextlib.suppress(PromptLabError):
            st.session_state[STARTED + page] = library.get_version(ref)


def _use_version(page: str) -> None:
    # A callback: it runs before the widgets it fills are drawn again.
    try:
        version = library.get_version(st.session_state[key(page, "start_from")])
    except PromptLabError as exc:
        st.session_state[START_ERROR + page] = str(exc)
        return
    widgets.fill_design(page, version.design)
    if version.settings is not None:
        widgets.fill_settings(page, version.settings)
    st.session_state[STARTED + page] = version


def version_choices() -> dict[str, str]:
    """ref -> how it is listed, e.g. summarise@3 (best, production); newest first per prompt."""
    choices = {}
    for summary in library.list_prompts():
        for number in range(summary.latest, 0, -1):
            labels = [label for label, n in summary.labels.items() if n == number]
            ref = f"{summary.name}@{number}"
            choices[ref] = f"{ref} ({', '.join(labels)})" if labels else ref
    return choices
