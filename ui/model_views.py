"""The Models page's sections: the load form, the unload report, the loaded model's facts and
chat template, and what a prompt becomes through that template."""

import pandas as pd
import streamlit as st
import torch

from core.models import access as model_access
from core.models import info as model_info
from core.models import registry as models
from core.models.registry import EMBEDDED, ModelRequest
from core.runs import jobs
from core.served import llama_engine
from ui.feedback import plain, shown_errors
from ui.state import kept
from ui.tables import table

PAGE = "models"
DEVICES = ["auto", "cpu", "cuda", "mps"]
DTYPES = ["auto", "float32", "float16", "bfloat16"]
UNLOAD_REPORT = "models.unload_report"  # memory before/after the last unload, shown once


def load_form() -> ModelRequest | None:
    """The load form; the request when it was submitted."""
    with st.form("load-model"):
        model_id = st.text_input(
            "Model: the embedded one, a Hugging Face id (owner/name) or a local folder",
            EMBEDDED,
            **kept(PAGE, "model_id"),
        )
        left, right = st.columns(2)
        device = left.selectbox("Device", DEVICES, **kept(PAGE, "device"))
        dtype = right.selectbox("dtype", DTYPES, **kept(PAGE, "dtype"))
        allowed = model_access.remote_code_allowed()
        trust = st.checkbox(
            "trust_remote_code",
            **kept(PAGE, "trust_remote_code"),
            disabled=not allowed,
            help="Runs Python code from the model's repository on this machine.",
        )
        if not allowed:
            st.caption(
                "trust_remote_code is off on this server: the operator has not allowed model "
                f"code to run ({model_access.REMOTE_CODE}=1 allows it)."
            )
        busy = bool(jobs.active())
        submitted = st.form_submit_button("Load", type="primary", disabled=busy)
    st.caption(
        f"auto picks CUDA, then Apple MPS, then CPU (CUDA here: "
        f"{'yes' if torch.cuda.is_available() else 'no'}); bfloat16/float16 on a GPU, "
        "float32 on CPU. One model is kept per app process, shared by every browser tab."
    )
    if trust and allowed:
        st.warning(
            "trust_remote_code runs the model repository's own Python code with your rights: "
            "turn it on only for a model whose code you have read or trust."
        )
    if busy:
        st.info("Load and Unload are off while a run is in progress (see Experiments).")
    if not submitted:
        return None
    # A tick kept from when it was allowed cannot be unticked once disabled: it counts no more.
    return ModelRequest(model_id, device=device, dtype=dtype, trust_remote_code=trust and allowed)


def load(request: ModelRequest) -> None:
    """Load the model asked for (or find it loaded already) and say how it went."""
    before = models.current_model()
    with st.spinner(f"Loading {request.model_id.strip() or 'the model'}…"):
        loaded = models.get_model(request)
    how = "was already loaded" if loaded is before else f"loaded in {loaded.load_seconds:.1f} s"
    st.success(plain(f"{loaded.model_id} {how} ({loaded.device}, {loaded.dtype})."))


def unload_now() -> None:
    """The Unload button's callback: runs before the page is drawn, so the page shows the result."""
    with shown_errors():
        llama_engine.stop()  # llama.cpp (local)'s server goes with the model it serves
        st.session_state[UNLOAD_REPORT] = model_info.unload_model()


def show_unload_report() -> None:
    """Memory before and after the last unload, shown once."""
    report = st.session_state.pop(UNLOAD_REPORT, None)
    if report is None:
        return
    before, after = report
    st.success("The model was unloaded.")
    rows = [("process memory (RSS)", before.rss_bytes, after.rss_bytes)]
    if before.cuda_allocated is not None:
        rows.append(("CUDA memory allocated", before.cuda_allocated, after.cuda_allocated))
        rows.append(("CUDA memory reserved", before.cuda_reserved, after.cuda_reserved))
    frame = pd.DataFrame(
        [(name, model_info.format_bytes(a), model_info.format_bytes(b)) for name, a, b in rows],
        columns=["memory", "before", "after"],
    )
    table(frame, "unload-memory.csv")


def show_model(loaded: models.LoadedModel) -> None:
    """The loaded model's facts, the Unload button, and its chat template."""
    st.subheader("Loaded model")
    facts = model_info.describe(loaded)
    rows = model_info.facts_rows(facts, model_info.memory_snapshot())
    table(pd.DataFrame(rows, columns=["fact", "value"]), "model.csv")
    st.button(
        "Unload",
        on_click=unload_now,
        disabled=bool(jobs.active()),
        help="Frees the model's memory, GPU memory included.",
    )
    if facts.chat_template:
        with st.expander("Chat template (Jinja source)"):
            st.code(facts.chat_template, language=None, wrap_lines=True)
    else:
        st.info("This model has no chat template: prompts are sent to it as they are written.")


def show_template_preview(loaded: models.LoadedModel) -> None:
    """The messages typed here as the model receives them, and how many tokens they make."""
    st.subheader("What a prompt becomes")
    system = st.text_area(
        "System message (empty: none)", model_info.SAMPLE_SYSTEM, **kept(PAGE, "system")
    )
    user = st.text_area("User message", model_info.SAMPLE_USER, **kept(PAGE, "user"))
    preview = model_info.preview_prompt(loaded, user, system)
    if preview.templated:
        st.caption("Through the model's chat template, ready for its answer:")
    else:
        st.caption("No chat template: the user message is sent as written (the system is unused).")
    st.code(preview.text, language=None, wrap_lines=True)
    # st.code trims one leading and one trailing newline; the escaped form hides nothing.
    with st.expander("Exactly, as a JSON string (newlines as \\n)"):
        st.code(preview.escaped, language="json", wrap_lines=True)
    st.caption(f"{preview.tokens} tokens")


def load_requested() -> None:
    """The load form, and the load it asks for once submitted."""
    request = load_form()
    if request is not None:
        load(request)


def loaded_model() -> None:
    """The loaded model and its template preview, or a note that none is loaded."""
    current = models.current_model()
    if current is None:
        st.info("No model is loaded. Load one above; pages that need a model also load it on use.")
        return
    with shown_errors():
        show_model(current)
    with shown_errors():
        show_template_preview(current)
