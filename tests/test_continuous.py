"""Continuous batching (core.generation.continuous): slots refilled from the queue, the cache
grown, trimmed and shifted, rows dropped when the queue is dry — and through all of it, greedy
text identical to one prompt at a time in float32."""

import threading

import pytest

from core.datasets.data import Example
from core.generation import continuous
from core.generation.local import generate
from core.generation.settings import GenerationSettings
from core.models.registry import ModelRequest, load_model
from core.prompting.design import PRESETS, PromptDesign
from core.prompting.rendering import render_for_model

DESIGN = PromptDesign(instruction="summarize .", example_format="{input} summary : {output}")
INPUTS = [
    "hello",
    "#Person1#: book a train ticket for tomorrow ? #Person2#: yes . #Person1#: at nine ?",
    "#Person1#: hi . #Person2#: hello .",
    "the person asks about a book in the library near the station on monday morning",
    "#Person1#: thanks , bye .",
    "two people buy and sell a ticket",
    "#Person1#: what time is the doctor today ? #Person2#: at five , i think .",
]


@pytest.fixture(scope="module")
def tiny(tiny_causal_dir):
    return load_model(ModelRequest(str(tiny_causal_dir), device="cpu"))


def prompts_for(loaded, inputs=INPUTS, max_new_tokens=40):
    return [
        render_for_model(loaded, DESIGN, Example(f"e{i}", t), max_new_tokens=max_new_tokens)
        for i, t in enumerate(inputs)
    ]


def one_at_a_time(loaded, prompts, settings):
    return [generate(loaded, [p], settings, batch_size=1)[0] for p in prompts]


def same(a, b):
    return [(o.text, o.new_tokens, o.finish_reason) for o in a] == [
        (o.text, o.new_tokens, o.finish_reason) for o in b
    ]


def test_more_prompts_than_slots_refill_freed_slots_and_change_no_text(tiny, monkeypatch):
    # Tiny blocks and trims, so that the cache grows, is trimmed and shifted many times.
    monkeypatch.setattr(continuous, "GROW_BY", 1)
    monkeypatch.setattr(continuous, "TRIM_AT", 1)
    monkeypatch.setattr(continuous, "ROUND_STEPS", 3)
    settings = GenerationSettings(max_new_tokens=40)
    prompts = prompts_for(tiny)
    batched = generate(tiny, prompts, settings, batch_size=2)
    assert same(batched, one_at_a_time(tiny, prompts, settings))
    assert {o.batch_size for o in batched} == {2}
    lengths = {o.new_tokens for o in batched}
    assert len(lengths) > 1  # rows really end at different steps (and free their slots)


def test_a_longer_prompt_after_shorter_ones_moves_the_cache_along(tiny):
    # decode() is given the shortest prompt first: every longer one that follows shifts the
    # columns of the rows already decoding.
    settings = GenerationSettings(max_new_tokens=12)
    prompts = prompts_for(tiny)
    encoded = [tiny.tokenizer(p.sent_text)["input_ids"] for p in prompts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    answers = {}
    for finished in continuous.decode(
        tiny, [encoded[i] for i in order], settings, 3, threading.Lock()
    ):
        for f in finished:
            answers[order[f.index]] = f.tokens
    single = one_at_a_time(tiny, prompts, settings)
    texts = [
        tiny.tokenizer.decode(answers[i], skip_special_tokens=True) for i in range(len(prompts))
    ]
    assert texts == [o.text for o in single]


def test_min_new_tokens_and_stop_strings_hold_in_slots(tiny):
    prompts = prompts_for(tiny)
    held = GenerationSettings(max_new_tokens=30, min_new_tokens=20)
    batched = generate(tiny, prompts, held, batch_size=3)
    assert all(o.new_tokens >= 20 for o in batched)
    assert same(batched, one_at_a_time(tiny, prompts, held))
    free = one_at_a_time(tiny, prompts, GenerationSettings(max_new_tokens=12))
    stop = free[1].text.split()[2]
    stopped = GenerationSettings(max_new_tokens=12, stop=(stop,))
    batched = generate(tiny, prompts, stopped, batch_size=3)
    assert batched[1].finish_reason == "stop" and batched[1].stop_string == stop
    assert same(batched, one_at_a_time(tiny, prompts, stopped))


def test_the_lock_is_free_between_rounds(tiny, monkeypatch):
    # Another session's stream or batch can take the model between two rounds of steps.
    monkeypatch.setattr(continuous, "ROUND_STEPS", 2)
    lock = threading.Lock()
    encoded = [tiny.tokenizer(p.sent_text)["input_ids"] for p in prompts_for(tiny)]
    rounds = 0
    for _ in continuous.decode(
        tiny, encoded, GenerationSettings(max_new_tokens=20, min_new_tokens=4), 2, lock
    ):
        rounds += 1
        assert lock.acquire(blocking=False)  # nothing holds it while the caller has the answers
        lock.release()
    assert rounds >= 3


@pytest.mark.parametrize(
    "settings",
    [
        GenerationSettings(max_new_tokens=8, do_sample=True, seed=3),
        GenerationSettings(max_new_tokens=8, num_beams=2),
        GenerationSettings(max_new_tokens=8, repetition_penalty=1.3),
        GenerationSettings(max_new_tokens=8, no_repeat_ngram_size=2),
    ],
    ids=["sampling", "beams", "repetition_penalty", "no_repeat_ngram"],
)
def test_what_reads_earlier_tokens_or_samples_stays_with_generate(tiny, settings, monkeypatch):
    assert not continuous.eligible(tiny, settings)

    def refuse(*args, **kwargs):
        raise AssertionError("continuous batching ran for settings it does not handle")

    monkeypatch.setattr(continuous, "decode", refuse)
    outs = generate(tiny, prompts_for(tiny), settings, batch_size=4)
    assert {o.batch_size for o in outs} == {4, 3}  # generate()'s batches, longest first


@pytest.mark.slow
def test_embedded_model_in_three_slots_matches_one_at_a_time(embedded):
    from core.datasets.data import load_builtin

    data = load_builtin()
    settings = GenerationSettings(max_new_tokens=48)
    designs = [PRESETS["instruction"], PRESETS["instruction"].with_(shots=1), PRESETS["flan"]]
    prompts = [
        render_for_model(embedded, designs[i % 3], ex, data.pool, max_new_tokens=48)
        for i, ex in enumerate(data.eval[:7])
    ]
    batched = generate(embedded, prompts, settings, batch_size=3)
    assert same(batched, one_at_a_time(embedded, prompts, settings))
    assert len({o.new_tokens for o in batched}) > 1
