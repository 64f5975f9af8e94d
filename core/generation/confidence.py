"""Per-token confidence of an answer: the model's probability of each token it chose, from one
teacher-forced forward pass, with a compact form for storage and a summary."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from core.errors import PromptLabError
from core.generation.inspector import encode_prompt, forward_logits
from core.models.loading import LoadedModel
from core.prompting.design import RenderedPrompt
from core.prompting.token_view import answer_texts

DECIMALS = 4  # stored probabilities: enough to colour and rank tokens, a third of the digits


@dataclass(frozen=True)
class TokenConfidence:
    id: int
    text: str  # what this token adds to the decoded answer
    probability: float


@dataclass(frozen=True)
class ConfidenceSummary:
    tokens: int
    mean: float | None  # None for an empty answer
    min: float | None
    lowest: tuple[tuple[int, TokenConfidence], ...]  # (position, token), least confident first


def encode_answer(loaded: LoadedModel, text: str) -> list[int]:
    """An answer's text as token ids. Re-encoding can split differently from how the model
    generated it (byte-level BPE merges); pass the generated ids when they are at hand."""
    return list(loaded.tokenizer(text, add_special_tokens=False)["input_ids"])


def token_confidence(
    loaded: LoadedModel, prompt: RenderedPrompt, answer: str | Sequence[int]
) -> list[TokenConfidence]:
    """Each answer token's probability given the prompt and the answer before it.

    This is the model's raw distribution (softmax of its logits), before repetition penalty,
    temperature, top-k and top-p: how sure the model itself was, the same for every decoding
    setting. It equals the raw stage of inspector.inspect_step at each step. `answer` is
    the generated ids (after the prompt, or after the decoder start) or the answer's text.
    """
    ids = encode_answer(loaded, answer) if isinstance(answer, str) else [int(i) for i in answer]
    if not ids:
        return []
    # One pass: the prompt and all but the last answer token predict every answer token.
    logits = forward_logits(loaded, encode_prompt(loaded, prompt), ids[:-1], keep=len(ids))
    # In float64, via the log: a float32 softmax rounds an unlikely token's probability to 0.
    log_probs = torch.log_softmax(logits.double(), dim=-1)
    chosen = log_probs[torch.arange(len(ids)), torch.tensor(ids)].exp().tolist()
    texts = answer_texts(loaded.tokenizer, ids)
    return [TokenConfidence(i, t, float(p)) for i, t, p in zip(ids, texts, chosen, strict=True)]


def summarize(items: Sequence[TokenConfidence], lowest: int = 5) -> ConfidenceSummary:
    """Mean and minimum probability, and the `lowest` least confident tokens."""
    if not items:
        return ConfidenceSummary(0, None, None, ())
    probabilities = [t.probability for t in items]
    # Stable: of equally unsure tokens, the earlier one is listed first.
    order = sorted(range(len(items)), key=lambda i: probabilities[i])[:lowest]
    return ConfidenceSummary(
        tokens=len(items),
        mean=sum(probabilities) / len(items),
        min=min(probabilities),
        lowest=tuple((i, items[i]) for i in order),
    )


def to_json(items: Sequence[TokenConfidence]) -> dict[str, list[Any]]:
    """A JSON-ready value for storage (a JSON column, or json.dumps for text): ids, token texts
    (so a stored answer can be shown without its model) and probabilities to DECIMALS places."""
    return {
        "ids": [t.id for t in items],
        "text": [t.text for t in items],
        "p": [round(t.probability, DECIMALS) for t in items],
    }


def from_json(value: dict[str, Any] | str) -> list[TokenConfidence]:
    """What to_json stored (the value, or its JSON text) as TokenConfidence again."""
    try:
        data = json.loads(value) if isinstance(value, str) else value
        ids, texts, probs = data["ids"], data["text"], data["p"]
        if not len(ids) == len(texts) == len(probs):
            raise ValueError("lists of different lengths")
        return [
            TokenConfidence(int(i), str(t), float(p))
            for i, t, p in zip(ids, texts, probs, strict=True)
        ]
    except (ValueError, TypeError, KeyError) as exc:
        raise PromptLabError(f"Stored token confidence is not readable: {exc}.") from exc
