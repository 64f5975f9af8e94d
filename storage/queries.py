"""Reading and writing the store: small keyword-only functions, one unit of work each caller's."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import String, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.datasets.data import Dataset, Example
from core.errors import PromptLabError
from core.policy import Actor, local_actor
from storage.schema import (
    TYPED_INPUTS,
    Base,
    DatasetRecord,
    DeletionRecord,
    ExampleRecord,
    ExperimentRecord,
    PromptDesignRecord,
    ResultRecord,
    StudyRecord,
    utcnow,
)

STALE_AFTER = timedelta(minutes=10)  # a run on another host that stopped beating is dead
ROUGE_COLUMNS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
NAMES_SHOWN = {  # of columns whose own name would not say what they hold
    ("datasets", "name"): "dataset name",
    ("examples", "key"): "example id",
    ("studies", "name"): "study name",
    ("results", "example_key"): "example id",
}


# Datasets ------------------------------------------------------------------------------------


def save_dataset(
    *,
    session: Session,
    dataset: Dataset,
    replace: bool = False,
    created_by: str | None = None,
    actor: Actor | None = None,
) -> int:
    """Store a dataset whole; a name already taken is refused unless `replace` (and `actor`
    may delete the one there), and the name of the Playground's typed inputs always (they go
    in through add_example)."""
    if dataset.name == TYPED_INPUTS:
        raise PromptLabError(
            f"The name '{TYPED_INPUTS}' is kept for inputs typed in the Playground; choose another."
        )
    existing = session.scalar(select(DatasetRecord).where(DatasetRecord.name == dataset.name))
    if existing is not None:
        if not replace:
            raise PromptLabError(f"A dataset named '{dataset.name}' exists already.")
        _refuse_unless_theirs(actor, "dataset", f"'{existing.name}'", existing.created_by)
        session.delete(existing)
        session.flush()
    record = DatasetRecord(
        name=dataset.name,
        created_by=created_by,
        source=dataset.source,
        input_column=dataset.input_column,
        reference_column=dataset.reference_column,
        examples=[
            ExampleRecord(
                key=ex.id, position=i, input=ex.input, reference=ex.reference, split=ex.split
            )
            for i, ex in enumerate(dataset.examples)
        ],
    )
    for checked in (record, *record.examples):
        _refuse_too_long(type(checked), vars(checked))
    session.add(record)
    session.flush()
    return record.id


def load_dataset(*, session: Session, name: str) -> Dataset:
    record = session.scalar(select(DatasetRecord).where(DatasetRecord.name == name))
    if record is None:
        known = ", ".join(list_dataset_names(session=session)) or "none yet"
        raise PromptLabError(f"There is no dataset '{name}'. Datasets: {known}.")
    examples = tuple(Example(e.key, e.input, e.reference, e.split) for e in record.examples)
    return Dataset(
        record.name, examples, record.source, record.input_column, record.reference_column
    )


def list_dataset_names(*, session: Session) -> list[str]:
    return list(session.scalars(select(DatasetRecord.name).order_by(DatasetRecord.name)))


@dataclass(frozen=True)
class DatasetSummary:
    name: str
    source: str
    examples: int
    with_reference: int
    splits: dict[str, int]
    created_at: datetime
    created_by: str | None = None


def list_datasets(*, session: Session) -> list[DatasetSummary]:
    rows = session.execute(
        select(
            DatasetRecord.name,
            DatasetRecord.source,
            DatasetRecord.created_at,
            DatasetRecord.created_by,
            ExampleRecord.split,
            func.count(ExampleRecord.id),
            func.count(ExampleRecord.reference),
        )
        .join(ExampleRecord, isouter=True)
        .group_by(DatasetRecord.id, ExampleRecord.split)
        .order_by(DatasetRecord.name)
    ).all()
    summaries: dict[str, dict[str, Any]] = {}
    for name, source, created, by, split, count, with_ref in rows:
        entry = summaries.setdefault(
            name,
            dict(
                source=source,
                created_at=created,
                created_by=by,
                examples=0,
                with_reference=0,
                splits={},
            ),
        )
        entry["examples"] += count
        entry["with_reference"] += with_ref
        if split:
            entry["splits"][split] = count
    return [DatasetSummary(name=name, **entry) for name, entry in summaries.items()]


def delete_dataset(*, session: Session, name: str, actor: Actor | None = None) -> None:
    """Delete a dataset and its examples, if `actor` (else the local user) may; recorded."""
    actor = actor or local_actor()
    record = session.scalar(select(DatasetRecord).where(DatasetRecord.name == name))
    if record is None:
        raise PromptLabError(f"There is no dataset '{name}'.")
    _refuse_unless_theirs(actor, "dataset", f"'{name}'", record.created_by)
    session.add(
        DeletionRecord(
            kind="dataset",
            item_id=record.id,
            name=record.name,
            created_by=record.created_by,
            deleted_by=actor.name,
        )
    )
    session.delete(record)


def add_example(
    *,
    session: Session,
    dataset_name: str,
    example: Example,
    source: str = "",
    created_by: str | None = None,
) -> None:
    """Append one example to a dataset, creating the dataset if needed; a key already there is
    kept as it is (keys of typed inputs are content hashes, so it is the same example)."""
    _refuse_too_long(DatasetRecord, {"name": dataset_name})
    _refuse_too_long(ExampleRecord, {"key": example.id, "split": example.split})
    dataset = session.scalar(select(DatasetRecord).where(DatasetRecord.name == dataset_name))
    if dataset is None:
        try:
            with session.begin_nested():  # another session may create it meanwhile
                dataset = DatasetRecord(
                    name=dataset_name,
                    created_by=created_by,
                    source=source,
                    input_column="input",
                    reference_column="reference",
                )
                session.add(dataset)
        except IntegrityError:
            dataset = session.scalars(
                select(DatasetRecord).where(DatasetRecord.name == dataset_name)
            ).one()
    taken = select(ExampleRecord.id).where(
        ExampleRecord.dataset_id == dataset.id, ExampleRecord.key == example.id
    )
    if session.scalar(taken) is not None:
        return
    position = session.scalar(
        select(func.count(ExampleRecord.id)).where(ExampleRecord.dataset_id == dataset.id)
    )
    try:
        with session.begin_nested():
            session.add(
                ExampleRecord(
                    dataset_id=dataset.id,
                    key=example.id,
                    position=position or 0,
                    input=example.input,
                    reference=example.reference,
                    split=example.split,
                )
            )
    except IntegrityError:  # stored by another session at the same moment
        pass


# Prompt designs and studies --------------------------------------------------------------------


def design_id(*, session: Session, design: dict[str, Any], created_by: str | None = None) -> int:
    """The id of this design, stored once however many experiments use it (its creator is
    whoever stored it first)."""
    fingerprint = hashlib.sha256(json.dumps(design, sort_keys=True).encode()).hexdigest()
    record = session.scalar(
        select(PromptDesignRecord).where(PromptDesignRecord.fingerprint == fingerprint)
    )
    if record is not None:
        return record.id
    try:
        with session.begin_nested():  # another process may store the same design meanwhile
            record = PromptDesignRecord(
                fingerprint=fingerprint, design=design, created_by=created_by
            )
            session.add(record)
        return record.id
    except IntegrityError:
        return session.scalar(
            select(PromptDesignRecord.id).where(PromptDesignRecord.fingerprint == fingerprint)
        )


def create_study(
    *,
    session: Session,
    name: str,
    base_spec: dict[str, Any],
    variations: dict[str, Any],
    created_by: str | None = None,
) -> int:
    _refuse_too_long(StudyRecord, {"name": name})
    record = StudyRecord(
        name=name, base_spec=base_spec, variations=variations, created_by=created_by
    )
    session.add(record)
    session.flush()
    return record.id


# Experiments ------------------------------------------------------------------------------------


def create_experiment(*, session: Session, **fields: Any) -> int:
    _refuse_too_long(ExperimentRecord, fields)
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
    _refuse_too_long(ExperimentRecord, fields)
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
        _refuse_unless_theirs(actor, "experiment", str(row.id), row.created_by)
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
    session.execute(delete(ResultRecord).where(ResultRecord.experiment_id.in_(experiment_ids)))
    done = session.execute(delete(ExperimentRecord).where(ExperimentRecord.id.in_(experiment_ids)))
    return done.rowcount


def list_deletions(*, session: Session) -> list[DeletionRecord]:
    """What was deleted, newest first."""
    query = select(DeletionRecord).order_by(DeletionRecord.id.desc())
    return list(session.scalars(query))


def _refuse_unless_theirs(actor: Actor | None, kind: str, shown: str, owner: str | None) -> None:
    """Refuse, with a sentence naming the creator, to let `actor` delete another's work."""
    if (actor or local_actor()).may_change(owner):
        return
    whose = f"was created by {owner}" if owner else "was stored before creators were recorded"
    raise PromptLabError(
        f"You can delete only what you created: {kind} {shown} {whose}. An admin "
        "(PROMPT_LAB_ADMINS) can delete it."
    )


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


# Results ---------------------------------------------------------------------------------------


def add_results(*, session: Session, experiment_id: int, results: Iterable[dict[str, Any]]) -> int:
    """Store a batch of results and the experiment's progress; the caller commits."""
    records = []
    for fields in results:
        _refuse_too_long(ResultRecord, fields)
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


def rouge_scores(*, session: Session, experiment_id: int) -> dict[str, list[float]]:
    """Per-example ROUGE of the scored results, in example order."""
    rows = session.execute(
        select(*(getattr(ResultRecord, c) for c in ROUGE_COLUMNS))
        .where(ResultRecord.experiment_id == experiment_id, ResultRecord.rouge1.is_not(None))
        .order_by(ResultRecord.position)
    ).all()
    return {c: [row[i] for row in rows] for i, c in enumerate(ROUGE_COLUMNS)}


# Listing ---------------------------------------------------------------------------------------


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


# Checks ----------------------------------------------------------------------------------------


def _refuse_too_long(kind: type[Base], values: Mapping[str, Any]) -> None:
    """Text longer than its column is refused on every database alike: PostgreSQL would fail
    with a traceback where SQLite keeps it whole, and such a store could not move to PostgreSQL."""
    for name, limit in _limits(kind).items():
        value = values.get(name)
        if isinstance(value, str) and len(value) > limit:
            shown = value if len(value) <= 40 else value[:37] + "…"
            what = NAMES_SHOWN.get((kind.__tablename__, name), name.replace("_", " "))
            raise PromptLabError(
                f"The {what} '{shown}' is {len(value)} characters long; at most {limit} fit "
                "in the store."
            )


@functools.cache
def _limits(kind: type[Base]) -> dict[str, int]:
    return {
        column.name: column.type.length
        for column in kind.__table__.columns
        if isinstance(column.type, String) and column.type.length
    }
