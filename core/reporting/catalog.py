"""Finding stored experiments: the filters the Experiments page offers, and the summary rows of
what matches, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.reporting.export import summary_table
from storage.schema import ExperimentRecord, StudyRecord

SHOWN = [
    "id",
    "label",
    "origin",
    "status",
    "study_id",
    "dataset",
    "model_id",
    "engine",
    "shots",
    "do_sample",
    "temperature",
    "n_done",
    "n_examples",
    "rougeL",
    "rougeL_ci_low",
    "rougeL_ci_high",
    "tokens_per_s",
    "created_at",
    "created_by",
]


@dataclass(frozen=True)
class Filters:
    models: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    study_id: int | None = None
    statuses: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None  # inclusive: the whole day
    include_playground: bool = False
    text: str = ""  # in the label, case-insensitive
    created_by: str | None = None  # only this user's ("Mine only")


def options(*, session: Session) -> dict[str, list]:
    """The values the filters can take: models, datasets and studies that have experiments."""
    distinct = lambda column: list(session.scalars(select(column).distinct().order_by(column)))  # noqa: E731
    studies = session.execute(
        select(StudyRecord.id, StudyRecord.name).order_by(StudyRecord.id.desc())
    )
    return {
        "models": distinct(ExperimentRecord.model_id),
        "datasets": distinct(ExperimentRecord.dataset_name),
        "studies": [(sid, name) for sid, name in studies],
    }


def find(*, session: Session, filters: Filters) -> pd.DataFrame:
    """Summary rows (export.summary_table's columns, and who created each) of the matching
    experiments."""
    query = select(ExperimentRecord.id, ExperimentRecord.created_by)
    query = query.order_by(ExperimentRecord.id.desc())
    if filters.models:
        query = query.where(ExperimentRecord.model_id.in_(filters.models))
    if filters.datasets:
        query = query.where(ExperimentRecord.dataset_name.in_(filters.datasets))
    if filters.study_id is not None:
        query = query.where(ExperimentRecord.study_id == filters.study_id)
    if filters.statuses:
        query = query.where(ExperimentRecord.status.in_(filters.statuses))
    if filters.since:
        query = query.where(ExperimentRecord.created_at >= _start_of(filters.since))
    if filters.until:
        query = query.where(ExperimentRecord.created_at < _start_of(filters.until + timedelta(1)))
    if not filters.include_playground:
        query = query.where(ExperimentRecord.origin != "playground")
    if filters.text.strip():
        query = query.where(ExperimentRecord.label.icontains(filters.text.strip(), autoescape=True))
    if filters.created_by is not None:
        query = query.where(ExperimentRecord.created_by == filters.created_by)
    owners = dict(session.execute(query).all())
    frame = summary_table(session=session, experiment_ids=list(owners))
    frame["created_by"] = frame["id"].map(owners).astype("string")
    return frame


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)
