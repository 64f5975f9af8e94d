"""Dataset queries: storing, loading, listing and deleting datasets, and adding one example."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.datasets.data import Dataset, Example
from core.errors import PromptLabError
from core.policy import Actor, local_actor
from storage.refusals import refuse_too_long, refuse_unless_theirs
from storage.schema import TYPED_INPUTS, DatasetRecord, DeletionRecord, ExampleRecord


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
        refuse_unless_theirs(actor, "dataset", f"'{existing.name}'", existing.created_by)
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
        refuse_too_long(type(checked), vars(checked))
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
    refuse_unless_theirs(actor, "dataset", f"'{name}'", record.created_by)
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
    refuse_too_long(DatasetRecord, {"name": dataset_name})
    refuse_too_long(ExampleRecord, {"key": example.id, "split": example.split})
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
