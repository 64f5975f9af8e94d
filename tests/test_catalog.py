"""Finding stored experiments by model, dataset, study, status, date, label and origin."""

from datetime import UTC, date, datetime, timedelta

import pytest

from core.reporting import catalog
from core.runs import playground
from storage import queries
from storage.db import session_scope
from tests.test_compare import store_experiment, store_study

pytestmark = pytest.mark.both_databases


def found(db, **filters):
    with session_scope(db) as session:
        return catalog.find(session=session, filters=catalog.Filters(**filters))["id"].tolist()


def from_the_playground(db, experiment_id):
    """Marked as the Playground marks the runs it stores (playground.store_run)."""
    with session_scope(db) as session:
        queries.update_experiment(
            session=session, experiment_id=experiment_id, origin=playground.ORIGIN
        )
    return experiment_id


def test_filters_narrow_the_list_and_playground_runs_are_hidden_by_default(db):
    study = store_study(db, shots=(0, 1))
    lone = store_experiment(db, [0.5] * 3, label="Baseline 50%_x", finish=False)
    typed = from_the_playground(db, store_experiment(db, [0.1] * 3, label=playground.LABEL))
    assert found(db) == [lone, *reversed(study)]
    assert found(db, include_playground=True) == [typed, lone, *reversed(study)]
    assert found(db, study_id=1) == list(reversed(study))
    assert found(db, statuses=("completed",)) == list(reversed(study))
    assert found(db, text="baseline 50%_") == [lone]  # case-insensitive, % and _ literal
    assert found(db, text="50%x") == []
    assert found(db, models=("someone/else",)) == []
    assert found(db, datasets=("dialogues",), include_playground=True) == [
        typed,
        lone,
        *reversed(study),
    ]


def test_an_experiment_labelled_playground_is_listed_and_a_playground_run_is_not(db):
    mine = store_experiment(db, [0.4] * 3, label="playground")
    run = from_the_playground(db, store_experiment(db, [0.2] * 3, label="anything"))
    assert found(db) == [mine]
    assert found(db, include_playground=True) == [run, mine]
    assert found(db, text="playground") == [mine]
    with session_scope(db) as session:
        table = catalog.find(session=session, filters=catalog.Filters(include_playground=True))
    assert table["origin"].tolist() == ["playground", "experiment"]


def test_date_filters_take_whole_days(db):
    old = store_experiment(db, [0.2] * 3, label="old")
    new = store_experiment(db, [0.3] * 3, label="new")
    with session_scope(db) as session:
        queries.update_experiment(
            session=session, experiment_id=old, created_at=datetime(2026, 1, 5, 23, 59, tzinfo=UTC)
        )
    today = datetime.now(UTC).date()
    assert found(db, until=date(2026, 1, 5)) == [old]
    assert found(db, since=date(2026, 1, 6)) == [new]
    assert found(db, since=today - timedelta(days=1), until=today) == [new]


def test_options_list_what_experiments_use(db):
    store_study(db, shots=(0, 1))
    with session_scope(db) as session:
        options = catalog.options(session=session)
    assert options["datasets"] == ["dialogues"] and len(options["models"]) == 1
    assert options["studies"] == [(1, "shots")]
