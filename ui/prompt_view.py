"""The exact prompt coloured by part, and the context-window bar; every text is escaped, so a
prompt can never be taken for HTML or Markdown."""

from html import escape

import streamlit as st

from core.prompting.design import RenderedPrompt
from core.prompting.prompt_view import KIND_NAMES, context_usage, segments

COLOURS = {
    "instruction": "#cfe2ff",
    "shot": "#d1f2d9",
    "input": "#ffe8b3",
    "template": "#e4e4e7",
    "answer": "#e9d5ff",
    "free": "#f4f4f5",
}
_PRE = (
    "white-space:pre-wrap;word-break:break-word;font-family:monospace;font-size:0.85rem;"
    "line-height:1.45;padding:0.75rem;border:1px solid #d4d4d8;border-radius:0.5rem;"
    "max-height:28rem;overflow-y:auto;color:#18181b;background:#ffffff"
)


def coloured_prompt(prompt: RenderedPrompt) -> None:
    spans = "".join(
        f'<span title="{escape(s.label)}{_count(s.tokens)}" '
        f'style="background:{COLOURS[s.kind]}">{escape(s.text)}</span>'
        for s in segments(prompt)
    )
    st.html(f'<div data-testid="coloured-prompt" style="{_PRE}">{spans}</div>')


def context_bar(prompt: RenderedPrompt, max_new_tokens: int) -> None:
    usage = context_usage(prompt, max_new_tokens)
    if not usage:
        st.caption("The model does not state its context window.")
        return
    window = prompt.context_window or 1
    blocks = "".join(
        f'<div title="{escape(KIND_NAMES[kind])}: {n} tokens" '
        f'style="width:{max(n / window * 100, 0.4):.3f}%;background:{COLOURS[kind]}"></div>'
        for kind, n in usage
    )
    legend = " · ".join(
        f'<span style="background:{COLOURS[k]};padding:0 0.3rem;border-radius:0.2rem">'
        f"{escape(KIND_NAMES[k])} {n}</span>"
        for k, n in usage
    )
    st.html(
        '<div style="display:flex;height:1.1rem;border:1px solid #d4d4d8;border-radius:0.3rem;'
        f'overflow:hidden">{blocks}</div>'
        f'<div style="font-size:0.8rem;margin-top:0.3rem">{legend} '
        f"(of {window} tokens)</div>"
    )


def _count(tokens: int | None) -> str:
    return "" if tokens is None else f": {tokens} tokens"
