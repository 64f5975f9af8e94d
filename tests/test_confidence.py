"""Per-token confidence on tiny real models: one teacher-forced pass gives the raw probability of
each answer token, the same as the inspector's raw stage; storage and summary."""

import json

import numpy as np
import pytest
import torch

from core.errors import PromptLabError
from core.generation.confidence import (
    TokenConfidence,
    encode_answer,
    from_json,
    summarize,
    to_json,
    token_confidence,
)
from core.generation.inspector import encode_prompt, forward_logits, inspect_step
from core.generation.settings import GenerationSettings
from core.models.registry import ModelRequest, load_model
from tests.test_inspector import GREEDY, prompt_for, run_generate


@pytest.fixture(scope="module", params=["causal", "seq2seq"])
def tiny(request, tiny_causal_dir, tiny_t5_dir):
    folder = tiny_causal_dir if request.param == "causal" else tiny_t5_dir
    return load_model(ModelRequest(str(folder), device="cpu"))


def test_a_greedy_answer_has_the_top_raw_probability_at_every_step(tiny):
    prompt = prompt_for(tiny)
    answer, _, _ = run_generate(tiny, prompt, GREEDY)
    confidence = token_confidence(tiny, prompt, answer)
    assert [t.id for t in confidence] == answer
    for step, token in enumerate(confidence):
        raw = inspect_step(tiny, prompt, answer, step, GREEDY).stages[0]
        assert token.probability == pytest.approx(raw.chosen_probability, abs=1e-5)
        assert token.probability == pytest.approx(float(raw.probs.max()), abs=1e-5)


def test_a_sampled_answer_gets_the_raw_probabilities_not_the_filtered_ones(tiny):
    settings = GenerationSettings(max_new_tokens=6, do_sample=True, temperature=1.5, top_k=5)
    prompt = prompt_for(tiny)
    answer, _, _ = run_generate(tiny, prompt, settings)
    confidence = token_confidence(tiny, prompt, answer)
    for step, token in enumerate(confidence):
        view = inspect_step(tiny, prompt, answer, step, settings)
        assert token.probability == pytest.approx(view.stages[0].chosen_probability, abs=1e-5)
        assert token.id == view.chosen.id
    decoded = tiny.tokenizer.decode(answer, skip_special_tokens=False)
    assert "".join(t.text for t in confidence) == decoded


def test_an_answer_given_as_text_is_tokenized_without_special_tokens(tiny):
    prompt = prompt_for(tiny)
    text = "one person asks about a train ticket"
    ids = encode_answer(tiny, text)
    assert len(ids) == 7
    by_text = token_confidence(tiny, prompt, text)
    assert by_text == token_confidence(tiny, prompt, ids)
    assert " ".join(t.text.strip() for t in by_text) == text
    assert all(0 < t.probability <= 1 for t in by_text)


def test_a_token_too_unlikely_for_float32_still_gets_its_tiny_probability_not_zero(tiny):
    prompt = prompt_for(tiny)
    ids = encode_answer(tiny, "one person asks about a train ticket")
    logits = forward_logits(tiny, encode_prompt(tiny, prompt), ids[:-1], keep=len(ids)).numpy()
    # Independently: log-softmax by hand in float64 (max-shifted log-sum-exp), then exp.
    rows = logits.astype(np.float64)
    shifted = rows - rows.max(axis=1, keepdims=True)
    log_p = shifted[np.arange(len(ids)), ids] - np.log(np.exp(shifted).sum(axis=1))
    got = [t.probability for t in token_confidence(tiny, prompt, ids)]
    assert got == pytest.approx(np.exp(log_p).tolist(), rel=1e-9, abs=0)
    assert all(0 < p <= 1 for p in got)
    if tiny.kind == "seq2seq":  # its random weights give huge logits: softmax in float32 gave 0
        assert log_p.min() < np.log(np.finfo(np.float32).tiny)


def test_an_empty_answer_has_no_tokens_and_an_empty_summary(tiny):
    assert token_confidence(tiny, prompt_for(tiny), "") == []
    assert summarize([]) == summarize([], lowest=3)
    assert summarize([]).mean is None and summarize([]).tokens == 0


ITEMS = [
    TokenConfidence(7, "one", 0.912345678),
    TokenConfidence(8, " person", 0.25),
    TokenConfidence(9, " asks", 0.5),
    TokenConfidence(1, "</s>", 0.25),
]


def test_summary_lists_the_least_confident_tokens_first():
    summary = summarize(ITEMS, lowest=3)
    assert summary.tokens == 4 and summary.min == 0.25
    assert summary.mean == pytest.approx((0.912345678 + 0.25 + 0.5 + 0.25) / 4)
    assert [position for position, _ in summary.lowest] == [1, 3, 2]  # ties in answer order


def test_stored_form_is_compact_json_and_reads_back():
    stored = to_json(ITEMS)
    assert stored["p"] == [0.9123, 0.25, 0.5, 0.25]
    assert from_json(json.dumps(stored)) == from_json(stored)
    assert from_json(stored)[0] == TokenConfidence(7, "one", 0.9123)
    assert [t.text for t in from_json(stored)] == [t.text for t in ITEMS]


@pytest.mark.parametrize(
    "broken", ["not json", {"ids": [1]}, {"ids": [1, 2], "text": ["a"], "p": [0.1, 0.2]}]
)
def test_unreadable_stored_confidence_is_a_message(broken):
    with pytest.raises(PromptLabError, match="not readable"):
        from_json(broken)


@pytest.mark.slow
def test_smollm2_greedy_answer_is_confident_where_it_chose(embedded):
    from core.datasets.data import Example
    from core.prompting.rendering import render_for_model
    from tests.test_inspector import DESIGN, INPUT

    prompt = render_for_model(embedded, DESIGN, Example("e", INPUT), max_new_tokens=8)
    answer, logits, _ = run_generate(embedded, prompt, GREEDY.with_(max_new_tokens=4))
    confidence = token_confidence(embedded, prompt, answer)
    expected = [torch.softmax(step[0], dim=-1) for step in logits]
    for token, probs in zip(confidence, expected, strict=True):
        assert token.probability == pytest.approx(float(probs.max()), abs=1e-3)
        assert token.probability == pytest.approx(float(probs[token.id]), abs=1e-3)
