"""Prompt searches in the store: one created with its split, read back, updated as it runs,
and listed newest first."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.refusals import refuse_too_long
from storage.schema import SearchRecord


def create_search(
    *,
    session: Session,
    name: str,
    study_id: int,
    config: dict[str, Any],
    split: dict[str, Any],
    created_by: str | None = None,
) -> int:
    refuse_too_long(SearchRecord, {"name": name})
    record = SearchRecord(
        name=name, study_id=study_id, config=config, split=split, created_by=created_by
    )
    session.add(record)
    session.flush()
    return record.id


def get_search(*, session: Session, search_id: int) -> SearchRecord | None:
    return session.get(SearchRecord, search_id)


def update_search(*, session: Session, search_id: int, **fields: Any) -> None:
    record = session.get(SearchRecord, search_id)
    for name, value in fields.items():
        setattr(record, name, value)


def list_searches(*, session: Session) -> list[SearchRecord]:
    return list(session.scalars(select(SearchRecord).order_by(SearchRecord.id.desc())))
