"""The store: migrations at start, SQLite settings, datasets, stale runs and deletion."""

import os
import socket
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import inspect, text

from core.data import Dataset, Example, load_builtin
from core.errors import PromptLabError
from storage import queries
from storage.db import alembic_config, dispose_all, get_engine, session_scope
from storage.schema import utcnow
from tests.test_compare import store_experiment


def test_first_use_creates_the_schema_through_migrations(db):
    engine = get_engine(db)
    tables = set(inspect(engine).get_table_names())
    assert {"datasets", "examples", "experiments", "results", "studies", "prompt_designs"} <= tables
    with engine.connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).scalar() == "0003"
        assert conn.execute(text("pragma journal_mode")).scalar() == "wal"
        assert conn.execute(text("pragma busy_timeout")).scalar() == 5000
        assert conn.execute(text("pragma foreign_keys")).scalar() == 1


def test_dataset_round_trip_keeps_order_splits_and_references(db):
    builtin = load_builtin()
    with session_scope(db) as session:
        queries.save_dataset(session=session, dataset=builtin)
    with session_scope(db) as session:
        loaded = queries.load_dataset(session=session, name=builtin.name)
        summary = queries.list_datasets(session=session)[0]
    assert loaded.examples == builtin.examples
    assert summary.splits == {"pool": 16, "eval": len(builtin.examples) - 16}


def test_dataset_name_taken_is_refused_unless_replacing(db):
    small = Dataset("mine", (Example("1", "a", "b"),))
    with session_scope(db) as session:
        queries.save_dataset(session=session, dataset=small)
    with pytest.raises(PromptLabError, match="exists already"), session_scope(db) as session:
        queries.save_dataset(session=session, dataset=small)
    bigger = Dataset("mine", (Example("1", "a", "b"), Example("2", "c", "d")))
    with session_scope(db) as session:
        queries.save_dataset(session=session, dataset=bigger, replace=True)
    with session_scope(db) as session:
        assert len(queries.load_dataset(session=session, name="mine").examples) == 2


def test_unknown_dataset_lists_the_known_ones(db):
    with session_scope(db) as session:
        queries.save_dataset(session=session, dataset=Dataset("alpha", (Example("1", "a", "b"),)))
    with pytest.raises(PromptLabError, match="no dataset 'beta'. Datasets: alpha"):
        with session_scope(db) as session:
            queries.load_dataset(session=session, name="beta")


def _experiment(session, **fields):
    defaults = dict(
        dataset_name="d", example_keys=["1"], spec={}, design={}, settings={}, model_id="m"
    )
    return queries.create_experiment(session=session, **{**defaults, **fields})


def test_runs_whose_process_died_are_marked_interrupted(db):
    with session_scope(db) as session:
        dead = _experiment(session, status="running", pid=2**22 + 12345, host=socket.gethostname())
        alive = _experiment(session, status="running", pid=os.getpid(), host=socket.gethostname())
        far_old = _experiment(
            session, status="running", host="elsewhere", heartbeat_at=utcnow() - timedelta(hours=1)
        )
        far_new = _experiment(session, status="running", host="elsewhere", heartbeat_at=utcnow())
    with session_scope(db) as session:
        assert sorted(queries.mark_stale_runs(session=session)) == sorted([dead, far_old])
    with session_scope(db) as session:
        statuses = {e.id: e.status for e in queries.list_experiments(session=session, status=None)}
    assert statuses == {
        dead: "interrupted",
        alive: "running",
        far_old: "interrupted",
        far_new: "running",
    }


def test_deleting_experiments_removes_their_results(db):
    with session_scope(db) as session:
        keep, drop = _experiment(session), _experiment(session)
        for experiment_id in (keep, drop):
            queries.add_results(
                session=session,
                experiment_id=experiment_id,
                results=[
                    dict(example_key="1", position=0, prompt="p", output="o", finish_reason="eos")
                ],
            )
    with session_scope(db) as session:
        assert queries.delete_experiments(session=session, experiment_ids=[drop]) == 1
    with session_scope(db) as session:
        assert queries.finished_keys(session=session, experiment_id=drop) == set()
        assert queries.finished_keys(session=session, experiment_id=keep) == {"1"}
        with pytest.raises(PromptLabError, match="no experiment 999"):
            queries.delete_experiments(session=session, experiment_ids=[keep, 999])


def test_a_result_is_stored_once_per_example(db):
    from sqlalchemy.exc import IntegrityError

    row = dict(example_key="1", position=0, prompt="p", output="o", finish_reason="eos")
    with session_scope(db) as session:
        experiment_id = _experiment(session)
        queries.add_results(session=session, experiment_id=experiment_id, results=[row])
    with pytest.raises(IntegrityError), session_scope(db) as session:
        queries.add_results(session=session, experiment_id=experiment_id, results=[row])


@pytest.mark.parametrize(
    "url, message",
    [
        ("not a url", "is not a database URL"),
        ("sqlite:////no/such/folder/x.sqlite", "folder for the database does not exist"),
    ],
)
def test_bad_database_urls_get_a_message(url, message):
    with pytest.raises(PromptLabError, match=message):
        get_engine(url)


def test_a_design_stored_meanwhile_by_another_process_is_reused(db):
    design = {"shots": 1, "instruction": "x"}
    with session_scope(db) as other:
        theirs = queries.design_id(session=other, design=design)
    with session_scope(db) as session:
        # This session's lookup found nothing before the other process committed.
        original = session.scalar
        calls = []

        def first_lookup_misses(statement, *args, **kwargs):
            calls.append(statement)
            return None if len(calls) == 1 else original(statement, *args, **kwargs)

        session.scalar = first_lookup_misses
        assert queries.design_id(session=session, design=design) == theirs


def test_a_store_from_before_token_confidence_is_upgraded_and_keeps_its_results(db, tmp_path):
    experiment_id = store_experiment(db, [0.5, 0.4, 0.3])
    engine = get_engine(db)
    with engine.begin() as conn:  # back to the first schema, as an older Prompt Lab left it
        command.downgrade(alembic_config(conn), "0001")
    dispose_all()
    engine = get_engine(db)  # opening it migrates it again
    columns = {c["name"] for c in inspect(engine).get_columns("results")}
    assert "token_confidence" in columns
    with session_scope(db) as session:
        results = queries.results_of(session=session, experiment_id=experiment_id)
    assert [r.rougeL for r in results] == [0.5, 0.4, 0.3]
    assert all(r.token_confidence is None for r in results)


def test_a_store_from_before_the_served_backend_is_upgraded_with_endpoint_and_attempts(db):
    experiment_id = store_experiment(db, [0.5, 0.4])
    engine = get_engine(db)
    with engine.begin() as conn:  # as a store written before served endpoints existed
        command.downgrade(alembic_config(conn), "0002")
    dispose_all()
    engine = get_engine(db)
    assert "endpoint" in {c["name"] for c in inspect(engine).get_columns("experiments")}
    with session_scope(db) as session:
        experiment = queries.get_experiment(session=session, experiment_id=experiment_id)
        results = queries.results_of(session=session, experiment_id=experiment_id)
        assert experiment.endpoint is None and experiment.backend == "local"
        assert [r.attempts for r in results] == [1, 1]


def test_forgetting_failed_results_keeps_the_others_and_recounts_progress(db):
    experiment_id = store_experiment(db, [0.5, 0.4, 0.3])
    with session_scope(db) as session:
        queries.add_results(
            session=session,
            experiment_id=experiment_id,
            results=[
                dict(
                    example_key="bad",
                    position=3,
                    prompt="p",
                    output="",
                    reference="r",
                    finish_reason="error",
                    error="HTTP 503",
                    attempts=4,
                )
            ],
        )
    with session_scope(db) as session:
        assert queries.forget_failed(session=session, experiment_id=experiment_id) == 1
    with session_scope(db) as session:
        experiment = queries.get_experiment(session=session, experiment_id=experiment_id)
        results = queries.results_of(session=session, experiment_id=experiment_id)
        assert [r.rougeL for r in results] == [0.5, 0.4, 0.3]
        assert experiment.n_done == 3
