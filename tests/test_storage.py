"""The store: migrations at start (and processes starting at once), SQLite settings, PostgreSQL
URLs and their errors, datasets, stale runs and deletion."""

import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from core.datasets.data import Dataset, Example, load_builtin
from core.errors import PromptLabError
from storage import queries
from storage.db import (
    MIGRATION_LOCK_KEY,
    alembic_config,
    dispose_all,
    get_engine,
    parse_database_url,
    session_scope,
)
from storage.schema import Base, utcnow
from tests.test_compare import store_experiment

pytestmark = pytest.mark.both_databases


ROOT = Path(__file__).resolve().parent.parent
# Each process imports first, says it is ready, and migrates once all of them are: at once.
MIGRATE_WHEN_ALL_READY = """
import os, sys, time
from pathlib import Path
from storage.db import get_engine
url, ready, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
(ready / str(os.getpid())).touch()
deadline = time.monotonic() + 60
while len(list(ready.iterdir())) < n and time.monotonic() < deadline:
    time.sleep(0.005)
get_engine(url)
"""

WAITING_FOR_AN_ADVISORY_LOCK = text(
    "select count(*) from pg_locks where locktype = 'advisory' and not granted"
)


def test_first_use_creates_the_schema_through_migrations(db):
    engine = get_engine(db)
    tables = set(inspect(engine).get_table_names())
    assert {"datasets", "examples", "experiments", "results", "studies", "prompt_designs"} <= tables
    with engine.connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).scalar() == "0008"


def test_the_migrated_schema_is_the_one_the_models_describe(db):
    engine = get_engine(db)
    options = {"compare_type": True, "compare_server_default": True}
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts=options)
        differences = compare_metadata(context, Base.metadata)
    if engine.dialect.name == "sqlite":
        differences = [d for d in differences if not _inline_reference(d)]
    assert differences == []


def _inline_reference(difference: tuple) -> bool:
    """experiments.prompt_version_id's foreign key, added by ALTER TABLE ADD COLUMN (migration
    0006) and so written inline, whose name and ON DELETE SQLAlchemy cannot read back on SQLite
    (it parses table-level FOREIGN KEY clauses only); test_prompt_library_migration checks it
    through PRAGMA foreign_key_list instead."""
    kind, constraint = difference[0], difference[-1]
    columns = [c.name for c in getattr(constraint, "columns", ())]
    return kind in ("add_fk", "remove_fk") and columns == ["prompt_version_id"]


def test_each_database_param_opens_that_kind_of_database(db, request):
    engine = get_engine(db)
    assert engine.dialect.name == request.node.callspec.params["db"]
    if engine.dialect.name == "postgresql":
        assert engine.dialect.driver == "psycopg"
        with engine.connect() as conn:
            assert conn.execute(text("select version()")).scalar().startswith("PostgreSQL")


def test_sqlite_files_get_wal_a_busy_timeout_and_foreign_keys(tmp_path):
    engine = get_engine(f"sqlite:///{tmp_path}/store.sqlite")
    with engine.connect() as conn:
        assert conn.execute(text("pragma journal_mode")).scalar() == "wal"
        assert conn.execute(text("pragma busy_timeout")).scalar() == 5000
        assert conn.execute(text("pragma foreign_keys")).scalar() == 1


def test_processes_starting_at_once_on_a_new_store_take_turns_migrating(db, tmp_path):
    ready, n = tmp_path / "ready", 4
    ready.mkdir()
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE_WHEN_ALL_READY, db, str(ready), str(n)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    errors = [process.communicate(timeout=120)[1] for process in processes]
    assert [process.returncode for process in processes] == [0] * n, "\n".join(errors)
    with get_engine(db).connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).all() == [("0008",)]


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


def test_times_come_back_as_the_moment_stored_in_utc(db):
    moment = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)  # the next day in many zones
    with session_scope(db) as session:
        experiment_id = _experiment(session, created_at=moment)
    with session_scope(db) as session:
        (stored,) = queries.list_experiments(session=session, ids=[experiment_id])
    # SQLite gives them back without a zone, PostgreSQL in UTC: the same wall-clock time.
    assert stored.created_at.utcoffset() in (None, timedelta(0))
    assert stored.created_at.replace(tzinfo=None) == datetime(2026, 3, 1, 23, 30)


def test_text_longer_than_its_column_is_refused_alike_on_every_database(db):
    with pytest.raises(PromptLabError, match="label 'xxx.*' is 301 characters long; at most 300"):
        with session_scope(db) as session:
            _experiment(session, label="x" * 301)
    long_key = Dataset("mine", (Example("k" * 201, "a", "b"),))
    with pytest.raises(PromptLabError, match="example id 'kkk.*' is 201 characters long"):
        with session_scope(db) as session:
            queries.save_dataset(session=session, dataset=long_key)
    with session_scope(db) as session:  # what fits is kept whole
        experiment_id = _experiment(session, label="x" * 300)
    with session_scope(db) as session:
        assert (
            queries.get_experiment(session=session, experiment_id=experiment_id).label == "x" * 300
        )


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
        ("postgresql://ann:pw-secret@host:port/lab", "'postgresql://ann:***@host:port/lab' is not"),
    ],
)
def test_bad_database_urls_get_a_message(url, message):
    with pytest.raises(PromptLabError) as caught:
        get_engine(url)
    assert message in str(caught.value) and "pw-secret" not in str(caught.value)


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


# PostgreSQL ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"], ids=lambda s: f"{s}://")
def test_a_postgresql_url_without_a_driver_is_opened_with_psycopg(postgres_server, scheme):
    assert parse_database_url(f"{scheme}://u@h/d").drivername == "postgresql+psycopg"
    with postgres_server.database() as url:
        plain = url.replace("postgresql+psycopg://", f"{scheme}://")
        assert get_engine(plain).dialect.driver == "psycopg"


def test_migrating_waits_for_the_postgresql_migration_lock(postgres_server):
    with postgres_server.database() as url:
        holder = create_engine(url)
        with holder.connect() as conn:  # as if another process were migrating
            conn.execute(text("select pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            opening = threading.Thread(target=get_engine, args=(url,))
            opening.start()
            # Until the server shows it queued for the lock (the deadline only guards a hang).
            deadline = time.monotonic() + 120
            while not conn.execute(WAITING_FOR_AN_ADVISORY_LOCK).scalar():
                assert opening.is_alive(), "migrated without waiting for the lock"
                assert time.monotonic() < deadline, "never asked for the migration lock"
                time.sleep(0.01)
            assert opening.is_alive()
            assert "alembic_version" not in inspect(conn).get_table_names()
            conn.execute(text("select pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
        holder.dispose()
        opening.join(timeout=300)
        assert not opening.is_alive()
        with get_engine(url).connect() as conn:
            assert conn.execute(text("select version_num from alembic_version")).scalar() == "0008"


def test_a_closed_postgresql_port_gets_a_message_naming_the_server_but_not_the_password():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(PromptLabError) as caught:
        get_engine(f"postgresql://ann:pw-secret@127.0.0.1:{port}/lab")
    message = str(caught.value)
    assert f"'postgresql://ann:***@127.0.0.1:{port}/lab'" in message
    assert f"(database 'lab' on 127.0.0.1, port {port})" in message
    assert "Connection refused" in message and "Is the server running" in message
    assert "pw-secret" not in message


def test_a_missing_postgresql_database_gets_a_message_saying_to_create_it(postgres_server):
    url = postgres_server.url("no_such_db").replace("postgres@", "postgres:pw-secret@")
    with pytest.raises(PromptLabError) as caught:
        get_engine(url)
    message = str(caught.value)
    assert 'database "no_such_db" does not exist' in message
    assert f"createdb -h 127.0.0.1 -p {postgres_server.port} no_such_db" in message
    assert "pw-secret" not in message
