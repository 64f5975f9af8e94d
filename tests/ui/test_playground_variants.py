"""The Playground's variants side by side, in Streamlit's AppTest on the real embedded model and a
real SQLite file: columns added (a copy of the last), renamed, moved and removed; Run all storing
one small study; a variant the served endpoint cannot honour shown as refused without blocking
the others; Stop; and the variants tried on a few examples with the verdict against column A."""

import threading
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.models import registry as models
from core.policy import signed_in_actor
from core.runs import jobs
from devtools.served_stub import StubServer
from storage import queries
from storage.db import session_scope
from storage.schema import StudyRecord
from tests.ui.shown import unescaped

pytestmark = pytest.mark.slow
APP = str(Path(__file__).resolve().parents[2] / "app.py")
A, B = "keep.playground.", "keep.playground.v2."


def button(at, label):
    return next(b for b in at.button if b.label == label)


@pytest.fixture
def app(db):
    at = AppTest.from_file(APP, default_timeout=240)
    at.run()
    assert not at.exception
    at.number_input(key=A + "max_new_tokens").set_value(8).run()
    yield at
    models.unload()


def with_two(at):
    at.number_input(key=A + "shots").set_value(1).run()
    button(at, "Add variant").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at


def test_a_variant_is_a_copy_of_the_design_and_settings_and_can_be_renamed_moved_removed(app):
    with_two(app)
    names = [t.value for t in app.text_input if t.label == "Variant"]
    assert names == ["A", "B"]
    assert app.number_input(key=B + "shots").value == 1  # copied from A
    assert app.number_input(key=B + "max_new_tokens").value == 8
    app.text_input(key=B + "variant_name").set_value("three as turns").run()
    app.number_input(key=B + "shots").set_value(3).run()
    app.selectbox(key=B + "shot_format").set_value("turns").run()
    assert not app.exception and not app.error
    exact = [e.label for e in app.expander if e.label.startswith("Exact prompt sent")]
    assert len(exact) == 2  # each column's own prompt, collapsed
    next(b for b in app.button if b.key == "playground.v2.left").click().run()
    assert [t.value for t in app.text_input if t.label == "Variant"] == ["three as turns", "A"]
    next(b for b in app.button if b.key == "playground.remove").click().run()  # A goes
    assert not app.exception
    # Back to one prompt: the Playground's own form now holds the remaining variant.
    assert not [t for t in app.text_input if t.label == "Variant"]
    assert app.number_input(key=A + "shots").value == 3
    assert app.selectbox(key=A + "shot_format").value == "turns"
    assert app.number_input(key=A + "max_new_tokens").value == 8


def test_run_all_streams_each_answer_scores_them_and_stores_one_study(app, db):
    with_two(app)
    app.number_input(key=B + "shots").set_value(0).run()
    button(app, "Run all").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    with session_scope(db) as session:
        (study,) = session.query(StudyRecord).all()
        records = queries.list_experiments(session=session, study_id=study.id)
        results = [queries.results_of(session=session, experiment_id=r.id) for r in records]
    assert sorted(r.label for r in records) == ["A", "B"]
    assert {r.origin for r in records} == {"playground"}
    assert {r.design["shots"] for r in records} == {0, 1}
    captions = " ".join(unescaped(c.value) for c in app.caption)
    assert f"Stored as study {study.id}" in captions
    assert captions.count("finished by") == 2
    scored = sorted(r[0].rougeL for r in results)
    assert sorted(float(m.value) for m in app.metric if m.label == "rougeL") == pytest.approx(
        scored, abs=1e-4
    )


def on_endpoint(at, base_url: str, prefix: str = A, server: str | None = None) -> None:
    at.radio(key=prefix + "backend").set_value("Served endpoint").run()
    at.text_input(key=prefix + "endpoint.url").set_value(base_url)
    at.text_input(key=prefix + "endpoint.model").set_value("smol").run()
    if server:
        at.selectbox(key=prefix + "endpoint.server").set_value(server).run()


def test_a_variant_the_endpoint_cannot_honour_is_refused_and_the_other_still_runs(app, db):
    with StubServer([("ok", "Amanda will bring cookies.")]) as server:
        on_endpoint(app, server.base_url, server="openai")  # A's, copied into B
        with_two(app)
        app.toggle(key=B + "do_sample").set_value(True).run()  # top_k=50: openai has none
        assert any("top_k=50" in unescaped(e.value) for e in app.error)
        assert not button(app, "Run all").disabled
        button(app, "Run all").click().run()
        assert not app.exception
    assert len(server.requests) == 1  # A's answer only
    captions = " ".join(unescaped(c.value) for c in app.caption)
    assert "B did not run" in captions
    with session_scope(db) as session:
        (record,) = queries.list_experiments(session=session)
    assert (record.label, record.backend) == ("A", "served")


def test_variants_on_endpoints_stream_at_once_beside_one_on_the_local_model(app, db):
    # The first server holds both its answers until both requests are in: one after the other,
    # they never would be (the guard then lets them go, and max_in_flight says it was 1).
    release = threading.Event()
    answers = [
        ("hold", release, ("ok", "Amanda will bring cookies.")),
        ("hold", release, ("ok", "Jerry is hungry.")),
    ]
    with StubServer(answers) as first, StubServer([("ok", "They meet at noon.")]) as second:

        def release_when_both_are_in() -> None:
            guard = time.monotonic() + 120
            while first.in_flight < 2 and time.monotonic() < guard:
                time.sleep(0.01)
            release.set()

        on_endpoint(app, first.base_url)
        with_two(app)  # B: a copy, on the same endpoint
        button(app, "Add variant").click().run()  # C: on the other endpoint
        on_endpoint(app, second.base_url, prefix="keep.playground.v3.")
        button(app, "Add variant").click().run()  # D: on the local model
        app.radio(key="keep.playground.v4.backend").set_value("Local model").run()
        assert not app.exception and not app.error, [e.value for e in app.error]
        threading.Thread(target=release_when_both_are_in, daemon=True).start()
        button(app, "Run all").click().run()
        assert not app.exception and not app.error, [e.value for e in app.error]
    assert len(first.requests) == 2 and len(second.requests) == 1
    assert first.max_in_flight == 2  # A and B were answered at the same time
    with session_scope(db) as session:
        (study,) = session.query(StudyRecord).all()
        records = queries.list_experiments(session=session, study_id=study.id)
        outputs = {
            r.label: queries.results_of(session=session, experiment_id=r.id)[0].output
            for r in records
        }
    assert {r.label: r.backend for r in records} == {
        "A": "served",
        "B": "served",
        "C": "served",
        "D": "local",
    }
    assert outputs["C"] == "They meet at noon."
    assert {outputs["A"], outputs["B"]} == {"Amanda will bring cookies.", "Jerry is hungry."}
    assert outputs["D"].strip()


def test_stop_stores_nothing_and_says_so(app, db):
    with_two(app)
    app.session_state["playground.columns.stopped"] = True  # what Stop's callback records
    app.run()
    assert any("Stopped: the answers were cut short" in unescaped(i.value) for i in app.info)
    with session_scope(db) as session:
        assert queries.list_experiments(session=session) == []


def test_variants_tried_on_examples_give_means_and_the_verdict_against_a(app, db):
    with_two(app)
    app.number_input(key=B + "shots").set_value(0).run()
    app.number_input(key=A + "trial_n").set_value(3).run()
    button(app, "Try on 3 examples").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    for job in jobs.active():
        job.wait()
    app.run()
    assert not app.exception
    labels = [m.label for m in app.metric]
    assert "A: mean ROUGE-L" in labels and "B: mean ROUGE-L" in labels
    verdicts = [unescaped(m.value) for m in [*app.success, *app.info]]
    assert any("#" in v and "ROUGE-L" in v and "B" in v for v in verdicts), verdicts
    with session_scope(db) as session:
        (study,) = session.query(StudyRecord).all()
        records = queries.list_experiments(session=session, study_id=study.id)
    assert {r.origin for r in records} == {"playground"}
    assert all(len(r.example_keys) == 3 and r.status == "completed" for r in records)
    assert records[0].example_keys == records[1].example_keys
    # As an Experiments sweep: the form filled in with A and the values the variants vary.
    button(app, "As an Experiments sweep").click().run()
    assert not app.exception
    assert app.session_state["keep.experiments.vary"] == ["shots"]
    assert app.session_state["keep.experiments.values.shots"] == "1, 0"


def test_a_reload_keeps_the_variants_being_composed_for_the_same_user_only(app, monkeypatch):
    with_two(app)
    app.text_input(key=B + "variant_name").set_value("three as turns").run()
    app.number_input(key=B + "shots").set_value(3).run()
    draft = app.query_params["draft"]
    assert draft and len(draft) >= 16  # random: not guessable from another session's
    reloaded = AppTest.from_file(APP, default_timeout=240)  # a new session, as a reload makes
    reloaded.query_params["draft"] = draft
    reloaded.run()
    assert not reloaded.exception
    assert [t.value for t in reloaded.text_input if t.label == "Variant"] == ["A", "three as turns"]
    assert reloaded.number_input(key=B + "shots").value == 3
    assert reloaded.number_input(key=A + "shots").value == 1
    # Someone else opening the same address gets a fresh Playground, not this draft.
    monkeypatch.setattr("ui.identity.actor", lambda: signed_in_actor("eve@example.org"))
    other = AppTest.from_file(APP, default_timeout=240)
    other.query_params["draft"] = draft
    other.run()
    assert not other.exception
    assert not [t for t in other.text_input if t.label == "Variant"]
    assert other.number_input(key=A + "shots").value == 0
