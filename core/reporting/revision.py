"""Revisions of stored experiments: a cheap value that changes with every write their tables
depend on, so a page can keep a table until it does."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import JSON, Text, cast, func, select
from sqlalchemy.orm import Session

from storage.schema import (
    DatasetRecord,
    ExampleRecord,
    ExperimentRecord,
    ResultRecord,
    ScoreRecord,
)

# Written once, when an experiment is created: left out of its revision to keep that small.
UNCHANGING = ("spec", "example_keys", "design", "settings", "library_versions")


def revision(
    *, session: Session, experiment_ids: Sequence[int] | None = None, results: bool = True
) -> tuple:
    """A value that changes with every write that the tables of these experiments (all, if
    None) depend on: each one's row (status, progress, times, label, aggregates...) and, if
    `results`, the count and newest id of its results, of its scores and of its dataset's
    examples. Equal
    revisions, equal tables. Cheap: no result or example row is read, only indexed ids."""
    kept = [c for c in ExperimentRecord.__table__.columns if c.name not in UNCHANGING]
    query = select(*(cast(c, Text) if isinstance(c.type, JSON) else c for c in kept))
    if experiment_ids is not None:
        query = query.where(ExperimentRecord.id.in_(unique_ids(experiment_ids)))
    rows = tuple(tuple(row) for row in session.execute(query.order_by(ExperimentRecord.id)))
    if not results:
        return rows
    ids = [row[0] for row in rows]
    names = {row[[c.name for c in kept].index("dataset_name")] for row in rows}
    stored = (
        select(ResultRecord.experiment_id, func.count(), func.max(ResultRecord.id))
        .where(ResultRecord.experiment_id.in_(ids))
        .group_by(ResultRecord.experiment_id)
        .order_by(ResultRecord.experiment_id)
    )
    scored = (
        select(ScoreRecord.experiment_id, func.count(), func.max(ScoreRecord.id))
        .where(ScoreRecord.experiment_id.in_(ids))
        .group_by(ScoreRecord.experiment_id)
        .order_by(ScoreRecord.experiment_id)
    )
    return (
        rows,
        tuple(tuple(row) for row in session.execute(stored)),
        tuple(tuple(row) for row in session.execute(scored)),
        dataset_revision(session=session, names=names),
    )


def dataset_revision(*, session: Session, names: Iterable[str]) -> tuple:
    """Each named dataset's id, example count and newest example id: it changes when one is
    stored again, extended or deleted."""
    examples = (
        select(DatasetRecord.name, DatasetRecord.id, func.count(), func.max(ExampleRecord.id))
        .join(ExampleRecord, isouter=True)
        .where(DatasetRecord.name.in_(list(names)))
        .group_by(DatasetRecord.id, DatasetRecord.name)
        .order_by(DatasetRecord.name)
    )
    return tuple(tuple(row) for row in session.execute(examples))


def unique_ids(experiment_ids: Sequence[int]) -> list[int]:
    """The ids as ints, each once, in the order first given."""
    return list(dict.fromkeys(int(i) for i in experiment_ids))
