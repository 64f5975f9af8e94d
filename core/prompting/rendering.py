"""Rendering a prompt for one model: its chat template, token counts per part, and the fit to the
context window (drop shots, truncate the input, or refuse), always reported, never silent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from core.datasets.data import Example
from core.errors import PromptLabError
from core.prompting.design import (
    Embed,
    PromptDesign,
    PromptPart,
    RenderedPrompt,
    build_parts,
    select_shots,
)


def render_prompt(
    design: PromptDesign,
    target: Example,
    pool: Sequence[Example] = (),
    *,
    tokenizer: Any = None,
    context_window: int | None = None,
    max_new_tokens: int = 0,
    encoder_decoder: bool = False,
    embed: Embed | None = None,
) -> RenderedPrompt:
    """Render `target` with shots from `pool`, fitted to the model when a tokenizer is given;
    `embed` serves designs that pick or order shots by similarity (see select_shots)."""
    shots = select_shots(design, pool, target, embed=embed)
    notes = []
    if design.shots and len(shots) < design.shots:
        notes.append(f"Example {target.id} was not used as a shot for itself.")
    rendered = _render(design, target, shots, target.input, tokenizer)
    if tokenizer is None or context_window is None:
        return _with(rendered, notes=tuple(notes))
    # An encoder-decoder model writes its answer in the decoder: the whole window is the prompt's.
    budget = context_window if encoder_decoder else context_window - max_new_tokens
    if budget <= 0:
        raise PromptLabError(
            f"max_new_tokens ({max_new_tokens}) leaves no room for a prompt in this model's "
            f"context window of {context_window} tokens."
        )
    order = _drop_order(design, target, pool, shots, embed)
    fitted = _fit(design, target, shots, order, rendered, tokenizer, budget, context_window)
    return _with(
        fitted, budget=budget, context_window=context_window, notes=(*notes, *fitted.notes)
    )


def render_for_model(
    loaded: Any,
    design: PromptDesign,
    target: Example,
    pool: Sequence[Example] = (),
    *,
    max_new_tokens: int,
    embed: Embed | None = None,
) -> RenderedPrompt:
    """render_prompt with the tokenizer, context window and kind of a loaded model."""
    return render_prompt(
        design,
        target,
        pool,
        tokenizer=loaded.tokenizer,
        context_window=loaded.context_window,
        max_new_tokens=max_new_tokens,
        encoder_decoder=loaded.kind == "seq2seq",
        embed=embed,
    )


def _drop_order(design, target, pool, shots, embed) -> list[Example]:
    """The order in which shots go when a prompt must shrink: the least similar first for
    similarity picks, whatever their order in the prompt; otherwise the farthest from the input."""
    if design.selection not in ("similar", "mmr"):
        return list(shots)
    ranked = select_shots(design.with_(shot_order="given"), pool, target, embed=embed)
    return list(reversed(ranked))


def _fit(design, target, shots, order, rendered, tokenizer, budget, window) -> RenderedPrompt:
    over = rendered.prompt_tokens - budget
    if over <= 0:
        return rendered
    need = (
        f"The prompt for example {target.id} needs {rendered.prompt_tokens} tokens but "
        f"{budget} fit (context window {window} minus room for the answer)"
    )
    if design.fit_policy == "refuse":
        raise PromptLabError(f"{need}. Use fewer shots, a shorter input or fewer max_new_tokens.")
    if design.fit_policy == "drop_shots":
        kept, dropped_shots = list(shots), []
        for victim in order:
            if rendered.prompt_tokens <= budget:
                break
            kept.remove(victim)
            dropped_shots.append(victim)
            rendered = _render(design, target, kept, target.input, tokenizer)
        if rendered.prompt_tokens > budget:
            raise PromptLabError(
                f"{need}, even with every shot dropped. Truncate the input or lower max_new_tokens."
            )
        dropped = tuple(s.id for s in dropped_shots)
        note = f"Dropped {len(dropped)} shot(s) to fit: {', '.join(dropped)}."
        return _with(rendered, dropped_shot_ids=dropped, notes=(note,))
    return _truncate_input(design, target, shots, rendered, tokenizer, budget, need)


def _truncate_input(design, target, shots, rendered, tokenizer, budget, need) -> RenderedPrompt:
    ids = tokenizer(target.input, add_special_tokens=False)["input_ids"]
    keep = len(ids) - (rendered.prompt_tokens - budget)
    while keep > 0:
        text = tokenizer.decode(ids[:keep], skip_special_tokens=True)
        rendered = _render(design, target, shots, text, tokenizer)
        if rendered.prompt_tokens <= budget:
            cut = len(ids) - keep
            note = f"Cut the last {cut} of {len(ids)} input tokens of example {target.id} to fit."
            return _with(rendered, truncated_input_tokens=cut, notes=(note,))
        keep -= max(1, rendered.prompt_tokens - budget)  # token merges can shift by a few
    raise PromptLabError(f"{need}, and the instruction and shots alone do not fit.")


def _with(rendered: RenderedPrompt, **changes: Any) -> RenderedPrompt:
    return replace(rendered, **changes)


def _render(design, target, shots, input_text, tokenizer) -> RenderedPrompt:
    parts = build_parts(design, shots, input_text)
    text = "".join(p.text for p in parts)
    templated = tokenizer is not None and design.use_chat_template and _has_template(tokenizer)
    sent = apply_chat_template(tokenizer, text, design.system_prompt) if templated else text
    base = RenderedPrompt(
        example_id=target.id,
        text=text,
        sent_text=sent,
        parts=tuple(parts),
        shot_ids=tuple(s.id for s in shots),
        add_special_tokens=not templated,
    )
    if tokenizer is None:
        return base
    counted, total = count_part_tokens(tokenizer, parts, sent, add_special_tokens=not templated)
    return _with(base, parts=counted, prompt_tokens=total)


def _has_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def apply_chat_template(tokenizer: Any, text: str, system_prompt: str | None = None) -> str:
    """The text a chat model receives for one user turn, ready for its answer."""
    messages = [{"role": "user", "content": text}]
    if system_prompt:
        messages.insert(0, {"role": "system", "content": system_prompt})
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as exc:  # templates are Jinja code from the model's repository
        raise PromptLabError(f"The model's chat template failed on this prompt: {exc}") from exc


def count_part_tokens(
    tokenizer: Any, parts: Sequence[PromptPart], sent: str, *, add_special_tokens: bool
) -> tuple[tuple[PromptPart, ...], int]:
    """Tokens of `sent` per part, by where each token starts; the rest counts as template."""
    encoding = tokenizer(sent, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    total = len(encoding["input_ids"])
    text = "".join(p.text for p in parts)
    start = sent.find(text)
    spans, at = [], max(start, 0)
    for part in parts:
        spans.append((at, at + len(part.text)))
        at += len(part.text)
    counts = [0] * len(parts)
    for begin, end in encoding["offset_mapping"]:
        if start < 0 or begin == end:  # special tokens added by the tokenizer have empty spans
            continue
        for i, (lo, hi) in enumerate(spans):
            if lo <= begin < hi:
                counts[i] += 1
                break
    counted = [replace(p, tokens=n) for p, n in zip(parts, counts, strict=True)]
    template = total - sum(counts)
    if template:
        counted.append(PromptPart("template", _template_text(sent, text, start), None, template))
    return tuple(counted), total


def _template_text(sent: str, text: str, start: int) -> str:
    if start < 0:
        return sent
    return sent[:start] + "…" + sent[start + len(text) :]
