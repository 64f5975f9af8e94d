"""Reading and writing the store: small keyword-only functions, one unit of work each caller's.
Datasets are in dataset_queries, experiments and results in experiment_queries, designs and the
versions experiments ran in design_queries (the prompt library itself: prompt_queries), scores
on any metric in score_queries; they are re-exported here, so callers say queries.<name>.
Studies and deletions are here."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
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
from storage.design_queries import (  # noqa: F401
    design_id,
    version_for_design,
    version_label,
    version_labels,
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
    reusable_results,
    rouge_scores,
    set_token_confidence,
    update_experiment,
)
from storage.judgement_queries import (  # noqa: F401
    Preference,
    Rating,
    choices_of,
    choose,
    pair_examples,
    rate_output,
    ratings_of,
    remove_rating,
)
from storage.refusals import refuse_too_long
from storage.schema import DeletionRecord, StudyRecord
from storage.score_queries import metrics_stored, put_scores, scores_by_key, scores_of  # noqa: F401


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
