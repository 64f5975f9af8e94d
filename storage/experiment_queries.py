"""Experiment queries: creating, reading, updating, listing and deleting experiments, marking
dead runs, and storing and reading their results."""

from __future__ import annotations

import os
import socket
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from core.errors import PromptLabError
from core.policy import Actor, local_actor
from storage.refusals import refuse_too_long, refuse_unless_theirs
from storage.schema import (
    DeletionRecord,
    ExperimentRecord,
    PreferenceRecord,
    RatingRecord,
    ResultRecord,
    ScoreRecord,
    utcnow,
)

STALE_AFTER = timedelta(minutes=10)  # a run on another host that stopped beating is dead
ROUGE_COLUMNS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
REUSE_CHUNK = 500  # prompts per IN (...) list: well under SQLite's limit on bound parameters


def create_experiment(*, session: Session, **fields: Any) -> int:
    refuse_too_long(ExperimentRecord, fields)
    record = ExperimentRecord(**fields)
    session.add(record)
    session.flush()
    return record.id


def get_experiment(*, session: Session, experiment_id: int) -> ExperimentRecord:
    record = session.get(ExperimentRecord, experiment_id)
    if record is None:
        raise PromptLabError(f"There is no experiment {experiment_id}.")
    return record


def update_experiment(*, session: Session, experiment_id: int, **fields: Any) -> None:
    refuse_too_long(ExperimentRecord, fields)
    session.execute(
        update(ExperimentRecord).where(ExperimentRecord.id == experiment_id).values(**fields)
    )


def delete_experiments(
    *, session: Session, experiment_ids: Sequence[int], actor: Actor | None = None
) -> int:
    """Delete experiments and their results, all or none: each must exist and be one `actor`
    (else the local user) may delete. Each deletion is recorded."""
    actor = actor or local_actor()
    found = session.execute(
        select(ExperimentRecord.id, ExperimentRecord.label, ExperimentRecord.created_by)
        .where(ExperimentRecord.id.in_(experiment_ids))
        .order_by(ExperimentRecord.id)
    ).all()
    missing = set(experiment_ids) - {row.id for row in found}
    if missing:
        raise PromptLabError(f"There is no experiment {', '.join(map(str, sorted(missing)))}.")
    for row in found:
        refuse_unless_theirs(actor, "experiment", str(row.id), row.created_by)
    session.add_all(
        DeletionRecord(
            kind="experiment",
            item_id=row.id,
            name=row.label or "",
            created_by=row.created_by,
            deleted_by=actor.name,
        )
        for row in found
    )
    # Results go first explicitly: SQLite enforces ON DELETE CASCADE only with foreign_keys on.
    for table in (ResultRecord, ScoreRecord, RatingRecord):
        session.execute(delete(table).where(table.experiment_id.in_(experiment_ids)))
    session.execute(
        delete(PreferenceRecord).where(
            PreferenceRecord.experiment_a.in_(experiment_ids)
            | PreferenceRecord.experiment_b.in_(experiment_ids)
        )
    )
    done = session.execute(delete(ExperimentRecord).where(ExperimentRecord.id.in_(experiment_ids)))
    return done.rowcount


def mark_stale_runs(*, session: Session) -> list[int]:
    """Experiments still marked running whose process is gone become interrupted."""
    here = socket.gethostname()
    stale = []
    for record in session.scalars(
        select(ExperimentRecord).where(ExperimentRecord.status == "running")
    ):
        if record.host == here and record.pid is not None:
            dead = not _process_alive(record.pid)
        else:
            beat = record.heartbeat_at or record.started_at or record.created_at
            dead = beat is None or _aware(beat) < utcnow() - STALE_AFTER
        if dead:
            record.status = "interrupted"
            stale.append(record.id)
    return stale


def _aware(moment: datetime) -> datetime:
    # SQLite hands datetimes back without their zone; they were stored in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


# Results ------------------------------------------------------------------------------------------


def add_results(*, session: Session, experiment_id: int, results: Iterable[dict[str, Any]]) -> int:
    """Store a batch of results and the experiment's progress; the caller commits."""
    records = []
    for fields in results:
        refuse_too_long(ResultRecord, fields)
        records.append(ResultRecord(experiment_id=experiment_id, **fields))
    session.add_all(records)
    session.flush()
    return _recount(session, experiment_id, heartbeat_at=utcnow())


def set_token_confidence(
    *, session: Session, experiment_id: int, example_key: str, value: dict[str, Any]
) -> None:
    """Keep each answer token's probability with a stored result (confidence.to_json)."""
    updated = session.execute(
        update(ResultRecord)
        .where(ResultRecord.experiment_id == experiment_id, ResultRecord.example_key == example_key)
        .values(token_confidence=value)
    )
    if not updated.rowcount:
        raise PromptLabError(f"Experiment {experiment_id} has no result for '{example_key}'.")


def finished_keys(*, session: Session, experiment_id: int) -> set[str]:
    return set(
        session.scalars(
            select(ResultRecord.example_key).where(ResultRecord.experiment_id == experiment_id)
        )
    )


def forget_failed(*, session: Session, experiment_id: int) -> int:
    """Delete an experiment's failed results, so that resuming it tries those examples again;
    returns how many were deleted."""
    failed = list(
        session.scalars(
            select(ResultRecord).where(
                ResultRecord.experiment_id == experiment_id, ResultRecord.finish_reason == "error"
            )
        )
    )
    for record in failed:
        session.delete(record)
    session.flush()
    _recount(session, experiment_id)
    return len(failed)


def _recount(session: Session, experiment_id: int, **also: Any) -> int:
    """Set an experiment's progress to the results it holds (and `also`); returns that count."""
    done = session.scalar(
        select(func.count(ResultRecord.id)).where(ResultRecord.experiment_id == experiment_id)
    )
    update_experiment(session=session, experiment_id=experiment_id, n_done=done, **also)
    return done


def results_of(*, session: Session, experiment_id: int) -> list[ResultRecord]:
    return list(
        session.scalars(
            select(ResultRecord)
            .where(ResultRecord.experiment_id == experiment_id)
            .order_by(ResultRecord.position)
        )
    )


def reusable_results(
    *, session: Session, experiment_ids: Sequence[int], prompts: Collection[str]
) -> list[ResultRecord]:
    """The error-free results of these experiments whose exact prompt is one of `prompts`,
    oldest experiment first (core.runs.reuse copies them)."""
    texts, found = sorted(set(prompts)), []
    for start in range(0, len(texts), REUSE_CHUNK):
        found += session.scalars(
            select(ResultRecord).where(
                ResultRecord.experiment_id.in_(experiment_ids),
                ResultRecord.prompt.in_(texts[start : start + REUSE_CHUNK]),
                ResultRecord.finish_reason != "error",
                ResultRecord.error.is_(None),
            )
        )
    return sorted(found, key=lambda r: (r.experiment_id, r.id))


def rouge_scores(*, session: Session, experiment_id: int) -> dict[str, list[float]]:
    """Per-example ROUGE of the scored results, in example order."""
    rows = session.execute(
        select(*(getattr(ResultRecord, c) for c in ROUGE_COLUMNS))
        .where(ResultRecord.experiment_id == experiment_id, ResultRecord.rouge1.is_not(None))
        .order_by(ResultRecord.position)
    ).all()
    return {c: [row[i] for row in rows] for i, c in enumerate(ROUGE_COLUMNS)}


# Listing ------------------------------------------------------------------------------------------


def list_experiments(
    *,
    session: Session,
    model: str | None = None,
    dataset: str | None = None,
    study_id: int | None = None,
    status: str | None = None,
    since: datetime | None = None,
    ids: Sequence[int] | None = None,
) -> list[ExperimentRecord]:
    """Experiments, newest first; results are not loaded."""
    query = select(ExperimentRecord).order_by(ExperimentRecord.id.desc())
    if model:
        query = query.where(ExperimentRecord.model_id == model)
    if dataset:
        query = query.where(ExperimentRecord.dataset_name == dataset)
    if study_id is not None:
        query = query.where(ExperimentRecord.study_id == study_id)
    if status:
        query = query.where(ExperimentRecord.status == status)
    if since is not None:
        query = query.where(ExperimentRecord.created_at >= since)
    if ids is not None:
        query = query.where(ExperimentRecord.id.in_(ids))
    return list(session.scalars(query))
