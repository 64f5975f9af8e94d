"""What the Playground shows of a rendered prompt: the exact text cut into its parts, and how
the context window is spent (instruction, shots, input, template, room for the answer)."""

from __future__ import annotations

from dataclasses import dataclass

from core.prompting.design import RenderedPrompt

KINDS = ("instruction", "shot", "input", "template", "answer", "free")
KIND_NAMES = {
    "instruction": "instruction",
    "shot": "shots",
    "input": "input",
    "template": "chat template",
    "answer": "room for the answer",
    "free": "unused",
}


@dataclass(frozen=True)
class Segment:
    kind: str
    text: str
    label: str  # e.g. "shot d003", shown on hover
    tokens: int | None = None  # None for template text: its tokens are counted as one total


def segments(prompt: RenderedPrompt) -> list[Segment]:
    """The exact text sent, in order, each piece tagged with the part it belongs to; text that
    belongs to no part (or to a part the template rewrote) is template."""
    parts = [p for p in prompt.parts if p.kind != "template"]
    found, at = [], 0
    for part, span in zip(parts, prompt.spans, strict=True):
        if span is None:
            continue
        lo, hi = span
        found.append(Segment("template", prompt.sent_text[at:lo], "chat template"))
        label = f"shot {part.example_id}" if part.kind == "shot" else part.kind
        found.append(Segment(part.kind, part.text, label, part.tokens))
        at = hi
    found.append(Segment("template", prompt.sent_text[at:], "chat template"))
    return [s for s in found if s.text]


def context_usage(prompt: RenderedPrompt, max_new_tokens: int) -> list[tuple[str, int]]:
    """Tokens per use of the context window, in KINDS order; empty without a known window."""
    if not prompt.context_window:
        return []
    used = prompt.tokens_by_kind()
    rows = [(kind, used.get(kind, 0)) for kind in KINDS[:4]]
    room = min(max_new_tokens, max(prompt.context_window - (prompt.prompt_tokens or 0), 0))
    rows.append(("answer", room))
    rows.append(("free", max(prompt.context_window - (prompt.prompt_tokens or 0) - room, 0)))
    return [(kind, n) for kind, n in rows if n > 0]
