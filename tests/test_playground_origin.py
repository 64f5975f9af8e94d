"""Playground runs are marked by experiments.origin, not by their label, and typed inputs live
in a dataset of their own: migration 0004 both ways, on SQLite and PostgreSQL."""

import json

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from core.datasets.data import Dataset, Example
from core.errors import PromptLabError
from core.runs import experiments
from core.runs.experiments import RunSpec
from storage import queries
from storage.db import (
    alembic_config,
    dispose_all,
    get_engine,
    parse_database_url,
    session_scope,
)
from storage.schema import TYPED_INPUTS

pytestmark = pytest.mark.both_databases
TYPED = Example("typed-0123456789ab", "hello what was going on ?", "a person asks", "eval")


def origins(db: str) -> dict[int, str]:
    with session_scope(db) as session:
        return {r.id: r.origin for r in queries.list_experiments(session=session)}


def back_to_0003(db: str) -> None:
    """As a store written before 0004: downgraded, then opened (and so upgraded) again."""
    with get_engine(db).begin() as conn:
        command.downgrade(alembic_config(conn), "0003")
    dispose_all()


def test_upgrading_marks_playground_runs_by_their_shape_and_moves_typed_inputs(db):
    with session_scope(db) as session:
        queries.add_example(
            session=session,
            dataset_name=TYPED_INPUTS,
            example=TYPED,
            source="inputs typed in the Playground",
        )
    # What the Playground stored: one named example, no limit, label "playground".
    typed_run = experiments.create(
        RunSpec(dataset=TYPED_INPUTS, pool_dataset="dialogues", split=None, label="playground"),
        db_url=db,
        example_keys=[TYPED.id],
        origin="playground",
    )
    dataset_run = experiments.create(
        RunSpec(label="playground"), db_url=db, example_keys=["d020"], origin="playground"
    )
    # A user's own experiments labelled "playground", of one example and of three.
    one = experiments.create(RunSpec(limit=1, label="playground"), db_url=db)
    three = experiments.create(RunSpec(limit=3, label="playground"), db_url=db)

    back_to_0003(db)
    old = create_engine(parse_database_url(db))  # the old layout, opened without migrating
    with old.connect() as conn:
        assert "origin" not in {c["name"] for c in inspect(conn).get_columns("experiments")}
        names = {row[0] for row in conn.execute(text("select name from datasets"))}
        used = dict(conn.execute(text("select id, dataset_name from experiments")).all())
        specs = dict(conn.execute(text("select id, spec from experiments")).all())
    old.dispose()
    assert "playground" in names and TYPED_INPUTS not in names
    spec = specs[typed_run]  # JSON text from SQLite, a dict from PostgreSQL
    spec = json.loads(spec) if isinstance(spec, str) else spec
    assert used[typed_run] == spec["dataset"] == "playground"

    assert origins(db) == {  # opening it migrated it again
        typed_run: "playground",
        dataset_run: "playground",
        one: "experiment",
        three: "experiment",
    }
    with session_scope(db) as session:
        assert set(queries.list_dataset_names(session=session)) == {TYPED_INPUTS, "dialogues"}
        typed = queries.load_dataset(session=session, name=TYPED_INPUTS)
        record = queries.get_experiment(session=session, experiment_id=typed_run)
        assert record.dataset_name == TYPED_INPUTS
    assert typed.examples == (TYPED,)
    assert experiments.stored_spec(typed_run, db_url=db).dataset == TYPED_INPUTS


def test_a_users_dataset_named_playground_stays_theirs_through_the_migration(db):
    talks = (Example("p1", "#Person1#: hi", "a greeting"), Example("p2", "bye", "a farewell"))
    mine = Dataset("playground", talks, "talks.csv")
    with session_scope(db) as session:
        queries.save_dataset(session=session, dataset=mine)
    experiment_id = experiments.create(
        RunSpec(dataset="playground", split=None, label="playground"), db_url=db
    )
    back_to_0003(db)
    get_engine(db)
    with session_scope(db) as session:
        assert queries.list_dataset_names(session=session) == ["playground"]
        assert queries.load_dataset(session=session, name="playground").source == "talks.csv"
        record = queries.get_experiment(session=session, experiment_id=experiment_id)
        assert record.dataset_name == "playground"
    assert origins(db) == {experiment_id: "experiment"}


def test_no_import_can_take_the_typed_inputs_name(db):
    with session_scope(db) as session:
        with pytest.raises(PromptLabError, match="kept for inputs typed in the Playground"):
            queries.save_dataset(
                session=session, dataset=Dataset(TYPED_INPUTS, (Example("x", "hi"),))
            )
        queries.save_dataset(session=session, dataset=Dataset("playground", (Example("x", "hi"),)))
        assert queries.list_dataset_names(session=session) == ["playground"]
