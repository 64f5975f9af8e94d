"""Seeing inside generation in the Playground: the prompt as the model's tokens, the answer
coloured by each token's probability, and the sampling inspector. Every text is escaped."""

from html import escape

import pandas as pd
import streamlit as st

from core.generation import confidence, inspector
from core.generation.settings import GenerationSettings
from core.models.registry import LoadedModel, ModelRequest, hold
from core.prompting import token_view
from core.prompting.design import RenderedPrompt
from storage import queries
from storage.db import session_scope
from ui.prompt_view import COLOURS
from ui.state import kept

_BOX = (
    "white-space:pre-wrap;word-break:break-word;font-family:monospace;font-size:0.85rem;"
    "line-height:1.7;padding:0.75rem;border:1px solid #d4d4d8;border-radius:0.5rem;"
    "max-height:24rem;overflow-y:auto;color:#18181b;background:#ffffff"
)


def prompt_tokens(loaded: LoadedModel, prompt: RenderedPrompt) -> None:
    """Each token in its part's colour, alternate tokens shaded, the id and part on hover."""
    pieces = token_view.prompt_tokens(loaded.tokenizer, prompt)
    spans = []
    for piece in pieces:
        shown = piece.text or piece.token
        shade = "filter:brightness(0.93);" if piece.index % 2 else ""
        spans.append(
            f'<span title="#{piece.index} id {piece.id} · {escape(piece.label)}" '
            f'style="background:{COLOURS[piece.kind]};{shade}border-right:1px solid #fff">'
            f"{escape(shown)}</span>"
        )
    st.html(f'<div data-testid="prompt-tokens" style="{_BOX}">{"".join(spans)}</div>')
    counts = token_view.counts_by_label(pieces)
    st.dataframe(
        pd.DataFrame({"part": list(counts), "tokens": list(counts.values())}), hide_index=True
    )


def answer_confidence(
    request: ModelRequest, prompt: RenderedPrompt, answer: str, experiment_id: int, key: str
) -> None:
    """The answer coloured by probability, computed once and stored with the run's result."""
    cache = st.session_state.setdefault("playground.confidence", {})
    if experiment_id not in cache:
        with st.spinner("Scoring each answer token…"), hold(request) as loaded:
            items = confidence.token_confidence(loaded, prompt, answer)
        with session_scope() as session:
            queries.set_token_confidence(
                session=session,
                experiment_id=experiment_id,
                example_key=key,
                value=confidence.to_json(items),
            )
        cache[experiment_id] = items
    items = cache[experiment_id]
    spans = "".join(
        f'<span title="id {t.id}: p = {t.probability:.4f}" '
        f'style="background:{_heat(t.probability)}">{escape(t.text)}</span>'
        for t in items
    )
    st.html(f'<div data-testid="answer-confidence" style="{_BOX}">{spans}</div>')
    summary = confidence.summarize(items)
    if summary.mean is not None:
        lowest = ", ".join(
            f"{t.text.strip() or repr(t.text)} (#{i}) {t.probability:.2f}"
            for i, t in summary.lowest
        )
        st.caption(
            f"{summary.tokens} tokens; mean probability {summary.mean:.3f}, lowest "
            f"{summary.min:.3f} ({lowest}). Raw model probabilities, before temperature, top-k "
            "and top-p; stored with this run."
        )


def sampling_inspector(
    request: ModelRequest, prompt: RenderedPrompt, answer: str, settings: GenerationSettings
) -> None:
    with hold(request) as loaded:
        answer_ids = confidence.encode_answer(loaded, answer)
    step = st.slider(
        "Answer token to inspect (0 = the first)", 0, len(answer_ids), **kept("playground", "step")
    )
    if not st.button("Inspect this step"):
        return
    with st.spinner("Running the model on the prompt and the answer so far…"), hold(request) as m:
        view = inspector.inspect_step(m, prompt, answer_ids, int(step), settings)
    for note in view.notes:
        st.caption(note)
    stages = [s for s in view.stages if s.applies or s.name in ("temperature", "top_k", "top_p")]
    for column, stage in zip(st.columns(len(stages)), stages, strict=True):
        with column:
            chosen = "—" if stage.chosen_probability is None else f"{stage.chosen_probability:.4f}"
            tag = "" if stage.applies else " (not applied: greedy)"
            st.caption(f"{stage.label}{tag}: {stage.kept} tokens left; the answer's token {chosen}")
            st.dataframe(
                pd.DataFrame(
                    [(t.text, t.id, round(t.probability, 4)) for t in stage.top],
                    columns=["token", "id", "p"],
                ),
                hide_index=True,
            )


def _heat(probability: float) -> str:
    """Red for an unlikely token, through yellow, to green for a sure one."""
    hue = int(120 * max(0.0, min(1.0, probability)))
    return f"hsl({hue}, 75%, 82%)"
