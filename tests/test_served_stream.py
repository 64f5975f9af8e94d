"""The Playground's streamed answers from a served endpoint: server-sent events read piece by
piece into the same Output a whole answer gives, against the scripted loopback server
(devtools/served_stub.py), which can break a stream on demand as a real engine cannot. A real
engine's stream is read in test_served_llama.py."""

from __future__ import annotations

import threading

import pytest

from core.datasets.data import Example
from core.errors import PromptLabError
from core.generation.settings import GenerationSettings
from core.models.registry import ModelRequest, prompt_tokenizer
from core.prompting.design import PRESETS
from core.runs import playground
from core.runs.experiments import RunSpec
from core.served.client import Client
from core.served.endpoint import map_settings
from core.served.stream import ServedStream
from devtools.served_stub import StubServer
from storage import queries
from storage.db import session_scope
from tests.test_served import GREEDY, endpoint, prompt


def stream_from(server: StubServer, settings: GenerationSettings = GREEDY, **changes):
    point = endpoint(server.base_url, **changes)
    client = Client(point, settings, map_settings(settings, point))
    return client, ServedStream(client, prompt(), count_tokens=lambda text: len(text))


def test_the_pieces_shown_make_up_the_answer_stored_with_the_servers_counts():
    with StubServer([("ok", "Amanda will bring cookies.", "length")]) as server:
        client, stream = stream_from(server)
        pieces = list(stream)
    assert len(pieces) == 4 and "".join(pieces) == "Amanda will bring cookies."
    out = stream.result
    assert out.text == "Amanda will bring cookies." and out.finish_reason == "length"
    assert (out.prompt_tokens, out.new_tokens, out.attempts) == (7, 4, 1)
    assert not stream.counted_here
    sent = server.requests[0]["body"]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["prompt"] == "<user>Summarize: hi</user>" and sent["max_tokens"] == 20


def test_a_server_that_sends_no_counts_has_the_answer_counted_here():
    with StubServer([("ok", "two words")], stream_usage=False) as server:
        _, stream = stream_from(server)
        assert "".join(stream) == "two words"
    assert stream.result.new_tokens == len("two words") and stream.counted_here


def test_a_stop_string_the_server_ignores_is_never_shown_and_ends_the_answer():
    settings = GREEDY.with_(stop=("###",))
    with StubServer([("ok", "Bob agrees ### Next dialogue")]) as server:
        _, stream = stream_from(server, settings)
        pieces = list(stream)
    assert "".join(pieces) == "Bob agrees " and not any("#" in p for p in pieces)
    assert (stream.result.finish_reason, stream.result.stop_string) == ("stop", "###")
    assert stream.result.text == "Bob agrees "


def test_text_held_back_as_a_possible_stop_string_is_shown_when_it_is_not_one():
    settings = GREEDY.with_(stop=("###",))
    with StubServer([("ok", "ends with #")]) as server:
        _, stream = stream_from(server, settings)
        assert "".join(stream) == "ends with #"
    assert stream.result.finish_reason == "eos"


def test_the_chat_api_streams_deltas():
    with StubServer([("ok", "Hello there.")]) as server:
        _, stream = stream_from(server, api="chat")
        assert "".join(stream) == "Hello there."
    assert "messages" in server.requests[0]["body"]


def test_a_server_that_ignores_stream_gives_its_answer_whole():
    with StubServer([("ok", "all at once", "length")], streams=False) as server:
        _, stream = stream_from(server)
        assert list(stream) == ["all at once"]
    assert (stream.result.finish_reason, stream.result.new_tokens) == ("length", 3)


def test_failures_before_the_answer_begins_are_retried():
    with StubServer([("status", 503), ("drop",), ("ok", "fine")]) as server:
        _, stream = stream_from(server)
        assert "".join(stream) == "fine"
    assert stream.result.attempts == 3 and len(server.requests) == 3


@pytest.mark.parametrize(
    "behaviour, message",
    [
        (("status", 401), "wants an API key"),
        (("status", 404), "check the base URL"),
        (("cut", "one two three four"), "ended after 8 characters, before the answer did"),
        (("stall", "one two three four"), "stopped sending for 5 s after 8 characters"),
        (("stream_error", "one two three four", "out of KV cache"), "out of KV cache"),
        (("bad_event", "one two"), "not OpenAI-style server-sent events: data: {not json"),
        (("garbage",), "is not an OpenAI-style completion: <html>"),
    ],
)
def test_a_stream_that_fails_says_how(behaviour, message):
    timeout = {}  # the generous default, except where a timeout is what is tested:
    # Silent until the server closes, so only the client's timeout ends it; 5 s leaves the
    # answer's first words room to arrive on a loaded machine.
    if behaviour[0] == "stall":
        behaviour, timeout = (*behaviour, threading.Event()), {"timeout_s": 5.0}
    with StubServer([behaviour]) as server:
        _, stream = stream_from(server, max_retries=0, **timeout)
        with pytest.raises(PromptLabError, match=message):
            list(stream)
    assert stream.result is None


def test_the_playground_refuses_settings_the_endpoint_cannot_honour_before_sending():
    with StubServer() as server:
        point = endpoint(server.base_url, server="openai")
        with pytest.raises(PromptLabError, match="top_k"):
            playground.served_answer(
                point, None, prompt(), GREEDY.with_(do_sample=True, top_k=5), PRESETS["flan"]
            )
    assert not server.requests


def test_a_served_playground_run_is_stored_as_a_served_experiment(db, tiny_causal_dir):
    request = ModelRequest(str(tiny_causal_dir))
    prompter = prompt_tokenizer(request)
    example = playground.typed_example("Anna: hi\nBen: hello", "They greet.")
    with StubServer([("ok", "They greet.")], stream_usage=False) as server:
        point = endpoint(server.base_url)
        stream = playground.served_answer(point, prompter, prompt(), GREEDY, PRESETS["flan"])
        list(stream)
    assert stream.client.http.is_closed and stream.counted_here
    assert stream.result.new_tokens == len(prompter.tokenizer("They greet.")["input_ids"])
    spec = RunSpec(
        dataset=playground.TYPED_DATASET,
        pool_dataset="dialogues",
        split=None,
        design=PRESETS["flan"],
        settings=GREEDY,
        model=request,
        label=playground.LABEL,
        endpoint=point,
    )
    stored = playground.store_run(spec, example, prompt(), stream.result, prompter, db_url=db)
    with session_scope(db) as session:
        record = queries.get_experiment(session=session, experiment_id=stored)
        (result,) = queries.results_of(session=session, experiment_id=stored)
    assert (record.status, record.backend, record.device) == ("completed", "served", "server")
    assert "httpx" in record.library_versions
    assert record.endpoint == f"{server.base_url} (smol)"
    assert result.output == "They greet." and result.rouge1 == pytest.approx(1.0)
    assert isinstance(example, Example) and result.example_key == example.id
