"""The backend choice of a run form: the local model (transformers), llama.cpp (local) with its
slots, or a served OpenAI-compatible endpoint with its settings, and what the choice cannot do
with the generation settings chosen."""

from __future__ import annotations

from dataclasses import dataclass, fields

import streamlit as st

from core import policy
from core.errors import PromptLabError
from core.generation.settings import GenerationSettings
from core.runs import served as served_runs
from core.runs.spec import RunSpec
from core.served import endpoint as served
from core.served import llama_engine
from core.served.endpoint import Endpoint
from ui.feedback import plain
from ui.state import kept, key

LOCAL, SERVED, LLAMA = "Local model", "Served endpoint", llama_engine.NAME
LLAMA_NOTE = (
    "llama.cpp (local) runs the model's quantised GGUF weights, several requests at a time: its "
    "greedy text can differ from transformers' (the Local model), and with the number of "
    "parallel slots. 1 slot reproduces exactly, run after run."
)
_HELP = (
    "A served endpoint (vLLM, TGI, llama.cpp server, Ollama) generates instead of the model "
    "loaded here; the model field then only supplies the tokenizer and chat template that "
    "render and fit the prompts."
)
INSIDE_NOTE = (
    "Per-token confidence and the sampling inspector read the model's own probabilities, "
    "which only transformers computes here: generate with the Local model to see them."
)


@dataclass(frozen=True)
class Backend:
    """Who generates, as RunSpec fields: transformers (nothing set), llama.cpp (local) with its
    slots (None: chosen from the machine), or a served endpoint."""

    endpoint: Endpoint | None = None
    engine: str = "transformers"
    slots: int | None = None

    @property
    def llama(self) -> bool:
        return self.engine == "llama.cpp"

    def spec_fields(self) -> dict:
        return {"endpoint": self.endpoint, "engine": self.engine, "slots": self.slots}


def backend_choice(page: str, *, one_request: bool = False) -> Backend:
    """The three-way choice: the local model, llama.cpp (local) or a served endpoint (errors in
    an endpoint's fields are raised). `one_request`: the Playground's narrow form."""
    backend = st.radio(
        "Generate with",
        (LOCAL, LLAMA, SERVED),
        horizontal=True,
        **kept(page, "backend"),
        help=_HELP + " llama.cpp (local) starts llama.cpp's own server here for a GGUF model "
        "(the embedded one, or a .gguf file) and sends the run to it.",
    )
    if backend == LLAMA:
        return Backend(engine="llama.cpp", slots=_slots(page))
    if backend == SERVED:
        return Backend(endpoint=_endpoint_inputs(page, one_request=one_request))
    return Backend()


def backend_inputs(page: str, *, one_request: bool = False) -> Endpoint | None:
    """The two-way choice of variants side by side: None for the local model, else the endpoint
    as filled in (errors are raised)."""
    if st.session_state.get(key(page, "backend")) == LLAMA:  # copied from the Playground
        st.session_state[key(page, "backend")] = LOCAL
        st.caption("llama.cpp (local) is not offered for variants side by side.")
    backend = st.radio(
        "Generate with", (LOCAL, SERVED), horizontal=True, **kept(page, "backend"), help=_HELP
    )
    return None if backend == LOCAL else _endpoint_inputs(page, one_request=one_request)


def _slots(page: str) -> int | None:
    """llama.cpp (local)'s parallel slots (None: chosen from the machine), with what they mean."""
    st.session_state.setdefault(key(page, "llama.slots"), 0)
    slots = st.number_input(
        "Parallel slots (0 = auto)",
        0,
        64,
        **kept(page, "llama.slots"),
        help="Requests llama.cpp decodes together (0: 4 a core, at most 8). " + LLAMA_NOTE,
    )
    st.caption(LLAMA_NOTE)
    return int(slots) or None


def _endpoint_inputs(page: str, *, one_request: bool) -> Endpoint:
    """The endpoint's fields and Test connection; `one_request` leaves out what only a run of
    many needs."""
    st.session_state.setdefault(key(page, "endpoint.url"), "http://localhost:8000/v1")
    defaults = {f.name: f.default for f in fields(Endpoint)}
    for name, field in (
        ("concurrency", "concurrency"),
        ("timeout", "timeout_s"),
        ("retries", "max_retries"),
        ("budget", "error_budget"),
    ):
        st.session_state.setdefault(key(page, f"endpoint.{name}"), defaults[field])
    rows = (
        [st.container()] * 9
        if one_request
        else [*st.columns([3, 2, 1, 2]), *st.columns([2, 1, 1, 1, 1])]
    )
    url = rows[0].text_input("Base URL", **kept(page, "endpoint.url"))
    model = rows[1].text_input(
        "Served model name", **kept(page, "endpoint.model"), help="Its 'model' parameter."
    )
    api = rows[2].selectbox(
        "API",
        served.APIS,
        **kept(page, "endpoint.api"),
        help="completions sends the prompt exactly as rendered here; chat sends the designed "
        "text as a user message and the server applies its own template.",
    )
    server = rows[3].selectbox(
        "Server type",
        list(served.SERVERS),
        format_func=served.SERVERS.get,
        **kept(page, "endpoint.server"),
    )
    key_env = rows[4].text_input(
        "API key: environment variable",
        **kept(page, "endpoint.key_env"),
        placeholder=f"e.g. {policy.KEY_PREFIX}VLLM (empty: no key)",
        help=f"The NAME of a variable set in the shell that started Prompt Lab, starting with "
        f"{policy.KEY_PREFIX} (or one the operator lists in {served.KEY_VARIABLES}). The key "
        "itself is never asked for here, and never stored.",
    )
    timeout = rows[5].number_input(
        "Timeout (s)", 0.1, 3600.0, **kept(page, "endpoint.timeout"), help="Per request."
    )
    retries = rows[6].number_input(
        "Retries",
        0,
        20,
        **kept(page, "endpoint.retries"),
        help="After a 429, a 5xx, a timeout or a dropped connection, with growing waits.",
    )
    many = {} if one_request else _run_inputs(page, rows[7], rows[8])
    endpoint = Endpoint(
        base_url=url.strip(),
        model=model.strip(),
        api=api,
        server=server,
        api_key_env=key_env.strip(),
        timeout_s=float(timeout),
        max_retries=int(retries),
        **many,
    )
    endpoint.check_policy()  # the operator's hosts and key variables, said before any request
    if st.button(
        "Test connection",
        key=f"{page}.test_connection",
        help="Asks the server which models it serves.",
    ):
        try:
            names = served.probe(endpoint)
        except PromptLabError as exc:
            st.error(plain(str(exc)))
        else:
            listed = ", ".join(names) if names else "it lists no models"
            st.success(plain(f"{endpoint.base_url} answers; {listed}."))
    return endpoint


def _run_inputs(page: str, left, right) -> dict[str, float | int]:
    """What only a run over many examples needs: requests in flight, and the error budget."""
    concurrency = left.number_input(
        "Concurrency", 1, 256, **kept(page, "endpoint.concurrency"), help="Requests in flight."
    )
    budget = right.number_input(
        "Error budget",
        0.0,
        1.0,
        step=0.05,
        **kept(page, "endpoint.budget"),
        help="The share of examples that may fail before the run stops. Failed examples are "
        "stored as failed and can be retried later.",
    )
    return dict(concurrency=int(concurrency), error_budget=float(budget))


def fill(page: str, spec: RunSpec) -> None:
    """Pre-fill the backend inputs from a stored spec ("duplicate as new")."""
    endpoint = spec.endpoint
    if spec.engine == "llama.cpp":
        st.session_state[key(page, "backend")] = LLAMA
        st.session_state[key(page, "llama.slots")] = spec.slots or 0
        return
    st.session_state[key(page, "backend")] = LOCAL if endpoint is None else SERVED
    if endpoint is None:
        return
    for name, value in (
        ("url", endpoint.base_url),
        ("model", endpoint.model),
        ("api", endpoint.api),
        ("server", endpoint.server),
        ("key_env", endpoint.api_key_env),
        ("concurrency", endpoint.concurrency),
        ("timeout", endpoint.timeout_s),
        ("retries", endpoint.max_retries),
        ("budget", endpoint.error_budget),
    ):
        st.session_state[key(page, f"endpoint.{name}")] = value


def endpoint_problems(
    settings: GenerationSettings,
    endpoint: Endpoint,
    *,
    use_chat_template: bool,
    token_confidence: bool,
) -> bool:
    """Show what the endpoint cannot do as asked; True when the run cannot start."""
    refused, approximate = served.problems(
        settings, endpoint, use_chat_template=use_chat_template, token_confidence=token_confidence
    )
    for note in refused:
        st.error(plain(note))
    for note in approximate:
        st.info(plain(note))
    return bool(refused)


def backend_problems(spec: RunSpec) -> bool:
    """What the chosen backend (an endpoint, llama.cpp (local)) cannot do with this run, shown;
    True when it cannot start."""
    if spec.engine == "llama.cpp":
        return llama_problems(spec)
    return spec.endpoint is not None and endpoint_problems(
        spec.settings,
        spec.endpoint,
        use_chat_template=spec.design.use_chat_template,
        token_confidence=spec.token_confidence,
    )


def llama_problems(spec: RunSpec) -> bool:
    """For llama.cpp (local): what it will use, or why its model cannot run there, and what it
    cannot do with these settings; True when the run cannot start."""
    try:
        config = served_runs.planned_engine(spec)
    except PromptLabError as exc:
        st.error(plain(str(exc)))
        blocked = True
    else:
        slots = "chosen from this machine" if spec.slots is None else "as asked"
        st.caption(
            plain(
                f"llama.cpp (local) will use {config.slots} parallel slot(s) ({slots}), "
                f"{config.ctx_per_slot} tokens of context per slot and {config.threads} "
                f"thread(s), on {config.gguf.name}."
            )
        )
        blocked = False
    return (
        endpoint_problems(
            spec.settings,
            llama_engine.EXAMPLE_ENDPOINT,
            use_chat_template=spec.design.use_chat_template,
            token_confidence=spec.token_confidence,
        )
        or blocked
    )
