"""Playground: compose a prompt, see exactly what the model receives, run it, score it; every
run is stored as an experiment."""

import streamlit as st

from core.datasets.data import BUILTIN_NAME
from core.errors import PromptLabError
from core.evaluation.scoring import RougeOptions, score_rouge
from core.generation.local import generate_lock
from core.generation.streaming import TokenStream
from core.models.registry import hold
from core.prompting.rendering import render_for_model
from core.runs import experiments, playground
from core.runs.experiments import RunSpec
from storage import queries
from storage.db import session_scope
from ui import identity, inside_views, model_choice, served_inputs, widgets
from ui.feedback import plain, shown_errors
from ui.navigation import through_app
from ui.prompt_view import coloured_prompt, context_bar
from ui.state import kept

through_app()

PAGE = "playground"
LAST = "playground.last"  # the last run's outcome, shown until the next run
STOPPED = "playground.stopped"  # Stop was pressed: say so once, on the rerun it causes


def answer(endpoint, request, loaded, prompt, settings, design):
    """Stream the answer into the page, from the local model or the endpoint; the finished
    stream holds the Output. Stop (or any other click, or leaving the page) ends the stream."""
    shown, box, stop = "", st.empty(), st.empty()
    stop.button("Stop", key="playground-stop", on_click=_note_stopped)
    if endpoint is None:
        with hold(request) as held:  # stays loaded until the answer ends
            if generate_lock.locked():
                box.caption("Waiting for the batch another run is generating…")
            stream = TokenStream(held, prompt, settings)
            try:
                for piece in stream:
                    shown += piece
                    box.text(shown)
            finally:  # Streamlit interrupts the loop on a rerun: generation must end with it
                stream.close()
    else:
        box.caption(f"Waiting for {endpoint.base_url}…")
        stream = playground.served_answer(endpoint, loaded, prompt, settings, design)
        for piece in stream:
            shown += piece
            box.text(shown)
    stop.empty()
    if stream.result is None:
        raise PromptLabError("Generation ended without an answer.")
    box.empty()
    return stream


def _note_stopped() -> None:
    st.session_state[STOPPED] = True


st.title("Playground")
st.caption("Compose a prompt, see exactly what the model receives, run it and score it.")

with st.sidebar:
    st.header("Model")
    load_pressed, loaded_note = model_choice.model_field(PAGE)
    endpoint, backend_ready = None, False  # a half-filled endpoint must not fall back to local
    with shown_errors():
        endpoint = served_inputs.backend_inputs(PAGE, one_request=True)
        backend_ready = True
    st.header("Generation")
    settings = None
    with shown_errors():
        settings = widgets.settings_inputs(PAGE)

design = data = None
with shown_errors():
    with session_scope() as session:
        experiments.get_dataset(BUILTIN_NAME)  # stored on first use
        names = [
            n for n in queries.list_dataset_names(session=session) if n != playground.TYPED_DATASET
        ]
    left, right = st.columns(2)
    with right:
        st.subheader("Input")
        dataset_name = st.selectbox(
            "Dataset",
            names,
            **kept(PAGE, "dataset"),
            help="Shots come from its pool split; the input from its evaluation split.",
        )
        data = experiments.get_dataset(dataset_name)
        typed = (
            st.radio(
                "Input from",
                ["the dataset", "typed here"],
                horizontal=True,
                **kept(PAGE, "source"),
            )
            == "typed here"
        )
        if typed:
            text = st.text_area("Your input", **kept(PAGE, "typed_input"), height=200)
            reference = st.text_area(
                "Reference answer (optional, for ROUGE)",
                **kept(PAGE, "typed_reference"),
                height=70,
            )
        elif not data.eval:  # stored before split roles were asked for, or by hand
            chosen = None
            st.warning(
                plain(
                    f"'{dataset_name}' has no examples to evaluate (no eval split): type an "
                    "input, or import it again saying which split values are evaluated."
                )
            )
        else:
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
    with left:
        st.subheader("Prompt design")
        design = widgets.design_inputs(PAGE, data.pool)

ready = data is not None and (typed or chosen is not None)
if backend_ready and settings is not None and design is not None and ready:
    with shown_errors():
        example = playground.typed_example(text, reference) if typed else chosen
        # For a served endpoint only the tokenizer and chat template are needed here.
        loaded = model_choice.model_in_use(PAGE, load=load_pressed, served=endpoint is not None)
        model_choice.show_loaded(PAGE, loaded_note, loaded)
        request = model_choice.request_of(PAGE, loaded)
        prompt = render_for_model(
            loaded, design, example, data.pool, max_new_tokens=settings.max_new_tokens
        )
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
        blocked = endpoint is not None and served_inputs.endpoint_problems(
            settings, endpoint, use_chat_template=design.use_chat_template, token_confidence=False
        )
        run = st.button("Run", type="primary", disabled=blocked)
        output_box = st.container(key="playground-output")
        if st.session_state.pop(STOPPED, False):
            output_box.info("Stopped: the answer was cut short and not stored.")
        if run:
            st.session_state.pop(LAST, None)
            with output_box:
                stream = answer(endpoint, request, loaded, prompt, settings, design)
            spec = RunSpec(
                dataset=playground.TYPED_DATASET if typed else dataset_name,
                pool_dataset=dataset_name if typed else None,
                split=None if typed else "eval",
                design=design,
                settings=settings,
                model=request,
                label=playground.LABEL,
                endpoint=endpoint,
            )
            stored = playground.store_run(
                spec, example, prompt, stream.result, loaded, actor=identity.actor()
            )
            scores = {}
            if example.reference:
                report = score_rouge(
                    [stream.result.text], [example.reference], options=RougeOptions.lab()
                )
                scores = {name: agg.mean for name, agg in report.aggregates.items()}
            st.session_state[LAST] = dict(
                out=stream.result,
                id=stored,
                scores=scores,
                key=example.id,
                prompt=prompt,
                settings=settings,
                request=request,
                served=endpoint is not None,
                counted_here=stream.counted_here,
            )
        last = st.session_state.get(LAST)
        if last:
            out = last["out"]
            with output_box:
                st.text(out.text)
                counted = (
                    " (counted here: the server sent no counts)" if last["counted_here"] else ""
                )
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
            if last["served"]:
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
