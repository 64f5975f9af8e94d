"""The served backend without a serving engine: settings mapped onto request parameters, what
an endpoint cannot honour refused by name, and the client's retries, concurrency and error
budget against a scripted HTTP server on loopback (devtools/served_stub.py: a real server whose
failures are scripted, because a real engine cannot be made to fail on demand). The same
paths against llama.cpp's real server are in test_served_llama.py."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from core.datasets.data import Example
from core.errors import PromptLabError
from core.generation.settings import GenerationSettings
from core.models.registry import ModelRequest
from core.prompting.design import PRESETS, PromptDesign, RenderedPrompt
from core.prompting.rendering import render_prompt
from core.reporting import export
from core.runs import experiments
from core.runs.experiments import RunSpec
from core.served.client import BudgetExceeded, Client, Failure, RequestFailed, run_concurrently
from core.served.endpoint import Endpoint, check_run, map_settings
from devtools.served_stub import StubServer
from storage import queries
from storage.db import dispose_all, session_scope
from tests.test_experiments import stored

GREEDY = GenerationSettings(max_new_tokens=20, seed=3)
SAMPLING = GenerationSettings(
    max_new_tokens=20, do_sample=True, temperature=0.7, top_k=20, top_p=0.9, seed=5
)


def endpoint(base_url: str = "http://127.0.0.1:9/v1", **changes) -> Endpoint:
    # A generous timeout: the loopback server answers at once, however loaded the machine is.
    # Tests whose behaviour is a timeout set a small one and hold that answer back themselves.
    values = dict(base_url=base_url, model="smol", backoff_s=0.01, timeout_s=60.0)
    values.update(changes)
    return Endpoint(**values)


def prompt(i: int = 0, text: str = "Summarize: hi") -> RenderedPrompt:
    return RenderedPrompt(
        example_id=f"ex{i}",
        text=text,
        sent_text=f"<user>{text}</user>",
        parts=(),
        shot_ids=(),
        add_special_tokens=False,
        prompt_tokens=5,
    )


# --- settings onto parameters -------------------------------------------------------------


def test_greedy_is_sent_as_temperature_zero_with_every_server_default_overridden():
    assert map_settings(GREEDY, endpoint(server="vllm")).params == dict(
        max_tokens=20,
        seed=3,
        temperature=0.0,
        top_p=1.0,
        top_k=-1,
        min_p=0.0,
        repetition_penalty=1.0,
    )
    assert map_settings(GREEDY, endpoint(server="llama.cpp")).params == dict(
        max_tokens=20,
        seed=3,
        temperature=0.0,
        top_p=1.0,
        top_k=0,
        min_p=0.0,
        repeat_penalty=1.0,
        cache_prompt=False,  # a second identical request gets the same answer
    )
    assert map_settings(GREEDY, endpoint(server="openai")).params == dict(
        max_tokens=20, seed=3, temperature=0.0, top_p=1.0
    )


def test_sampling_settings_go_by_each_servers_own_names():
    vllm = map_settings(SAMPLING.with_(repetition_penalty=1.2, min_new_tokens=3), endpoint())
    assert vllm.params == dict(
        max_tokens=20,
        seed=5,
        temperature=0.7,
        top_p=0.9,
        top_k=20,
        min_p=0.0,
        repetition_penalty=1.2,
        min_tokens=3,
    )
    assert not vllm.notes()
    llama = map_settings(SAMPLING.with_(repetition_penalty=1.2), endpoint(server="llama.cpp"))
    assert llama.params["repeat_penalty"] == 1.2 and llama.params["top_k"] == 20
    assert llama.params["cache_prompt"] is False
    with_min = map_settings(SAMPLING.with_(min_new_tokens=3), endpoint(server="llama.cpp"))
    assert (
        with_min.params["min_tokens"] == 3
        and "llama.cpp's own server ignores" in with_min.approximate[0]
    )
    assert not llama.refused
    assert "last 64 tokens" in llama.approximate[0]
    assert map_settings(SAMPLING.with_(top_k=0), endpoint()).params["top_k"] == -1
    assert map_settings(SAMPLING.with_(top_k=0), endpoint(server="llama.cpp")).params["top_k"] == 0


def test_what_an_openai_only_endpoint_cannot_do_is_refused_by_name():
    mapping = map_settings(SAMPLING.with_(repetition_penalty=1.3), endpoint(server="openai"))
    assert "top_k" not in mapping.params and "repetition_penalty" not in mapping.params
    assert [n.split(":")[0] for n in mapping.refused] == ["top_k=20", "repetition_penalty=1.3"]
    assert not map_settings(SAMPLING.with_(top_k=0), endpoint(server="openai")).refused


def test_decoding_that_no_server_runs_is_refused_and_every_reason_is_given_at_once():
    settings = GREEDY.with_(num_beams=4, no_repeat_ngram_size=3, min_new_tokens=2)
    with pytest.raises(PromptLabError) as raised:
        check_run(settings, endpoint(server="openai"), use_chat_template=True)
    message = str(raised.value)
    for name in ("num_beams=4", "no_repeat_ngram_size=3", "min_new_tokens=2"):
        assert name in message
    with pytest.raises(PromptLabError, match="chat template"):
        check_run(GREEDY, endpoint(api="chat"), use_chat_template=False)
    with pytest.raises(PromptLabError, match="only the local backend"):
        check_run(GREEDY, endpoint(), use_chat_template=True, token_confidence=True)


def test_stop_strings_are_sent_and_an_openai_endpoints_limit_is_reported():
    stops = ("\n", "#Person1#", "###", "END", "Q:")
    assert map_settings(GREEDY.with_(stop=stops), endpoint()).params["stop"] == list(stops)
    capped = map_settings(GREEDY.with_(stop=stops), endpoint(server="openai"))
    assert capped.params["stop"] == list(stops[:4])
    assert "first 4 stop strings" in capped.approximate[0]


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(base_url="localhost:8000"), "http:// or https://"),
        (dict(base_url="http://user:secret@host/v1"), "no credentials"),
        (dict(model="  "), "Name the model"),
        (dict(api_key_env="sk-live-1234"), "NAME of an environment variable"),
        (dict(concurrency=0), "concurrency"),
        (dict(error_budget=1.5), "error_budget"),
        (dict(server="tgi"), "server must be one of"),
    ],
)
def test_bad_endpoints_are_refused_with_a_reason(changes, message):
    with pytest.raises(PromptLabError, match=message):
        endpoint(**changes)


def test_a_named_key_variable_that_is_unset_is_explained(monkeypatch):
    monkeypatch.delenv("PROMPT_LAB_KEY_TEST", raising=False)
    with pytest.raises(PromptLabError, match="PROMPT_LAB_KEY_TEST holds no API key"):
        endpoint(api_key_env="PROMPT_LAB_KEY_TEST").api_key()


# --- the client against a scripted server --------------------------------------------------


def client_for(server: StubServer, settings=GREEDY, waits=None, **changes) -> Client:
    ep = endpoint(server.base_url, **changes)
    recorded = [] if waits is None else waits
    return Client(
        ep, settings, map_settings(settings, ep), wait=lambda s: recorded.append(s) or False
    )


def test_the_prompt_is_sent_exactly_as_rendered_with_the_mapped_parameters(monkeypatch):
    monkeypatch.setenv("PROMPT_LAB_KEY_TEST", "k-123")
    with StubServer() as server:
        out = client_for(server, api_key_env="PROMPT_LAB_KEY_TEST").complete(prompt())
    request = server.requests[0]
    assert request["path"] == "/v1/completions"
    assert request["body"]["prompt"] == "<user>Summarize: hi</user>"
    assert request["body"]["temperature"] == 0.0 and request["body"]["model"] == "smol"
    assert request["headers"]["Authorization"] == "Bearer k-123"
    assert (out.text, out.finish_reason, out.attempts) == ("a summary", "eos", 1)
    assert (out.prompt_tokens, out.new_tokens) == (7, 2)  # as the server counted them


def test_the_chat_api_sends_the_designed_text_as_a_user_message_after_any_system_prompt():
    design = PromptDesign(instruction="Summarize:", example_format="{input}", separator=" ")
    brief = render_prompt(design.with_(system_prompt="Be brief."), Example("e", "hi"))
    with StubServer() as server:
        out = client_for(server, api="chat").complete(prompt(text="Summarize: bye"))
        client_for(server, api="chat").complete(brief)
    first, second = (r["body"]["messages"] for r in server.requests)
    assert server.requests[0]["path"] == "/v1/chat/completions"
    assert first == [{"role": "user", "content": "Summarize: bye"}]
    assert second == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Summarize: hi"},
    ]
    assert out.text == "a summary"


def test_the_chat_api_sends_shots_as_turns_as_the_messages_they_are():
    design = PromptDesign(
        instruction="Summarize.",
        example_format="{input}\nSummary: {output}",
        shots=1,
        shot_format="turns",
        instruction_role="system",
    )
    shot = Example("s1", "A: hi. B: bye.", "They greet.")
    rendered = render_prompt(design, Example("e1", "A: yes? B: no."), [shot])
    with StubServer() as server:
        client_for(server, api="chat").complete(rendered)
    assert server.requests[0]["body"]["messages"] == [
        {"role": "system", "content": "Summarize."},
        {"role": "user", "content": "A: hi. B: bye.\nSummary:"},
        {"role": "assistant", "content": "They greet."},
        {"role": "user", "content": "A: yes? B: no.\nSummary:"},
    ]


def test_429_and_503_are_retried_honouring_retry_after_then_the_answer_is_kept():
    waits: list[float] = []
    script = [("status", 503), ("status", 429, "0.25"), ("ok", "third time")]
    with StubServer(script) as server:
        out = client_for(server, waits=waits).complete(prompt())
    assert (out.text, out.attempts) == ("third time", 3)
    assert len(server.requests) == 3
    assert 0.005 <= waits[0] <= 0.015 and waits[1] == 0.25  # backoff, then Retry-After


def test_a_timeout_and_a_dropped_connection_are_retried():
    never = threading.Event()  # the first answer is held until the server closes
    script = [("hold", never, ("ok", "late")), ("drop",), ("ok", "on time")]
    with StubServer(script) as server:
        # 5 s: the held answer must time out, the two after it must not, even on a loaded machine.
        out = client_for(server, timeout_s=5.0).complete(prompt())
        assert not never.is_set()  # the first attempt ended in the client's timeout, unanswered
    assert (out.text, out.attempts) == ("on time", 3)


def test_retries_give_up_after_max_retries_with_the_last_problem():
    with StubServer(default=("status", 502)) as server:
        with pytest.raises(RequestFailed, match="HTTP 502") as raised:
            client_for(server, max_retries=2).complete(prompt())
    assert raised.value.attempts == 3 and len(server.requests) == 3


@pytest.mark.parametrize(
    "behaviour, message",
    [
        (("status", 404), "check the base URL"),
        (("status", 401), "wants an API key"),
        (("status", 400), "HTTP 400"),
        (("garbage",), "not an OpenAI-style completion"),
    ],
)
def test_answers_that_retrying_cannot_mend_fail_at_once(behaviour, message):
    with StubServer(default=behaviour) as server:
        with pytest.raises(RequestFailed, match=message) as raised:
            client_for(server).complete(prompt())
    assert raised.value.attempts == 1


def test_finish_reasons_length_and_a_named_stop_string_are_kept():
    script = [
        ("ok", "cut short", "length"),
        ("ok", "ends here", "stop", {"stop_reason": "###"}),
        ("ok", "server ignored it ### more", "stop"),
    ]
    settings = GREEDY.with_(stop=("###",))
    with StubServer(script) as server:
        client = client_for(server, settings=settings)
        outs = [client.complete(prompt(i)) for i in range(3)]
    assert [(o.finish_reason, o.stop_string) for o in outs] == [
        ("length", None),
        ("stop", "###"),
        ("stop", "###"),
    ]
    assert outs[2].text == "server ignored it "


def test_at_most_c_requests_are_in_flight_and_every_answer_comes_back():
    # No answer goes out until three requests are in (a fourth would wait for two more), so
    # the peak does not depend on how quickly the requests happen to arrive.
    three_in = threading.Barrier(3, timeout=60)

    def answer(body):
        three_in.wait()
        return ("ok", "x")

    with StubServer(default=answer) as server:
        client = client_for(server, concurrency=3)
        got = dict(run_concurrently(client, [prompt(i) for i in range(9)], error_budget=0))
    assert sorted(got) == list(range(9))
    assert server.max_in_flight == 3


def test_a_blown_error_budget_stops_new_requests_but_keeps_what_came_back():
    bad_seen: list[str] = []
    both_bad_in = threading.Event()  # good answers wait for both failures: a fixed order

    def answer(body):
        if "bad" not in body["prompt"]:
            return ("hold", both_bad_in, ("ok", "fine"))
        bad_seen.append(body["prompt"])
        if len(bad_seen) == 2:
            both_bad_in.set()
        return ("status", 400)

    prompts = [prompt(i, "bad" if i in (1, 2) else "good") for i in range(20)]
    seen = []
    with StubServer(default=answer) as server:
        client = client_for(server, concurrency=2)
        with pytest.raises(BudgetExceeded, match="2 request"):
            for index, result in run_concurrently(client, prompts, error_budget=1):
                seen.append((index, result))
    failures = [i for i, r in seen if isinstance(r, Failure)]
    assert failures == [1, 2]
    assert len(seen) < 20 and len(server.requests) < 20  # it stopped sending
    assert all(r.text == "fine" for _, r in seen if not isinstance(r, Failure))


def test_a_request_waiting_to_retry_when_the_run_stops_is_left_to_do_not_failed():
    stop = threading.Event()

    refused = threading.Event()  # the slow answer comes only after the 503 went out

    def answer(body):
        if "retry" in body["prompt"]:
            refused.set()
            return ("status", 503)
        return ("hold", refused, ("ok", "x"))

    prompts = [prompt(0, "retry me"), prompt(1, "slow")]
    with StubServer(default=answer) as server:
        client = client_for(server, concurrency=2)
        # A real wait that only the stop ends (the pause itself is long: a guard, not a clock).
        client.wait = lambda _pause: client.stopped.wait(300)
        seen = []
        for index, result in run_concurrently(
            client, prompts, error_budget=0, should_stop=stop.is_set
        ):
            seen.append((index, result))
            stop.set()
    assert [(i, r.text) for i, r in seen] == [(1, "x")]  # example 0 is neither done nor failed
    assert len(server.requests) == 2


def test_stopping_sends_nothing_new_and_stops_retrying():
    stop = threading.Event()
    with StubServer(default=("ok", "x")) as server:
        client = client_for(server, concurrency=2)
        seen = []
        for index, _ in run_concurrently(
            client, [prompt(i) for i in range(10)], error_budget=0, should_stop=stop.is_set
        ):
            seen.append(index)
            stop.set()
    # The two in flight, and at most the ones sent in their place before the stop was seen;
    # every request sent is collected.
    assert len(server.requests) <= 4 and sorted(seen) == list(range(len(server.requests)))


# --- experiments on a served endpoint --------------------------------------------------------


@pytest.fixture
def served_spec(tiny_causal_dir):
    return RunSpec(
        model=ModelRequest(str(tiny_causal_dir)),  # only its tokenizer and template are used
        design=PRESETS["flan"].with_(shots=1),
        settings=GenerationSettings(max_new_tokens=6),
        limit=6,
    )


def test_a_served_run_records_backend_endpoint_and_failures_and_retries_only_those(db, served_spec):
    broken = {"on": True}
    prompts_sent: list[str] = []

    def answer(body):
        prompts_sent.append(body["prompt"])
        failing = broken["on"] and len(prompts_sent) in (2, 5)
        return ("status", 400) if failing else ("ok", "a person asks about a ticket")

    with StubServer(default=answer) as server:
        spec = replace(
            served_spec, endpoint=endpoint(server.base_url, concurrency=2, error_budget=0.5)
        )
        experiment_id = experiments.run(spec, db_url=db)
        record, results = stored(db, experiment_id)
        assert (record.status, record.backend) == ("completed", "served")
        assert record.endpoint == f"{server.base_url} (smol)" and "httpx" in record.library_versions
        assert record.aggregates["n_failed"] == 2
        failed = [r for r in results if r.finish_reason == "error"]
        assert len(failed) == 2 and all("HTTP 400" in r.error for r in failed)
        assert all(r.prompt for r in failed)  # what was sent is kept with the failure
        kept = {r.example_key: (r.id, r.output) for r in results if r.finish_reason != "error"}
        # The prompts went out exactly as a local run renders them.
        assert sorted(prompts_sent[:6]) == sorted(r.prompt for r in results)

        broken["on"] = False
        assert experiments.retry_failed(experiment_id, db_url=db) == "completed"
    record, results = stored(db, experiment_id)
    assert record.n_done == 6 and record.aggregates["n_failed"] == 0
    assert len(server.requests) == 8  # the 2 failed examples only, sent again
    for r in results:
        if r.example_key in kept:
            assert (r.id, r.output) == kept[r.example_key]  # untouched
    assert all(r.rougeL is not None for r in results)
    with pytest.raises(PromptLabError, match="no failed examples"):
        experiments.retry_failed(experiment_id, db_url=db)


def test_an_answer_is_stored_while_the_others_are_still_out(db, served_spec):
    first_stored = threading.Event()  # the slow answer is held until the quick one is stored
    sent: list[dict] = []

    def answer(body):
        sent.append(body)
        return ("ok", "quick") if len(sent) == 1 else ("hold", first_stored, ("ok", "slow"))

    progress: list[tuple[int, int]] = []  # (examples stored, requests the server has had)

    def on_progress(done: int, _total: int) -> None:
        progress.append((done, len(server.requests)))
        if done == 1:
            first_stored.set()

    with StubServer(default=answer) as server:
        spec = replace(served_spec, limit=2, endpoint=endpoint(server.base_url, concurrency=2))
        experiment_id = experiments.create(spec, db_url=db)
        experiments.execute(experiment_id, db_url=db, on_progress=on_progress)
    # The quick answer was stored (after FLUSH_EVERY_S) while the slow request was out and held;
    # before, it waited for the slow answer (held here until then) and both were stored at once.
    assert progress == [(0, 0), (1, 2), (2, 2)]
    assert stored(db, experiment_id)[0].n_done == 2


def test_a_run_past_its_error_budget_fails_and_keeps_every_answer_it_had(db, served_spec):
    with StubServer(default=("status", 503)) as server:
        spec = replace(
            served_spec, endpoint=endpoint(server.base_url, concurrency=1, max_retries=1)
        )
        with pytest.raises(BudgetExceeded, match="error budget of 0"):
            experiments.run(spec, db_url=db)
    with session_scope(db) as session:
        record = queries.get_experiment(session=session, experiment_id=1)
    assert record.status == "failed" and "error budget" in record.error
    _, results = stored(db, record.id)
    assert [r.attempts for r in results] == [2]  # the one failure, after one retry


def test_the_api_key_reaches_the_server_but_never_the_store_or_an_export(
    served_spec, monkeypatch, tmp_path
):
    secret = "sk-prompt-lab-test-5f0e2c9a"
    monkeypatch.setenv("PROMPT_LAB_KEY_TEST", secret)
    db = f"sqlite:///{tmp_path}/served.sqlite"  # a file, to read its bytes
    with StubServer() as server:
        spec = replace(
            served_spec, endpoint=endpoint(server.base_url, api_key_env="PROMPT_LAB_KEY_TEST")
        )
        experiment_id = experiments.run(spec, db_url=db)
    assert {r["headers"]["Authorization"] for r in server.requests} == {f"Bearer {secret}"}
    with session_scope(db) as session:
        tables = [
            export.summary_table(session=session, experiment_ids=[experiment_id]),
            export.per_example_table(session=session, experiment_ids=[experiment_id]),
            export.wide_table(session=session, experiment_ids=[experiment_id]),
        ]
        spec_json = str(queries.get_experiment(session=session, experiment_id=experiment_id).spec)
    csv_bytes = b"".join(export.to_csv_bytes(table) for table in tables)
    assert b"served" in csv_bytes and server.base_url.encode() in csv_bytes
    assert "PROMPT_LAB_KEY_TEST" in spec_json  # the variable's name is what is kept
    assert secret.encode() not in csv_bytes
    dispose_all()  # close every connection, so the WAL is folded into the file
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("served.sqlite*"))
    assert len(raw) > 10_000 and b"PROMPT_LAB_KEY_TEST" in raw
    assert secret.encode() not in raw


def test_a_spec_with_an_endpoint_survives_its_record_and_old_records_have_none(served_spec):
    spec = replace(served_spec, endpoint=endpoint(api="chat", concurrency=8))
    assert RunSpec.from_dict(spec.to_dict()) == spec
    old = served_spec.to_dict()
    del old["endpoint"]
    assert RunSpec.from_dict(old).endpoint is None


# --- the command line ----------------------------------------------------------------------


def served_args(server: StubServer, model_dir, *extra: str) -> list[str]:
    return [
        "run",
        "--endpoint",
        server.base_url,
        "--served-model",
        "smol",
        "--model",
        str(model_dir),
        "--limit",
        "3",
        "--max-new-tokens",
        "4",
        *extra,
    ]


def test_cli_runs_on_an_endpoint_records_it_and_retries_its_failures(db, tiny_causal_dir, capsys):
    from core import cli

    calls = []

    def answer(body):
        calls.append(body)
        return ("status", 400) if len(calls) == 2 else ("ok", "a person asks about a ticket")

    with StubServer(default=answer, models=["smol"]) as server:
        assert (
            cli.main(["--db", db, *served_args(server, tiny_causal_dir, "--error-budget", "0.5")])
            == 0
        )
        out, err = capsys.readouterr()
        assert out.startswith("experiment 1") and "1 failed" in out
        assert "retry-failed 1" in err
        assert cli.main(["--db", db, "retry-failed", "1"]) == 0
        out, _ = capsys.readouterr()
        assert "3 examples" in out and "failed" not in out
        assert cli.main(["--db", db, "show", "1"]) == 0
        out, _ = capsys.readouterr()
    assert f"served by {server.base_url} (smol)" in out
    assert len(calls) == 4


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--server", "openai", "--temperature", "0.7", "--top-k", "20"), "top_k=20"),
        (("--api", "chat", "--no-chat-template"), "turn the chat template on"),
        (("--concurrency", "0"), "concurrency must be a whole number from 1 to 256"),
        (("--served-model", "other"), "does not serve 'other'; it serves: smol"),
    ],
)
def test_cli_refuses_a_served_run_it_cannot_do_before_storing_anything(
    db, tiny_causal_dir, capsys, extra, message
):
    from core import cli

    with StubServer(models=["smol"]) as server:
        code = cli.main(["--db", db, *served_args(server, tiny_causal_dir, *extra)])
        _, err = capsys.readouterr()
        assert code == 1 and err.startswith("error: ") and "Traceback" not in err
        assert message in err
        assert not server.requests  # nothing was generated
    with session_scope(db) as session:
        assert not queries.list_experiments(session=session)


def test_cli_reports_an_endpoint_that_does_not_answer(db, tiny_causal_dir, capsys):
    from core import cli

    with StubServer() as server:
        pass
    args = served_args(server, tiny_causal_dir)  # its address: nothing listens there now
    assert cli.main(["--db", db, *args]) == 1
    assert "Cannot reach the endpoint" in capsys.readouterr().err


def test_cli_sweeps_on_an_endpoint_as_one_study_of_served_experiments(db, tiny_causal_dir, capsys):
    from core import cli

    with StubServer(models=["smol"]) as server:
        args = served_args(server, tiny_causal_dir, "--shots", "0,1", "--concurrency", "2")
        assert cli.main(["--db", db, *args]) == 0
    capsys.readouterr()
    with session_scope(db) as session:
        records = queries.list_experiments(session=session)
    assert len(records) == 2 and len({r.study_id for r in records}) == 1
    assert {r.backend for r in records} == {"served"}
    assert sorted(r.spec["design"]["shots"] for r in records) == [0, 1]
    assert len(server.requests) == 6
