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
    Turn,
    build_turns,
    select_shots,
    transcript,
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
    check_shot_format(design, tokenizer, encoder_decoder=encoder_decoder)
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


def check_shot_format(design: PromptDesign, tokenizer: Any, *, encoder_decoder: bool) -> None:
    """Refuse shots as chat turns where they cannot apply: an encoder-decoder model, or a
    tokenizer with no chat template (or with it switched off). No tokenizer: a preview."""
    if design.shot_format != "turns":
        return
    if encoder_decoder:
        raise PromptLabError(
            "Shots as chat turns are for chat models; an encoder-decoder model reads one text. "
            "Use shot format inline."
        )
    if tokenizer is not None and not (design.use_chat_template and _has_template(tokenizer)):
        raise PromptLabError(
            "Shots as chat turns need the model's chat template: "
            + ("this model has none." if design.use_chat_template else "it is switched off.")
            + " Use shot format inline."
        )


def check_for_model(loaded: Any, design: PromptDesign) -> None:
    """check_shot_format for a loaded model (or a served model's tokenizer)."""
    check_shot_format(design, loaded.tokenizer, encoder_decoder=loaded.kind == "seq2seq")


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
    turns = build_turns(design, shots, input_text)
    parts = [part for turn in turns for part in turn.parts]
    as_turns = design.shot_format == "turns"
    text = transcript(turns) if as_turns else "".join(p.text for p in parts)
    templated = tokenizer is not None and design.use_chat_template and _has_template(tokenizer)
    sent = _apply_template(tokenizer, turns) if templated else text
    base = RenderedPrompt(
        example_id=target.id,
        text=text,
        sent_text=sent,
        parts=tuple(parts),
        shot_ids=tuple(s.id for s in shots),
        add_special_tokens=not templated,
        turns=tuple(turns),
        spans=locate_parts(sent, turns),
    )
    if tokenizer is None:
        return base
    counted, total = count_part_tokens(
        tokenizer, base.parts, sent, add_special_tokens=not templated, spans=base.spans
    )
    return _with(base, parts=counted, prompt_tokens=total)


def _has_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def apply_chat_template(tokenizer: Any, text: str, system_prompt: str | None = None) -> str:
    """The text a chat model receives for one user turn, ready for its answer."""
    messages = [{"role": "user", "content": text}]
    if system_prompt:
        messages.insert(0, {"role": "system", "content": system_prompt})
    return _template(tokenizer, messages)


def _apply_template(tokenizer: Any, turns: Sequence[Turn]) -> str:
    return _template(tokenizer, [{"role": t.role, "content": t.content} for t in turns])


def _template(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as exc:  # templates are Jinja code from the model's repository
        raise PromptLabError(f"The model's chat template failed on this prompt: {exc}") from exc


def locate_parts(sent: str, turns: Sequence[Turn]) -> tuple[tuple[int, int] | None, ...]:
    """Where each part of `turns` lies in `sent`: each turn's parts are looked for together,
    after the turn before; parts that cannot be found (a template that rewrites its messages'
    text) get None."""
    spans: list[tuple[int, int] | None] = []
    cursor = 0
    for turn in turns:
        joined = "".join(p.text for p in turn.parts)
        at = sent.find(joined, cursor) if joined else cursor
        for part in turn.parts:
            if at < 0:
                spans.append(None)
                continue
            spans.append((at, at + len(part.text)))
            at += len(part.text)
        if at >= 0:
            cursor = at
    return tuple(spans)


def count_part_tokens(
    tokenizer: Any,
    parts: Sequence[PromptPart],
    sent: str,
    *,
    add_special_tokens: bool,
    spans: Sequence[tuple[int, int] | None],
) -> tuple[tuple[PromptPart, ...], int]:
    """Tokens of `sent` per part, by where each token starts; the rest counts as template."""
    encoding = tokenizer(sent, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    total = len(encoding["input_ids"])
    counts = [0] * len(parts)
    for begin, end in encoding["offset_mapping"]:
        if begin == end:  # special tokens added by the tokenizer have empty spans
            continue
        for i, span in enumerate(spans):
            if span is not None and span[0] <= begin < span[1]:
                counts[i] += 1
                break
    counted = [replace(p, tokens=n) for p, n in zip(parts, counts, strict=True)]
    template = total - sum(counts)
    if template:
        counted.append(PromptPart("template", template_text(sent, spans), None, template))
    return tuple(counted), total


def template_text(sent: str, spans: Sequence[tuple[int, int] | None]) -> str:
    """`sent` with the parts' text cut out, each stretch of it shown as "…"."""
    pieces, at = [], 0
    for span in spans:
        if span is None:
            continue
        lo, hi = span
        if lo > at or not pieces:
            pieces.append(sent[at:lo])
            pieces.append("…")
        at = max(at, hi)
    pieces.append(sent[at:])
    return "".join(pieces) if pieces else sent
