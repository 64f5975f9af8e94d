"""The tokenizer view: every token's exact text and part, counted as the renderer counts them,
on a word-level tokenizer, a byte-level BPE one (gaps and overlapping offsets) and SmolLM2's."""

from itertools import pairwise

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from core.datasets.data import Example
from core.prompting.design import PromptDesign
from core.prompting.rendering import render_prompt
from core.prompting.token_view import (
    answer_texts,
    counts_by_kind,
    counts_by_label,
    prompt_tokens,
    token_text,
)
from tests.conftest import CHAT_TEMPLATE, build_tokenizer

POOL = tuple(
    Example(f"p{i}", "#Person1#: hello . #Person2#: hi . " * i, "one person asks")
    for i in range(1, 4)
)
TARGET = Example("t", "#Person1#: book a train ticket for tomorrow ? #Person2#: yes .", "book")
DESIGN = PromptDesign(
    instruction="summarize the following conversation .",
    example_format="dialogue : {input} summary : {output}",
    separator="  \n",
    shots=2,
)
# Accents, an emoji and CJK: characters that byte-level BPE splits over several tokens.
UNICODE_POOL = (Example("u1", "the  café ☕ is  open", "a café"),)
UNICODE_TARGET = Example("u2", "the mat  日本 ☕ on\n\n the cat", None)


def byte_level_tokenizer() -> PreTrainedTokenizerFast:
    """A GPT-2-style tokenizer (byte-level BPE, trimmed offsets) trained here on a few lines."""
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
        show_progress=False,
    )
    corpus = ["the cat sat on the mat", "summarize the following conversation", "a café"] * 5
    core.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>")


def with_bos_eos(tokenizer: PreTrainedTokenizerFast) -> PreTrainedTokenizerFast:
    bos, eos = tokenizer.convert_tokens_to_ids(["<s>", "</s>"])
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    return tokenizer


def assert_view_matches_the_prompt(tokenizer, prompt) -> list:
    pieces = prompt_tokens(tokenizer, prompt)
    expected_ids = tokenizer(prompt.sent_text, add_special_tokens=prompt.add_special_tokens)
    assert [p.id for p in pieces] == expected_ids["input_ids"]
    assert [p.index for p in pieces] == list(range(len(pieces)))
    assert "".join(p.text for p in pieces) == prompt.sent_text
    assert counts_by_kind(pieces) == {k: n for k, n in prompt.tokens_by_kind().items() if n}
    by_label = counts_by_label(pieces)
    for part in prompt.parts:
        if part.kind != "template":
            label = f"shot {part.example_id}" if part.kind == "shot" else part.kind
            assert by_label.get(label, 0) == part.tokens, label
    return pieces


def test_chat_prompt_tokens_rebuild_the_text_and_count_as_the_renderer_does():
    tokenizer = build_tokenizer(CHAT_TEMPLATE)
    prompt = render_prompt(DESIGN, TARGET, POOL, tokenizer=tokenizer)
    pieces = assert_view_matches_the_prompt(tokenizer, prompt)
    assert [p.label for p in pieces][:2] == ["chat template", "chat template"]  # "<s>", "user:"
    assert {p.label for p in pieces} >= {"instruction", "shot p1", "shot p2", "input"}
    # Whitespace the pre-tokenizer drops goes with the token before it.
    assert pieces[2].text == "summarize " and pieces[2].kind == "instruction"


def test_tokens_the_tokenizer_adds_have_no_text_and_count_as_template():
    tokenizer = with_bos_eos(build_tokenizer())
    prompt = render_prompt(DESIGN.with_(use_chat_template=False), TARGET, POOL, tokenizer=tokenizer)
    pieces = assert_view_matches_the_prompt(tokenizer, prompt)
    first, last = pieces[0], pieces[-1]
    assert (first.token, first.text, first.added, first.kind) == ("<s>", "", True, "template")
    assert (last.token, last.text, last.added) == ("</s>", "", True)
    assert not any(p.added for p in pieces[1:-1])


def test_byte_level_gaps_and_overlaps_keep_the_text_exact():
    tokenizer = byte_level_tokenizer()
    design = DESIGN.with_(shots=1, example_format="{input}\n{output}", separator="\n\n ")
    prompt = render_prompt(design, UNICODE_TARGET, UNICODE_POOL, tokenizer=tokenizer)
    pieces = assert_view_matches_the_prompt(tokenizer, prompt)
    offsets = tokenizer(prompt.sent_text, return_offsets_mapping=True)["offset_mapping"]
    # The cases the rule is for really occur here: overlapping spans and skipped characters.
    assert any(b < prev_end for (_, prev_end), (b, _) in pairwise(offsets))
    assert any(b > prev_end for (_, prev_end), (b, _) in pairwise(offsets))
    cafe = [p.text for p in pieces if "é" in p.text]
    assert cafe and all(text.count("é") == 1 for text in cafe)  # never half a character


def test_a_template_that_rewrites_the_text_is_all_template():
    tokenizer = build_tokenizer(
        "{% for m in messages %}<s>{{ m['content'] | upper }}</s>{% endfor %}"
    )
    prompt = render_prompt(DESIGN, TARGET, POOL, tokenizer=tokenizer)
    pieces = assert_view_matches_the_prompt(tokenizer, prompt)
    assert {p.kind for p in pieces} == {"template"}


def test_answer_texts_join_to_the_decoded_answer_with_whole_characters():
    tokenizer = byte_level_tokenizer()
    ids = tokenizer("a café ☕ on the mat", add_special_tokens=False)["input_ids"]
    ids.append(tokenizer.eos_token_id)
    texts = answer_texts(tokenizer, ids)
    assert "".join(texts) == tokenizer.decode(ids) == "a café ☕ on the mat<|endoftext|>"
    assert "\ufffd" not in "".join(texts)
    split = [i for i in ids if "\ufffd" in tokenizer.decode([i])]
    assert split and all("\ufffd" not in token_text(tokenizer, i) for i in split)


def test_answer_texts_keep_word_level_spaces():
    tokenizer = build_tokenizer()
    ids = tokenizer("one person asks about a book")["input_ids"]
    assert "".join(answer_texts(tokenizer, ids)) == "one person asks about a book"


@pytest.mark.slow
def test_smollm2_chat_prompt_view(embedded):
    design = DESIGN.with_(example_format="Dialogue: {input}\nSummary: {output}")
    pool = (*POOL, *UNICODE_POOL)
    prompt = render_prompt(
        design.with_(shots=3), UNICODE_TARGET, pool, tokenizer=embedded.tokenizer
    )
    pieces = assert_view_matches_the_prompt(embedded.tokenizer, prompt)
    assert pieces[0].token == "<|im_start|>" and pieces[0].kind == "template"
