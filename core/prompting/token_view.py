"""The prompt as the model's tokens: the exact characters each token covers, the part it belongs
to (by the rule rendering.count_part_tokens counts with), and answer tokens as text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import PromptLabError
from core.prompting.design import RenderedPrompt

TEMPLATE_LABEL = "chat template"


@dataclass(frozen=True)
class TokenPiece:
    index: int  # position in the prompt's input ids
    id: int
    text: str  # characters of sent_text this token stands for; "" for a token with no span
    token: str  # the vocabulary entry, e.g. "Ġthe" or "<s>": what to show when text is ""
    kind: str  # instruction, shot, input or template
    label: str  # e.g. "shot d003", as in core.prompting.prompt_view.segments
    added: bool = False  # put in by the tokenizer (BOS/EOS), not found in sent_text


def prompt_tokens(tokenizer: Any, prompt: RenderedPrompt) -> list[TokenPiece]:
    """The prompt's tokens in order, each with its text and part.

    A token belongs to the part in which its offset span starts, so counts per kind equal
    `prompt.tokens_by_kind()`. Offsets can leave characters out (whitespace that a pre-tokenizer
    drops or that trim_offsets cuts) or overlap (byte-level BPE splitting one character into
    several tokens); each token's text therefore runs from where it starts to where the next one
    starts: a gap goes to the token before it (the first token also takes any leading gap), and
    the later tokens of an overlap get "". Joined, the texts are exactly sent_text. Tokens with
    an empty span (added BOS/EOS, or a lone space whose offsets trim_offsets emptied) count as
    template, as in count_part_tokens.
    """
    try:
        encoding = tokenizer(
            prompt.sent_text,
            add_special_tokens=prompt.add_special_tokens,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
        )
    except NotImplementedError as exc:  # slow (Python) tokenizers have no offsets
        raise PromptLabError("This model's tokenizer cannot map tokens to characters.") from exc
    ids: list[int] = list(encoding["input_ids"])
    offsets = [tuple(o) for o in encoding["offset_mapping"]]
    texts = _texts(prompt.sent_text, offsets)
    owners = _owners(prompt, offsets)
    strings = tokenizer.convert_ids_to_tokens(ids)
    added = encoding["special_tokens_mask"]
    return [
        TokenPiece(
            index=i,
            id=ids[i],
            text=texts[i],
            token=str(strings[i]),
            kind=owners[i][0],
            label=owners[i][1],
            added=bool(added[i]),
        )
        for i in range(len(ids))
    ]


def _texts(sent: str, offsets: Sequence[tuple[int, int]]) -> list[str]:
    spanned = [i for i, (begin, end) in enumerate(offsets) if begin != end]
    texts = [""] * len(offsets)
    cuts, cut, previous_end = [], 0, 0
    for n, i in enumerate(spanned):
        begin, end = offsets[i]
        # Monotone cut points: a token starts no earlier than the one before it ended.
        cut = 0 if n == 0 else max(cut, begin, previous_end)
        cuts.append(min(cut, len(sent)))
        previous_end = end
    cuts.append(len(sent))
    for n, i in enumerate(spanned):
        texts[i] = sent[cuts[n] : cuts[n + 1]]
    return texts


def _owners(prompt: RenderedPrompt, offsets: Sequence[tuple[int, int]]) -> list[tuple[str, str]]:
    """(kind, label) per token, by the rule of core.prompting.rendering.count_part_tokens."""
    parts = [p for p in prompt.parts if p.kind != "template"]
    spans = []
    for part, span in zip(parts, prompt.spans, strict=True):
        if span is not None:
            label = f"shot {part.example_id}" if part.kind == "shot" else part.kind
            spans.append((*span, part.kind, label))
    owners = []
    for begin, end in offsets:
        owner = ("template", TEMPLATE_LABEL)
        if begin != end:
            owner = next(
                ((kind, label) for lo, hi, kind, label in spans if lo <= begin < hi), owner
            )
        owners.append(owner)
    return owners


def counts_by_label(pieces: Sequence[TokenPiece]) -> dict[str, int]:
    """Tokens per part label ("instruction", "shot d003", …), in prompt order."""
    counts: dict[str, int] = {}
    for piece in pieces:
        counts[piece.label] = counts.get(piece.label, 0) + 1
    return counts


def counts_by_kind(pieces: Sequence[TokenPiece]) -> dict[str, int]:
    """Tokens per kind; equals the prompt's tokens_by_kind() for the tokenizer it was made with."""
    counts: dict[str, int] = {}
    for piece in pieces:
        counts[piece.kind] = counts.get(piece.kind, 0) + 1
    return counts


def answer_texts(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """The text each generated token adds to the decoded answer, special tokens shown as such.

    Decoding prefixes rather than single tokens keeps the spaces that SentencePiece decoders
    drop from a lone token; a character split over byte-level tokens goes to its last token.
    """
    texts, before = [], ""
    for n in range(len(ids)):
        now = tokenizer.decode(list(ids[: n + 1]), skip_special_tokens=False)
        if now.endswith("\ufffd") and n + 1 < len(ids):  # the character ends in a later token
            texts.append("")
            continue
        if now.startswith(before):
            texts.append(now[len(before) :])
        else:  # clean-up of spaces rewrote earlier text: fall back to the token alone
            texts.append(tokenizer.decode([ids[n]], skip_special_tokens=False))
        before = now
    return texts


def token_text(tokenizer: Any, token_id: int) -> str:
    """One token as readable text; its vocabulary entry when alone it is part of a character."""
    text = tokenizer.decode([token_id], skip_special_tokens=False)
    return str(tokenizer.convert_ids_to_tokens(token_id)) if "\ufffd" in text else text
