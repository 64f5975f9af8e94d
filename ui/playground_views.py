"""The Playground's sections: the model and settings in the sidebar, the input and the prompt
design, the exact prompt sent, the streamed answer, and the last run's outcome."""

from dataclasses import dataclass

import streamlit as st

from core.datasets.data import BUILTIN_NAME, Dataset, Example
from core.errors import PromptLabError
from core.evaluation.scoring import RougeOptions, score_rouge
from core.generation.local import generate_lock
from core.generation.settings import GenerationSettings
from core.generation.streaming import TokenStream
from core.models.registry import LoadedModel, ModelRequest, hold
from core.prompting.design import PromptDesign, RenderedPrompt
from core.prompting.rendering import render_for_model
from core.runs import experiments, playground
from core.runs.experiments import RunSpec
from core.served.endpoint import Endpoint
from storage import queries
from storage.db import session_scope
from ui import identity, inside_views, model_choice, served_inputs, widgets
from ui.feedback import plain, shown_errors
from ui.prompt_view import coloured_prompt, context_bar
from ui.state import kept

PAGE = "playground"
LAST = "playground.last"  # the last run's outcome, shown until the next run
STOPPED = "playground.stopped"  # Stop was pressed: say so once, on the rerun it causes


@dataclass
class Setup:
    """What the sidebar asks for: the model, the backend and the generation settings."""

    load_pressed: bool
    loaded_note: st.delta_generator.DeltaGenerator
    backend: served_inputs.Backend
    backend_ready: bool  # a half-filled endpoint must not fall back to local
    settings: GenerationSettings | None

    @property
    def endpoint(self) -> Endpoint | None:
        return self.backend.endpoint


@dataclass
class Source:
    """The dataset chosen and where the input comes from: typed here, or one of its examples."""

    dataset_name: str
    data: Dataset
    typed: bool
    text: str = ""
    reference: str = ""
    chosen: Example | None = None


def sidebar(*, one_prompt: bool = True) -> Setup:
    """The sidebar: the model field and, for one prompt (variants side by side have their own
    in their columns), the backend and the generation settings."""
    with st.sidebar:
        st.header("Model")
        load_pressed, loaded_note = model_choice.model_field(PAGE)
        backend, backend_ready = served_inputs.Backend(), not one_prompt
        if one_prompt:
            with shown_errors():
                backend = served_inputs.backend_choice(PAGE, one_request=True)
                backend_ready = True
        settings = None
        if one_prompt:
            st.header("Generation")
            with shown_errors():
                settings = widgets.settings_inputs(PAGE)
    return Setup(load_pressed, loaded_note, backend, backend_ready, settings)


def input_and_design() -> tuple[Source | None, PromptDesign | None]:
    """The input (right) and the prompt design (left); None for what could not be had."""
    source = design = None
    with shown_errors():
        names = dataset_names()
        left, right = st.columns(2)
        with right:
            source = input_choice(names)
        with left:
            st.subheader("Prompt design")
            design = widgets.design_inputs(PAGE, source.data.pool)
    return source, design


def shared_input() -> Source | None:
    """The input every variant side by side runs on; None if it could not be had."""
    with shown_errors():
        return input_choice(dataset_names())
    return None


def dataset_names() -> list[str]:
    """The stored datasets an input can come from (the built-in one stored on first use)."""
    with session_scope() as session:
        experiments.get_dataset(BUILTIN_NAME)
        return [
            n for n in queries.list_dataset_names(session=session) if n != playground.TYPED_DATASET
        ]


def input_choice(names: list[str]) -> Source:
    """The dataset, then an input typed here or one of its evaluation examples."""
    st.subheader("Input")
    dataset_name = st.selectbox(
        "Dataset",
        names,
        **kept(PAGE, "dataset"),
        help="Shots come from its pool split; the input from its evaluation split.",
    )
    source = Source(dataset_name, experiments.get_dataset(dataset_name), typed=False)
    source.typed = (
        st.radio(
            "Input from", ["the dataset", "typed here"], horizontal=True, **kept(PAGE, "source")
        )
        == "typed here"
    )
    if source.typed:
        source.text = st.text_area("Your input", **kept(PAGE, "typed_input"), height=200)
        source.reference = st.text_area(
            "Reference answer (optional, for ROUGE)", **kept(PAGE, "typed_reference"), height=70
        )
    elif not source.data.eval:  # stored before split roles were asked for, or by hand
        st.warning(
            plain(
                f"'{dataset_name}' has no examples to evaluate (no eval split): type an "
                "input, or import it again saying which split values are evaluated."
            )
        )
    else:
        source.chosen = chosen_example(source.data)
    return source


def chosen_example(data: Dataset) -> Example:
    """The evaluation example to run on, shown with its reference."""
    chosen = st.selectbox(
        "Example",
        data.eval,
        **kept(PAGE, "example"),
        format_func=lambda ex: f"{ex.id}: {ex.input.splitlines()[0][:70]}",
    )
    st.text(chosen.input)
    if chosen.reference:
        st.caption("Reference")
        st.text(chosen.reference)
    return chosen


def has_input(source: Source | None) -> bool:
    return source is not None and (source.typed or source.chosen is not None)


def ready(setup: Setup, source: Source | None, design: PromptDesign | None) -> bool:
    """Whether everything the prompt needs was filled in without an error."""
    ready_to_run = setup.backend_ready and setup.settings is not None and design is not None
    return ready_to_run and has_input(source)


def prompt_and_run(setup: Setup, source: Source, design: PromptDesign) -> None:
    """The exact prompt for the model in use, the Run button, and the last run's outcome."""
    with shown_errors():
        settings = setup.settings
        example = (
            playground.typed_example(source.text, source.reference)
            if source.typed
            else source.chosen
        )
        # For a served endpoint or llama.cpp (local) only the tokenizer and chat template are
        # needed here: the weights are elsewhere.
        loaded = model_choice.model_in_use(
            PAGE, load=setup.load_pressed, served=setup.endpoint is not None or setup.backend.llama
        )
        model_choice.show_loaded(PAGE, setup.loaded_note, loaded)
        request = model_choice.request_of(PAGE, loaded)
        prompt = render_for_model(
            loaded, design, example, source.data.pool, max_new_tokens=settings.max_new_tokens
        )
        exact_prompt(loaded, prompt, settings)
        spec = run_spec(setup, source, design, request)
        run = st.button("Run", type="primary", disabled=served_inputs.backend_problems(spec))
        output_box = st.container(key="playground-output")
        if st.session_state.pop(STOPPED, False):
            output_box.info("Stopped: the answer was cut short and not stored.")
        if run:
            st.session_state.pop(LAST, None)
            with output_box:
                stream = answer(spec, loaded, prompt)
            st.session_state[LAST] = stored_run(spec, example, prompt, stream, loaded)
        if last := st.session_state.get(LAST):
            last_answer(last, output_box)
            inside_answer(last)


def exact_prompt(loaded: LoadedModel, prompt: RenderedPrompt, settings: GenerationSettings):
    """The prompt exactly as sent: coloured by part, counted, as plain text and as tokens."""
    st.subheader("Exact prompt sent")
    for note in prompt.notes:
        st.warning(note)
    coloured_prompt(prompt)
    counts = ", ".join(f"{kind} {n}" for kind, n in prompt.tokens_by_kind().items())
    st.caption(
        f"{prompt.prompt_tokens} tokens ({counts}); {prompt.budget} fit beside "
        f"{settings.max_new_tokens} new tokens in {loaded.model_id}'s window."
    )
    context_bar(prompt, settings.max_new_tokens)
    with st.expander("Plain text, to copy"):
        st.code(prompt.sent_text, language=None, wrap_lines=True)
    with st.expander("The prompt as the model's tokens"):
        inside_views.prompt_tokens(loaded, prompt)
    for name in settings.ignored():
        st.caption(f"{name} is ignored by greedy decoding.")


def answer(spec: RunSpec, loaded: LoadedModel, prompt: RenderedPrompt):
    """Stream the answer into the page, from the local model, llama.cpp (local) or the
    endpoint; the finished stream holds the Output. Stop (or any other click, or leaving the
    page) ends the stream."""
    shown, box, stop = "", st.empty(), st.empty()
    stop.button("Stop", key="playground-stop", on_click=_note_stopped)
    endpoint = spec.endpoint
    if endpoint is None and spec.engine != "llama.cpp":
        stream = stream_local(spec.model, prompt, spec.settings, box)
    else:
        if endpoint is None:
            box.caption("Starting llama.cpp (local), or waiting for it…")
            stream = playground.LlamaStream(spec, loaded, prompt)
        else:
            box.caption(f"Waiting for {endpoint.base_url}…")
            stream = playground.served_answer(endpoint, loaded, prompt, spec.settings, spec.design)
        for piece in stream:
            shown += piece
            box.text(shown)
    stop.empty()
    if stream.result is None:
        raise PromptLabError("Generation ended without an answer.")
    box.empty()
    return stream


def stream_local(request, prompt, settings, box) -> TokenStream:
    """The local model's answer streamed into `box`; the model stays loaded until it ends, and
    a rerun (which interrupts the loop) ends the generation with it."""
    shown = ""
    with hold(request) as held:
        if generate_lock.locked():
            box.caption("Waiting for the batch another run is generating…")
        stream = TokenStream(held, prompt, settings)
        try:
            for piece in stream:
                shown += piece
                box.text(shown)
        finally:
            stream.close()
    return stream


def _note_stopped() -> None:
    st.session_state[STOPPED] = True


def run_spec(setup: Setup, source: Source, design: PromptDesign, request: ModelRequest) -> RunSpec:
    """The run as it is stored: a typed input goes to the typed dataset, shots from the chosen."""
    return RunSpec(
        dataset=playground.TYPED_DATASET if source.typed else source.dataset_name,
        pool_dataset=source.dataset_name if source.typed else None,
        split=None if source.typed else "eval",
        design=design,
        settings=setup.settings,
        model=request,
        label=playground.LABEL,
        **setup.backend.spec_fields(),
    )


def stored_run(spec: RunSpec, example: Example, prompt, stream, loaded: LoadedModel) -> dict:
    """Store the run and score it against the reference; the outcome the page keeps showing."""
    stored = playground.store_run(
        spec, example, prompt, stream.result, loaded, actor=identity.actor()
    )
    scores = {}
    if example.reference:
        report = score_rouge([stream.result.text], [example.reference], options=RougeOptions.lab())
        scores = {name: agg.mean for name, agg in report.aggregates.items()}
    return dict(
        out=stream.result,
        id=stored,
        scores=scores,
        key=example.id,
        prompt=prompt,
        settings=spec.settings,
        request=spec.model,
        served=spec.endpoint is not None or spec.engine == "llama.cpp",  # no weights here
        engine=spec.engine,
        counted_here=stream.counted_here,
    )


def last_answer(last: dict, output_box: st.delta_generator.DeltaGenerator) -> None:
    """The last run's answer, how it ended, and its scores."""
    out = last["out"]
    with output_box:
        st.text(out.text)
        counted = " (counted here: the server sent no counts)" if last["counted_here"] else ""
        st.caption(
            f"{out.new_tokens} new tokens{counted}, finished by {out.finish_reason}"
            f"{f' ({out.stop_string!r})' if out.stop_string else ''}, "
            f"{out.latency_s:.1f} s; stored as experiment {last['id']}."
        )
        if last["scores"]:
            for column, (name, value) in zip(
                st.columns(len(last["scores"])), last["scores"].items(), strict=True
            ):
                column.metric(name, f"{value:.4f}")
        else:
            st.caption("No reference to score against.")


def inside_answer(last: dict) -> None:
    """Per-token confidence and the sampling inspector, which need the local model."""
    out = last["out"]
    if last["served"] and last.get("engine") == "llama.cpp":
        st.caption(served_inputs.INSIDE_NOTE)
    elif last["served"]:
        st.caption(
            "Per-token confidence and the sampling inspector read the model's own "
            "probabilities: run with the local model to see them."
        )
    elif st.toggle(
        "Per-token confidence",
        **kept(PAGE, "confidence"),
        help="Colours each answer token by the model's probability for it, and stores "
        "those probabilities with this run.",
    ):
        inside_views.answer_confidence(
            last["request"], last["prompt"], out.text, last["id"], last["key"]
        )
    if not last["served"]:
        with st.expander("Sampling inspector: how settings reshape the next-token choice"):
            inside_views.sampling_inspector(
                last["request"], last["prompt"], out.text, last["settings"]
            )
