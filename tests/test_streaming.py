"""Stopping a streamed answer on a tiny real model: generation ends at the next token and the
model is free for the next run, whether Stop was pressed or the reader went away."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from core.datasets.data import Example
from core.generation.local import generate, generate_lock
from core.generation.settings import GenerationSettings
from core.generation.streaming import TokenStream
from core.models.registry import ModelRequest, load_model
from core.prompting.design import PromptDesign
from core.prompting.rendering import render_for_model

LONG = GenerationSettings(max_new_tokens=200, min_new_tokens=200)  # never ends by itself early
DESIGN = PromptDesign(
    instruction="summarize the following conversation .", example_format="{input}"
)


@pytest.fixture(scope="module")
def tiny(tiny_causal_dir):
    return load_model(ModelRequest(str(tiny_causal_dir), device="cpu"))


@pytest.fixture
def prompt(tiny):
    example = Example("e", "#Person1#: book a train ticket for tomorrow ? #Person2#: yes .")
    return render_for_model(tiny, DESIGN, example, max_new_tokens=LONG.max_new_tokens)


@contextmanager
def paused_after(model, calls: int, until: threading.Event) -> Iterator[None]:
    """From the model's `calls`+1-th forward pass on, wait for `until`: the stream cannot run
    ahead to its end before the test has asked it to stop, however fast the machine."""
    count = 0

    def hook(module, args):
        nonlocal count
        count += 1
        if count > calls:
            until.wait(60)  # only a guard against a hang: the test sets it

    handle = model.register_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def lock_is_free() -> bool:
    if not generate_lock.acquire(blocking=False):
        return False
    generate_lock.release()
    return True


def test_stop_ends_generation_at_the_next_token_and_frees_the_model(tiny, prompt):
    stream = TokenStream(tiny, prompt, LONG)
    with paused_after(tiny.model, 6, stream.stop_requested):
        pieces = iter(stream)
        first = next(pieces)
        stream.stop()
        rest = list(pieces)
    assert stream.stopped and stream.result.new_tokens <= 7 < LONG.max_new_tokens
    assert first + "".join(rest) == stream.result.text
    assert lock_is_free()
    assert generate(tiny, [prompt], GenerationSettings(max_new_tokens=4))[0].new_tokens == 4


def test_a_reader_that_goes_away_stops_generation_and_frees_the_model(tiny, prompt):
    stream = TokenStream(tiny, prompt, LONG)
    with paused_after(tiny.model, 6, stream.stop_requested):
        pieces = iter(stream)
        next(pieces)
        pieces.close()  # what a rerun or a page switch does to the page's loop
    assert stream.stopped and stream.result.new_tokens <= 7
    assert lock_is_free()


def test_stop_while_waiting_for_another_runs_batch_ends_without_generating(tiny, prompt):
    shown: list[str] = []
    stream = TokenStream(tiny, prompt, LONG)
    with generate_lock:  # another run's batch holds the model
        reader = threading.Thread(target=lambda: shown.extend(stream))
        reader.start()
        stream.stop()
        reader.join(60)
        assert not reader.is_alive()
    assert shown == [] and stream.result is None and stream.stopped
    assert lock_is_free()


def test_an_answer_that_ends_by_itself_is_not_marked_stopped(tiny, prompt):
    stream = TokenStream(tiny, prompt, GenerationSettings(max_new_tokens=5))
    assert "".join(stream) == stream.result.text
    assert not stream.stopped and stream.result.new_tokens == 5
    assert lock_is_free()
