"""Rendering for a model: chat template, tokens per part, and fitting to the context window."""

import pytest

from core.datasets.data import Example
from core.errors import PromptLabError
from core.prompting.design import PromptDesign
from core.prompting.rendering import render_prompt
from tests.conftest import CHAT_TEMPLATE, build_tokenizer

POOL = tuple(
    Example(f"p{i}", "#Person1#: hello . #Person2#: hi . " * i, "one person asks")
    for i in range(1, 5)
)
TARGET = Example("t", "#Person1#: book a train ticket for tomorrow ? #Person2#: yes .", "book")
DESIGN = PromptDesign(
    instruction="summarize the following conversation .",
    example_format="dialogue : {input} summary : {output}",
    separator=" ",
    shots=3,
)


@pytest.fixture(scope="module")
def chat_tok():
    return build_tokenizer(CHAT_TEMPLATE)


@pytest.fixture(scope="module")
def plain_tok():
    return build_tokenizer()


def test_parts_and_template_add_up_to_the_exact_token_count(chat_tok):
    rendered = render_prompt(DESIGN, TARGET, POOL, tokenizer=chat_tok)
    total = len(chat_tok(rendered.sent_text, add_special_tokens=False)["input_ids"])
    assert rendered.prompt_tokens == total
    assert sum(p.tokens for p in rendered.parts) == total
    by_kind = rendered.tokens_by_kind()
    assert by_kind["instruction"] == 5
    assert by_kind["input"] == len(
        chat_tok("dialogue : " + TARGET.input + " summary :")["input_ids"]
    )
    assert by_kind["template"] > 0


def test_chat_template_wraps_the_prompt_and_can_be_switched_off(chat_tok):
    on = render_prompt(DESIGN, TARGET, POOL, tokenizer=chat_tok)
    off = render_prompt(DESIGN.with_(use_chat_template=False), TARGET, POOL, tokenizer=chat_tok)
    assert on.sent_text == f"<s>user: {on.text}</s><s>assistant: "
    assert not on.add_special_tokens
    assert off.sent_text == off.text and off.add_special_tokens


def test_system_prompt_goes_in_as_a_system_turn(chat_tok):
    rendered = render_prompt(
        DESIGN.with_(system_prompt="be brief"), TARGET, POOL, tokenizer=chat_tok
    )
    assert rendered.sent_text.startswith("<s>system: be brief</s><s>user: ")


def test_tokenizer_without_template_sends_the_raw_text(plain_tok):
    rendered = render_prompt(DESIGN, TARGET, POOL, tokenizer=plain_tok)
    assert rendered.sent_text == rendered.text
    assert "template" not in rendered.tokens_by_kind()


def _needs(tok, design=DESIGN):
    return render_prompt(design, TARGET, POOL, tokenizer=tok).prompt_tokens


def test_drop_shots_removes_the_shots_farthest_from_the_input_and_says_so(plain_tok):
    full = _needs(plain_tok)
    last_two = _needs(plain_tok, DESIGN.with_(shots=2, selection="ids", shot_ids=("p2", "p3")))
    window = last_two + 10  # room for the last two shots, not three, with 10 new tokens
    rendered = render_prompt(
        DESIGN, TARGET, POOL, tokenizer=plain_tok, context_window=window, max_new_tokens=10
    )
    assert full > window - 10
    assert rendered.dropped_shot_ids == ("p1",)
    assert rendered.shot_ids == ("p2", "p3")
    assert rendered.prompt_tokens <= rendered.budget == window - 10
    assert any("Dropped 1 shot" in n for n in rendered.notes)


def test_truncate_input_cuts_the_end_of_the_input_and_reports_how_much(plain_tok):
    design = DESIGN.with_(shots=0, fit_policy="truncate_input")
    full = _needs(plain_tok, design)
    rendered = render_prompt(
        design, TARGET, POOL, tokenizer=plain_tok, context_window=full - 3 + 5, max_new_tokens=5
    )
    assert rendered.truncated_input_tokens == 3
    assert rendered.prompt_tokens == full - 3
    assert "#Person2#: yes" not in rendered.text
    assert rendered.text.startswith("summarize the following conversation . dialogue : #Person1#")
    assert any("Cut the last 3" in n for n in rendered.notes)


def test_refuse_policy_raises_with_the_numbers(plain_tok):
    full = _needs(plain_tok)
    with pytest.raises(PromptLabError, match=f"needs {full} tokens but {full - 1} fit"):
        render_prompt(
            DESIGN.with_(fit_policy="refuse"),
            TARGET,
            POOL,
            tokenizer=plain_tok,
            context_window=full - 1 + 8,
            max_new_tokens=8,
        )


def test_drop_shots_that_cannot_fit_even_without_shots_is_refused(plain_tok):
    with pytest.raises(PromptLabError, match="even with every shot dropped"):
        render_prompt(
            DESIGN, TARGET, POOL, tokenizer=plain_tok, context_window=12, max_new_tokens=2
        )


def test_prompt_that_fits_is_left_alone(plain_tok):
    rendered = render_prompt(
        DESIGN, TARGET, POOL, tokenizer=plain_tok, context_window=1000, max_new_tokens=100
    )
    assert rendered.shot_ids == ("p1", "p2", "p3") and not rendered.notes
    assert rendered.budget == 900


def test_encoder_decoder_budget_is_the_whole_window(plain_tok):
    full = _needs(plain_tok)
    rendered = render_prompt(
        DESIGN,
        TARGET,
        POOL,
        tokenizer=plain_tok,
        context_window=full,
        max_new_tokens=500,
        encoder_decoder=True,
    )
    assert rendered.budget == full and not rendered.dropped_shot_ids


def test_max_new_tokens_filling_the_window_is_refused(plain_tok):
    with pytest.raises(PromptLabError, match="leaves no room"):
        render_prompt(
            DESIGN, TARGET, POOL, tokenizer=plain_tok, context_window=64, max_new_tokens=64
        )
