"""The Experiments page's scoring, in Streamlit's AppTest on the real embedded model and a real
SQLite file: metrics and checks chosen for a run, and stored experiments scored again without
generating."""

from pathlib import Path

import pytest
import sacrebleu
from streamlit.testing.v1 import AppTest

from core.runs import experiments
from storage import queries
from storage.db import session_scope
from tests.test_compare import store_experiment
from tests.ui.shown import unescaped
from tests.ui.test_experiments_page import K, button, stored, wait_for_jobs

pytestmark = pytest.mark.slow
APP = str(Path(__file__).resolve().parents[2] / "app.py")
R = "keep.rescore."


@pytest.fixture
def app(db):
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("pages/experiments.py").run()
    assert not at.exception
    yield at
    wait_for_jobs()


def test_a_run_scores_with_the_metrics_and_checks_chosen(app, db):
    app.number_input(key=K + "max_new_tokens").set_value(8).run()
    app.number_input(key=K + "limit").set_value(2).run()
    app.multiselect(key=K + "metrics").set_value(["rouge", "chrf"]).run()
    app.text_area(key=K + "checks").set_value("brief=max_words:5\nplain=not contains:#").run()
    button(app, "Start").click().run()
    assert not app.exception and not app.error
    wait_for_jobs()
    (record,) = stored(db)
    assert record.spec["metrics"] == ["rouge", "chrf"]
    assert [c["name"] for c in record.spec["checks"]] == ["brief", "plain"]
    with session_scope(db) as session:
        results = queries.results_of(session=session, experiment_id=record.id)
        chrf = queries.scores_by_key(session=session, experiment_id=record.id, metric="chrf")
        brief = queries.scores_by_key(
            session=session, experiment_id=record.id, metric="check:brief"
        )
    assert list(chrf.values()) == [
        sacrebleu.sentence_chrf(r.output, [r.reference]).score for r in results
    ]
    assert list(brief.values()) == [float(len(r.output.split()) <= 5) for r in results]
    assert {"rougeL", "chrf", "check:brief", "check:plain"} <= set(record.aggregates)


def test_a_bad_check_is_refused_with_its_line_and_starts_nothing(app, db):
    app.text_area(key=K + "checks").set_value("brief=max_words:5\nlong=max_words:lots").run()
    assert any("Checks, line 2" in unescaped(e.value) for e in app.error)
    assert not any(b.label == "Start" for b in app.button)
    assert stored(db) == []


def test_scoring_stored_experiments_again_adds_scores_without_generating(app, db):
    first = store_experiment(db, [0.4, 0.5], outputs=["a short one", "#Person1#: hi"], limit=2)
    app.run()
    app.multiselect(key="keep.experiments.selected").set_value([first]).run()
    app.multiselect(key=R + "metrics").set_value(["bleu", "length"]).run()
    app.text_area(key=R + "checks").set_value("turn=starts_with:#Person").run()
    button(app, "Score").click().run()
    assert not app.exception
    done = [unescaped(s.value) for s in app.success]
    assert (
        "Scored 1 experiment(s) again on bleu, check:turn, length_ratio, words, 2 outputs in all."
        in done
    )
    with session_scope(db) as session:
        record = queries.get_experiment(session=session, experiment_id=first)
        turn = queries.scores_by_key(session=session, experiment_id=first, metric="check:turn")
        results = queries.results_of(session=session, experiment_id=first)
    assert list(turn.values()) == [0.0, 1.0]
    assert {"bleu", "words", "length_ratio", "check:turn"} <= set(record.aggregates)
    assert [r.output for r in results] == ["a short one", "#Person1#: hi"]
    assert experiments.stored_spec(first, db_url=db).metrics == ("rouge", "bleu", "length")
