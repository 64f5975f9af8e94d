"""The Playground's variant columns: up to four, each its own design and settings, named,
reordered, removed, started from a saved version and saved as one; the first is the
Playground's own form, so that one column is the Playground as it is without variants."""

from dataclasses import dataclass

import streamlit as st

from core.errors import PromptLabError
from core.generation.settings import GenerationSettings
from core.prompting.design import PromptDesign, RenderedPrompt
from core.prompting.rendering import render_for_model
from core.runs.sweeps import VariantChoice
from core.served.endpoint import Endpoint
from ui import prompt_forms, served_inputs, widgets
from ui.feedback import plain, shown_errors
from ui.playground_views import PAGE, Source
from ui.prompt_view import coloured_prompt, context_bar
from ui.state import kept, key

COLUMNS = "playground.columns"  # the page keys of the variants' columns, in order
COUNTER = "playground.columns.next"  # the number the next column's page key takes
RESULTS = "playground.columns.last"  # the last Run all: per page key, what came back
MAX_COLUMNS = 4
LETTERS = "ABCD"


@dataclass
class Column:
    """One variant as the page has it: its widgets' page key, name, and what they hold."""

    page: str
    name: str
    design: PromptDesign | None = None
    settings: GenerationSettings | None = None
    prompt: RenderedPrompt | None = None
    endpoint: Endpoint | None = None  # None: the shared local model
    blocked: bool = False  # what it asks cannot be had: it does not run, the others do

    @property
    def ready(self) -> bool:
        return not self.blocked and self.prompt is not None and self.settings is not None

    def choice(self) -> VariantChoice:
        started = st.session_state.get(prompt_forms.STARTED + self.page)
        ref = started.ref if started is not None and started.design == self.design else None
        return VariantChoice(self.name, self.design, self.settings, ref, self.endpoint)


def pages() -> list[str]:
    return st.session_state.setdefault(COLUMNS, [PAGE])


def comparing() -> bool:
    """Whether the Playground shows variants side by side (more than one column)."""
    return len(pages()) > 1


def add_variant(source_page: str) -> None:
    """A new column, a copy of `source_page`'s design and settings (a callback)."""
    columns = pages()
    if len(columns) >= MAX_COLUMNS:
        return
    number = st.session_state.get(COUNTER, 2)
    st.session_state[COUNTER] = number + 1
    page = f"{PAGE}.v{number}"
    try:
        widgets.fill_design(page, widgets.current_design(source_page))
    except PromptLabError:  # the copied design is not valid yet: start from the default
        pass
    widgets.fill_settings(page, widgets.current_settings(source_page))
    _copy_backend(source_page, page)
    st.session_state[key(page, "variant_name")] = _free_name(columns)
    columns.append(page)


def _copy_backend(source_page: str, page: str) -> None:
    """The backend widgets' values (local, or an endpoint and its options) copied over."""
    prefix = key(source_page, "")
    for name in [k for k in st.session_state if isinstance(k, str) and k.startswith(prefix)]:
        rest = name[len(prefix) :]
        if rest == "backend" or rest.startswith("endpoint."):
            st.session_state[key(page, rest)] = st.session_state[name]


def served_only() -> bool:
    """Whether every column generates on a served endpoint (then no local weights are needed)."""
    chosen = [st.session_state.get(key(p, "backend"), served_inputs.LOCAL) for p in pages()]
    return all(c == served_inputs.SERVED for c in chosen)


def add_button(source_page: str = PAGE) -> None:
    st.button(
        "Add variant",
        key="playground.add_variant",
        on_click=add_variant,
        args=(source_page,),
        disabled=len(pages()) >= MAX_COLUMNS,
        help="A copy of this design and its settings in a new column, to change and run "
        "side by side (up to four).",
    )


def _free_name(columns: list[str]) -> str:
    taken = {name_of(p) for p in columns}
    return next((c for c in LETTERS if c not in taken), f"Variant {len(columns) + 1}")


def name_of(page: str) -> str:
    return st.session_state.get(key(page, "variant_name")) or LETTERS[pages().index(page)]


def _remove(page: str) -> None:
    columns = pages()
    columns.remove(page)
    st.session_state.pop(RESULTS, None)
    if len(columns) == 1 and columns[0] != PAGE:  # back to one: it becomes the Playground's own
        last = columns[0]
        with_design = True
        try:
            widgets.fill_design(PAGE, widgets.current_design(last))
        except PromptLabError:
            with_design = False
        widgets.fill_settings(PAGE, widgets.current_settings(last))
        st.session_state[key(PAGE, "variant_name")] = name_of(last) if with_design else "A"
        columns[0] = PAGE


def _move(page: str, step: int) -> None:
    columns = pages()
    at = columns.index(page)
    to = min(max(at + step, 0), len(columns) - 1)
    columns[at], columns[to] = columns[to], columns[at]


def column(holder, page: str, source: Source, example, loaded) -> Column:
    """One variant's column: its name and moves, a saved version to start from, its design and
    settings, its exact prompt (collapsed) and context bar, and Save as version."""
    column = Column(page, name_of(page))
    with holder:
        head, left, right, cut = st.columns([6, 1, 1, 1], vertical_alignment="bottom")
        if key(page, "variant_name") not in st.session_state:
            st.session_state[key(page, "variant_name")] = LETTERS[pages().index(page)]
        head.text_input("Variant", **kept(page, "variant_name"), max_chars=60)
        at = pages().index(page)
        left.button("◀", key=f"{page}.left", on_click=_move, args=(page, -1), disabled=at == 0,
                    help="Move left")  # fmt: skip
        right.button("▶", key=f"{page}.right", on_click=_move, args=(page, 1),
                     disabled=at == len(pages()) - 1, help="Move right")  # fmt: skip
        cut.button("✕", key=f"{page}.remove", on_click=_remove, args=(page,), help="Remove")
        column.name = name_of(page) or LETTERS[at]
        with st.expander("Backend"):
            try:
                column.endpoint = served_inputs.backend_inputs(page, one_request=True)
            except PromptLabError as exc:
                st.error(plain(str(exc)))
                column.blocked = True
        with st.expander("Start from a saved version"):
            prompt_forms.start_from_version(page)
        with shown_errors(), st.expander("Prompt design", expanded=True):
            column.design = widgets.design_inputs(page, source.data.pool)
        with shown_errors(), st.expander("Generation settings"):
            column.settings = widgets.settings_inputs(page)
        if column.design is None or column.settings is None:
            st.error(plain(f"{column.name} cannot run until its design and settings are valid."))
            return column
        with shown_errors():
            column.prompt = render_for_model(
                loaded,
                column.design,
                example,
                source.data.pool,
                max_new_tokens=column.settings.max_new_tokens,
            )
        if column.prompt is None:
            return column
        context_bar(column.prompt, column.settings.max_new_tokens)
        for note in column.prompt.notes:
            st.warning(plain(note))
        with st.expander(f"Exact prompt sent ({column.prompt.prompt_tokens} tokens)"):
            coloured_prompt(column.prompt)
        if column.endpoint is not None:
            column.blocked = column.blocked or served_inputs.endpoint_problems(
                column.settings,
                column.endpoint,
                use_chat_template=column.design.use_chat_template,
                token_confidence=False,
            )
        prompt_forms.save_version_form(page, column.design, column.settings)
    return column
