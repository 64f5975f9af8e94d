"""Designs stored once each (content-addressed), the unnamed version of each, and which version
of the library an experiment ran, as `summarise@2`, for Compare and exports."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.schema import ExperimentRecord, PromptDesignRecord, PromptRecord, PromptVersionRecord


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


def unnamed_version(*, session: Session, design_row: int, created_by: str | None = None) -> int:
    """The id of the unnamed version of the design stored as `design_row`, stored once."""
    query = select(PromptVersionRecord.id).where(
        PromptVersionRecord.prompt_id.is_(None), PromptVersionRecord.design_id == design_row
    )
    found = session.scalar(query)
    if found is not None:
        return found
    design = session.get(PromptDesignRecord, design_row).design
    try:
        with session.begin_nested():  # another process may store it meanwhile
            record = PromptVersionRecord(
                design_id=design_row, design=design, message="", tags=[], created_by=created_by
            )
            session.add(record)
        return record.id
    except IntegrityError:
        return session.scalars(query).one()


def version_for_design(
    *, session: Session, design: dict[str, Any], created_by: str | None = None
) -> int:
    """The id of the unnamed version of `design` (PromptDesign.to_dict()), stored once: what an
    experiment not started from a named version records as the version it ran."""
    row = design_id(session=session, design=design, created_by=created_by)
    return unnamed_version(session=session, design_row=row, created_by=created_by)


def version_label(*, session: Session, version_id: int | None) -> str | None:
    """`summarise@2` for a named version; None for an unnamed (or no) version."""
    if version_id is None:
        return None
    row = session.execute(
        select(PromptRecord.name, PromptVersionRecord.version)
        .join(PromptRecord, PromptVersionRecord.prompt_id == PromptRecord.id)
        .where(PromptVersionRecord.id == version_id)
    ).first()
    return f"{row.name}@{row.version}" if row else None


def version_labels(*, session: Session, experiment_ids: Sequence[int]) -> dict[int, str | None]:
    """For each experiment id given that exists: the named version it ran, or None."""
    ran = ExperimentRecord.prompt_version_id == PromptVersionRecord.id
    rows = session.execute(
        select(ExperimentRecord.id, PromptRecord.name, PromptVersionRecord.version)
        .outerjoin(PromptVersionRecord, ran)
        .outerjoin(PromptRecord, PromptVersionRecord.prompt_id == PromptRecord.id)
        .where(ExperimentRecord.id.in_(list(experiment_ids)))
    ).all()
    return {i: (f"{name}@{number}" if name else None) for i, name, number in rows}
