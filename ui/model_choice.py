"""The Playground's model: typed in a field and loaded only when Load is pressed. Until then the
loaded model stays (typing is not a reason to evict it or start a download), and the page says
which model is loaded."""

import streamlit as st

from core.models.registry import (
    EMBEDDED,
    LoadedModel,
    ModelRequest,
    current_model,
    get_model,
    prompt_tokenizer,
)
from ui.feedback import plain
from ui.state import kept, key


def model_field(page: str) -> tuple[bool, st.delta_generator.DeltaGenerator]:
    """The model field and its Load button: whether Load was pressed, and a place for the
    note on what is loaded (filled by show_loaded once the page knows)."""
    if key(page, "model") not in st.session_state:
        loaded_now = current_model()
        st.session_state[key(page, "model")] = loaded_now.model_id if loaded_now else EMBEDDED
    st.text_input(
        "Model (Hugging Face id or folder)",
        **kept(page, "model"),
        help="Loaded when you press Load. For a served endpoint, the model whose tokenizer and "
        "chat template render the prompt (the served model's own, or one that shares them).",
    )
    pressed = st.button("Load", key=f"{page}.load", help="Until then the loaded model stays.")
    return pressed, st.empty()


def model_in_use(page: str, *, load: bool, served: bool) -> LoadedModel:
    """What the page renders and runs with: the model Load asked for, else the one loaded in
    this process, else the embedded one. For a served endpoint only its tokenizer is loaded."""
    chosen = f"{page}.loaded_request"  # the last request Load succeeded with in this session
    typed = typed_request(page)
    if served:
        request = typed if load else st.session_state.get(chosen) or _current_request()
        with st.spinner("Loading the tokenizer…"):
            loaded = prompt_tokenizer(request)
    elif load:
        with st.spinner(f"Loading {typed.model_id}…"):
            loaded = get_model(typed)
    elif (loaded := current_model()) is None:
        with st.spinner("Loading the model…"):
            loaded = get_model(st.session_state.get(chosen) or ModelRequest())
    if load:
        st.session_state[chosen] = typed
    return loaded


def request_of(page: str, loaded: LoadedModel) -> ModelRequest:
    """The request to record for `loaded`: as Load asked for it (device and dtype left to the
    machine) when that is what is loaded, else the loaded model's own."""
    chosen = st.session_state.get(f"{page}.loaded_request")
    if loaded.model is not None and chosen is not None and chosen.resolved() == loaded.request:
        return chosen
    return loaded.request


def show_loaded(page: str, box: st.delta_generator.DeltaGenerator, loaded: LoadedModel) -> None:
    what = "Tokenizer loaded" if loaded.model is None else "Loaded"
    note = f"{what}: {loaded.model_id}"
    if loaded.model is not None:
        note += f" ({loaded.device}, {loaded.dtype})"
    typed = typed_request(page).resolved().model_id
    if typed != loaded.model_id:
        note += f". '{typed}' is not loaded yet: press Load."
    box.caption(plain(note))


def typed_request(page: str) -> ModelRequest:
    return ModelRequest(st.session_state[key(page, "model")].strip() or EMBEDDED)


def _current_request() -> ModelRequest:
    loaded = current_model()
    return ModelRequest(loaded.model_id) if loaded is not None else ModelRequest()
