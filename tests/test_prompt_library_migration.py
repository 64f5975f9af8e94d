"""Migration 0006 on a store that holds experiments with results, on SQLite and PostgreSQL: the
designs get shot_format and instruction_role and new fingerprints (rows that become one design are
merged), each becomes an unnamed version, and each experiment points at its design's."""

from __future__ import annotations

import hashlib
import json

import pytest
import sqlalchemy as sa
from alembic import command

from core.evaluation import compare
from core.prompting.design import PRESETS
from storage import queries
from storage.db import alembic_config, dispose_all, get_engine, parse_database_url, session_scope
from storage.schema import ExperimentRecord, PromptVersionRecord
from tests.test_compare import store_experiment

pytestmark = pytest.mark.both_databases
NEW_KEYS = {"shot_format": "inline", "instruction_role": "user"}

designs = sa.table(
    "prompt_designs",
    sa.column("id", sa.Integer),
    sa.column("fingerprint", sa.String),
    sa.column("design", sa.JSON),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
experiments = sa.table(
    "experiments",
    sa.column("id", sa.Integer),
    sa.column("design_id", sa.Integer),
    sa.column("design", sa.JSON),
    sa.column("spec", sa.JSON),
    sa.column("prompt_version_id", sa.Integer),
)
versions = sa.table(
    "prompt_versions",
    sa.column("id", sa.Integer),
    sa.column("prompt_id", sa.Integer),
    sa.column("design_id", sa.Integer),
    sa.column("design", sa.JSON),
)


def fingerprint(design: dict) -> str:
    return hashlib.sha256(json.dumps(design, sort_keys=True).encode()).hexdigest()


def as_before_0006(db: str) -> sa.Engine:
    """Downgraded to 0005 (its designs without the two keys, as stored before they existed),
    and opened without migrating."""
    with get_engine(db).begin() as conn:
        command.downgrade(alembic_config(conn), "0005")
    dispose_all()
    return sa.create_engine(parse_database_url(db))


def test_old_designs_become_unnamed_versions_that_their_experiments_point_at(db):
    zero_shot = store_experiment(db, [0.5, 0.4, 0.3])
    one_shot = store_experiment(db, [0.2, 0.1], shots=1)
    again = store_experiment(db, [0.3], shots=1)
    no_design = store_experiment(db, [0.6], shots=2)
    old = as_before_0006(db)
    with old.begin() as conn:
        assert "prompt_versions" not in sa.inspect(conn).get_table_names()
        stored = dict(conn.execute(sa.select(designs.c.id, designs.c.design)).all())
        assert all(not set(NEW_KEYS) & set(d) for d in stored.values())
        # The same one-shot design stored again by a newer Prompt Lab, keys and all, used by
        # `again`; and an experiment whose design was never stored as a row.
        one_shot_row = conn.scalar(
            sa.select(experiments.c.design_id).where(experiments.c.id == one_shot)
        )
        full = {**stored[one_shot_row], **NEW_KEYS}
        newer = conn.execute(
            sa.insert(designs)
            .values(fingerprint=fingerprint(full), design=full, created_at=sa.func.now())
            .returning(designs.c.id)
        ).scalar_one()
        conn.execute(
            sa.update(experiments).where(experiments.c.id == again).values(design_id=newer)
        )
        conn.execute(
            sa.update(experiments).where(experiments.c.id == no_design).values(design_id=None)
        )
    old.dispose()

    engine = get_engine(db)  # opening it migrates it
    with engine.connect() as conn:
        rows = conn.execute(sa.select(designs)).all()
        unnamed = conn.execute(sa.select(versions).where(versions.c.prompt_id.is_(None))).all()
        pointed = dict(
            conn.execute(sa.select(experiments.c.id, experiments.c.prompt_version_id)).all()
        )
        design_of = dict(conn.execute(sa.select(experiments.c.id, experiments.c.design_id)).all())
    assert all(NEW_KEYS.items() <= row.design.items() for row in rows)
    assert all(row.fingerprint == fingerprint(row.design) for row in rows)
    assert newer not in {row.id for row in rows}  # merged into the older row
    assert design_of[again] == design_of[one_shot] == one_shot_row
    assert sorted(v.design_id for v in unnamed) == sorted(row.id for row in rows)
    version_design = {v.id: v.design_id for v in unnamed}
    for experiment_id in (zero_shot, one_shot, again, no_design):
        assert version_design[pointed[experiment_id]] == design_of[experiment_id]
    assert pointed[again] == pointed[one_shot]
    with session_scope(db) as session:
        assert [r.rougeL for r in queries.results_of(session=session, experiment_id=zero_shot)] == [
            0.5,
            0.4,
            0.3,
        ]
        # A design stored now finds its old row, and its unnamed version.
        design = PRESETS["instruction"].with_(shots=1).to_dict()
        assert queries.design_id(session=session, design=design) == one_shot_row
        assert queries.version_for_design(session=session, design=design) == pointed[one_shot]


def test_an_experiments_version_is_set_to_null_when_the_version_goes(db):
    experiment_id = store_experiment(db, [0.5])
    engine = get_engine(db)
    if engine.dialect.name == "sqlite":  # the reference ALTER TABLE wrote inline, as declared
        with engine.connect() as conn:
            references = conn.exec_driver_sql("PRAGMA foreign_key_list(experiments)").all()
        [reference] = [r for r in references if r[3] == "prompt_version_id"]
        assert (reference[2], reference[4], reference[6]) == ("prompt_versions", "id", "SET NULL")
    with session_scope(db) as session:
        design = session.get(ExperimentRecord, experiment_id).design
        version = queries.version_for_design(session=session, design=design)
        session.get(ExperimentRecord, experiment_id).prompt_version_id = version
    with session_scope(db) as session:
        session.delete(session.get(PromptVersionRecord, version))
    with session_scope(db) as session:
        assert session.get(ExperimentRecord, experiment_id).prompt_version_id is None
        assert len(queries.results_of(session=session, experiment_id=experiment_id)) == 1


def test_downgrading_and_upgrading_again_keeps_experiments_and_their_results(db):
    experiment_id = store_experiment(db, [0.5, 0.4])
    as_before_0006(db).dispose()
    with get_engine(db).connect() as conn:
        assert conn.execute(sa.text("select version_num from alembic_version")).scalar() == "0008"
    with session_scope(db) as session:
        record = session.get(ExperimentRecord, experiment_id)
        assert record.prompt_version_id is not None
        assert len(queries.results_of(session=session, experiment_id=experiment_id)) == 2


def test_experiments_copies_of_their_design_get_the_keys_so_compare_sees_no_difference(db):
    old_id = store_experiment(db, [0.5, 0.4, 0.3])
    old = as_before_0006(db)
    with old.connect() as conn:
        (design, spec) = conn.execute(
            sa.select(experiments.c.design, experiments.c.spec).where(experiments.c.id == old_id)
        ).one()
    old.dispose()
    assert not set(NEW_KEYS) & (set(design) | set(spec["design"]))
    get_engine(db)  # opening it migrates it
    new_id = store_experiment(db, [0.2, 0.1, 0.3])  # the same design, stored by this version
    with session_scope(db) as session:
        record = queries.get_experiment(session=session, experiment_id=old_id)
        assert NEW_KEYS.items() <= record.design.items()
        assert NEW_KEYS.items() <= record.spec["design"].items()
        variants = compare.load_variants(session=session, experiment_ids=[old_id, new_id])
    assert compare.differing_keys(variants) == []
