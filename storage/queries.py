"""Reading and writing the store: small keyword-only functions, one unit of work each caller's.
Datasets are in dataset_queries, experiments and results in experiment_queries; they are
re-exported here, so callers say queries.<name>. Prompt designs, studies and deletions are here."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.dataset_queries import (  # noqa: F401
    DatasetSummary,
    add_example,
    delete_dataset,
    list_dataset_names,
    list_datasets,
    load_dataset,
    save_dataset,
)
from storage.experiment_queries import (  # noqa: F401
    ROUGE_COLUMNS,
    add_results,
    create_experiment,
    delete_experiments,
    finished_keys,
    forget_failed,
    get_experiment,
    list_experiments,
    mark_stale_runs,
    results_of,
    rouge_scores,
    set_token_confidence,
    update_experiment,
)
from storage.refusals import refuse_too_long
from storage.schema import DeletionRecord, PromptDesignRecord, StudyRecord


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
    refuse_too_long(StudyRecord, {"name": name})
    record = StudyRecord(
        name=name, base_spec=base_spec, variations=variations, created_by=created_by
    )
    session.add(record)
    session.flush()
    return record.id


def list_deletions(*, session: Session) -> list[DeletionRecord]:
    """What was deleted, newest first."""
    query = select(DeletionRecord).order_by(DeletionRecord.id.desc())
    return list(session.scalars(query))
