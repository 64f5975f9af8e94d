"""The Experiments page with a served endpoint, in Streamlit's AppTest on a real SQLite file:
the backend form, settings the endpoint cannot honour, a run whose failed examples are
retried from the page. The endpoint is the scripted loopback server of tests/served_stub.py
(failures on demand); the same paths against a real llama.cpp server are in
tests/test_served_llama.py."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import jobs
from storage import queries
from storage.db import session_scope
from tests.served_stub import StubServer
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
