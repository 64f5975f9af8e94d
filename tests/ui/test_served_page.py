"""The Experiments page with a served endpoint, in Streamlit's AppTest on a real SQLite file:
the backend form, settings the endpoint cannot honour, a run whose failed examples are
retried from the page. The endpoint is the scripted loopback server of devtools/served_stub.py
(failures on demand); the same paths against a real llama.cpp server are in
tests/test_served_llama.py."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.runs import jobs
from devtools.served_stub import StubServer
from storage import queries
from storage.db import session_scope
from tests.ui.shown import unescaped
from tests.ui.test_experiments_page import button, wait_for_jobs

pytestmark = pytest.mark.slow  # the page renders prompts with SmolLM2's tokenizer
APP = str(Path(__file__).resolve().parents[2] / "app.py")
K = "keep.experiments."


@pytest.fixture
def app(db):
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/experiments.py").run()
    at.number_input(key=K + "limit").set_value(3).run()
    at.radio(key=K + "backend").set_value("Served endpoint").run()
    assert not at.exception
    yield at
    for job in jobs.active():
        job.cancel()
    wait_for_jobs()


def point_at(at, stub: StubServer, **values) -> None:
    at.text_input(key=K + "endpoint.url").set_value(stub.base_url)
    at.text_input(key=K + "endpoint.model").set_value("smol")
    for name, value in values.items():
        at.selectbox(key=K + f"endpoint.{name}").set_value(value)
    at.run()


def test_a_served_run_from_the_page_is_stored_and_its_failures_retried(app, db):
    calls = []

    def answer(body):
        calls.append(body["prompt"])
        return ("status", 400) if len(calls) == 2 else ("ok", "a person asks about a ticket")

    with StubServer(default=answer, models=["smol"]) as server:
        point_at(app, server)
        app.number_input(key=K + "endpoint.budget").set_value(0.5).run()
        button(app, "Test connection").click().run()
        assert any("answers; smol" in unescaped(s.value) for s in app.success)
        button(app, "Start").click().run()
        assert not app.exception and not app.error
        wait_for_jobs()
        app.run()
        with session_scope(db) as session:
            (record,) = queries.list_experiments(session=session)
        assert (record.backend, record.endpoint) == ("served", f"{server.base_url} (smol)")
        assert record.aggregates["n_failed"] == 1
        assert calls[0].startswith("<|im_start|>")  # rendered with SmolLM2's chat template
        app.multiselect(key=K + "selected").set_value([record.id]).run()
        assert any("1 failed · served by" in unescaped(c.value) for c in app.caption)
        button(app, "Retry failed").click().run()
        wait_for_jobs()
        app.run()
    with session_scope(db) as session:
        record = queries.get_experiment(session=session, experiment_id=record.id)
    assert record.aggregates["n_failed"] == 0 and record.n_done == 3
    assert len(calls) == 4


def test_settings_the_endpoint_cannot_honour_are_shown_and_block_the_start(app, db):
    with StubServer(models=["smol"]) as server:
        point_at(app, server, server="openai")
        app.toggle(key=K + "do_sample").set_value(True).run()
        errors = [unescaped(e.value) for e in app.error]
        assert any("top_k=50" in e for e in errors), errors
        assert button(app, "Start").disabled
        app.number_input(key=K + "top_k").set_value(0).run()
        assert not app.error and not button(app, "Start").disabled
    assert not server.requests


def test_an_endpoint_that_does_not_answer_is_reported_by_test_connection(app):
    with StubServer() as server:
        gone = server.base_url
    app.text_input(key=K + "endpoint.url").set_value(gone)
    app.text_input(key=K + "endpoint.model").set_value("smol").run()
    button(app, "Test connection").click().run()
    assert any("Cannot reach the endpoint" in unescaped(e.value) for e in app.error)
    assert not app.exception


# --- the Playground on an endpoint ----------------------------------------------------------

P = "keep.playground."


@pytest.fixture
def playground_app(db):
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.radio(key=P + "backend").set_value("Served endpoint").run()
    assert not at.exception
    return at


def test_the_playground_streams_a_served_answer_scores_and_stores_it(playground_app, db):
    at = playground_app
    with StubServer([("ok", "Amanda baked cookies and will bring Jerry some tomorrow.")]) as server:
        at.text_input(key=P + "endpoint.url").set_value(server.base_url)
        at.text_input(key=P + "endpoint.model").set_value("smol").run()
        assert not at.error
        button(at, "Run").click().run()
        assert not at.exception and not at.error
    (request,) = server.requests
    assert request["body"]["stream"] is True
    assert request["body"]["prompt"].rstrip() == at.code[0].value.rstrip()  # the prompt shown
    captions = " ".join(unescaped(c.value) for c in at.caption)
    assert "stored as experiment 1" in captions and "run with the local model" in captions
    assert "Per-token confidence" not in [t.label for t in at.toggle]  # needs local weights
    with session_scope(db) as session:
        (record,) = queries.list_experiments(session=session)
        (result,) = queries.results_of(session=session, experiment_id=record.id)
    assert (record.backend, record.endpoint) == ("served", f"{server.base_url} (smol)")
    assert result.output == "Amanda baked cookies and will bring Jerry some tomorrow."
    assert result.output in [t.value for t in at.text]
    rouge_l = float(next(m.value for m in at.metric if m.label == "rougeL"))
    assert result.rougeL == pytest.approx(rouge_l, abs=1e-4) and rouge_l > 0


def test_the_playground_refuses_what_the_endpoint_cannot_honour_and_falls_back_to_nothing(
    playground_app,
):
    at = playground_app
    at.text_input(key=P + "endpoint.url").set_value("not a url").run()
    assert any("must start with http://" in unescaped(e.value) for e in at.error)
    assert not [b for b in at.button if b.label == "Run"]  # no local run in its place
    with StubServer() as server:
        at.text_input(key=P + "endpoint.url").set_value(server.base_url)
        at.text_input(key=P + "endpoint.model").set_value("smol").run()
        at.selectbox(key=P + "endpoint.server").set_value("openai").run()
        at.toggle(key=P + "do_sample").set_value(True).run()
        assert any("top_k=50" in unescaped(e.value) for e in at.error)
        assert button(at, "Run").disabled
    assert not server.requests
