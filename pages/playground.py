"""Playground: compose a prompt, see exactly what the model receives, run it, score it."""

import streamlit as st

from core.data import load_builtin
from core.errors import PromptLabError
from core.models import EMBEDDED, ModelRequest, get_model
from core.prompts import PRESETS, PromptDesign
from core.rendering import render_for_model
from core.scoring import RougeOptions, score_rouge
from core.settings import GenerationSettings
from core.streaming import TokenStream
from ui.feedback import shown_errors

st.title("Playground")
data = load_builtin()

with st.sidebar:
    st.header("Model")
    model_id = st.text_input("Model (Hugging Face id or folder)", EMBEDDED)
    st.header("Generation")
    max_new_tokens = st.number_input("max_new_tokens", 1, 4096, 96)
    do_sample = st.toggle("Sample (off: greedy)", False)
    off = "Greedy decoding always takes the most likely token."
    temperature = st.slider("temperature", 0.05, 2.0, 1.0, disabled=not do_sample, help=off)
    top_k = st.number_input("top_k (0 = off)", 0, 1000, 50, disabled=not do_sample, help=off)
    top_p = st.slider("top_p", 0.05, 1.0, 1.0, disabled=not do_sample, help=off)
    seed = st.number_input("seed", 0, 2**31 - 1, 0)

preset = st.selectbox("Preset", list(PRESETS), format_func=str.capitalize)
base = PRESETS[preset]
left, right = st.columns(2)
with left:
    instruction = st.text_area("Instruction", base.instruction, key=f"instr-{preset}")
    example_format = st.text_area("Example format", base.example_format, key=f"fmt-{preset}")
    shots = st.number_input("Shots (0 = zero-shot)", 0, len(data.pool), 0)
    selection = st.selectbox("Shot selection", ["first", "random"])
with right:
    example = st.selectbox(
        "Input (evaluation split of the built-in dialogues)",
        data.eval,
        format_func=lambda ex: f"{ex.id}: {ex.input.splitlines()[0][:60]}",
    )
    st.text(example.input)

with shown_errors():
    settings = GenerationSettings(
        max_new_tokens=int(max_new_tokens),
        do_sample=do_sample,
        temperature=float(temperature),
        top_k=int(top_k),
        top_p=float(top_p),
        seed=int(seed),
    )
    design = PromptDesign(
        instruction=instruction,
        example_format=example_format,
        separator=base.separator,
        shots=int(shots),
        selection=selection,
    )
    with st.spinner("Loading the model…"):
        loaded = get_model(ModelRequest(model_id))
    prompt = render_for_model(
        loaded, design, example, data.pool, max_new_tokens=settings.max_new_tokens
    )
    for note in prompt.notes:
        st.warning(note)
    st.subheader("Exact prompt sent")
    st.code(prompt.sent_text, language=None, wrap_lines=True)
    counts = ", ".join(f"{kind} {n}" for kind, n in prompt.tokens_by_kind().items())
    st.caption(f"{prompt.prompt_tokens} tokens ({counts}) of {prompt.budget} that fit.")
    if prompt.budget:
        st.progress(min(1.0, prompt.prompt_tokens / prompt.budget))
    if st.button("Run", type="primary"):
        box, shown = st.empty(), ""
        stream = TokenStream(loaded, prompt, settings)
        for piece in stream:
            shown += piece
            box.text(shown)
        out = stream.result
        if out is None:
            raise PromptLabError("Generation ended without an answer.")
        box.text(out.text)
        st.caption(
            f"{out.new_tokens} new tokens, finished by {out.finish_reason}, {out.latency_s:.1f} s"
        )
        report = score_rouge([out.text], [example.reference], options=RougeOptions.lab())
        st.dataframe({k: round(a.mean, 4) for k, a in report.aggregates.items()})
