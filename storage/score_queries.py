"""Per-example scores on any metric: ROUGE's four types from the columns of results, every other
metric (BLEU, chrF, similarity, checks, an operator's) from the scores table; written per run or
when a stored experiment is scored again."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from storage.experiment_queries import ROUGE_COLUMNS
from storage.schema import ResultRecord, ScoreRecord


def scores_by_key(*, session: Session, experiment_id: int, metric: str) -> dict[str, float]:
    """Each scored example's value on `metric` (example key -> value), in example order;
    examples without one (failed, no reference, not scored on it) are left out."""
    return scores_of(session=session, experiment_ids=[experiment_id], metric=metric)[experiment_id]


def scores_of(
    *, session: Session, experiment_ids: Sequence[int], metric: str
) -> dict[int, dict[str, float]]:
    """scores_by_key for several experiments at once: experiment id -> example key -> value."""
    ids = list(dict.fromkeys(experiment_ids))
    found: dict[int, dict[str, float]] = {i: {} for i in ids}
    if not ids:
        return found
    if metric in ROUGE_COLUMNS:
        column = getattr(ResultRecord, metric)
        query = (
            select(ResultRecord.experiment_id, ResultRecord.example_key, column)
            .where(ResultRecord.experiment_id.in_(ids), column.is_not(None))
            .order_by(ResultRecord.experiment_id, ResultRecord.position)
        )
    else:
        query = (
            select(ScoreRecord.experiment_id, ScoreRecord.example_key, ScoreRecord.value)
            .join(
                ResultRecord,
                (ResultRecord.experiment_id == ScoreRecord.experiment_id)
                & (ResultRecord.example_key == ScoreRecord.example_key),
            )
            .where(
                ScoreRecord.experiment_id.in_(ids),
                ScoreRecord.metric == metric,
                ScoreRecord.value.is_not(None),
            )
            .order_by(ScoreRecord.experiment_id, ResultRecord.position)
        )
    for experiment_id, key, value in session.execute(query):
        found[experiment_id][key] = value
    return found


def metrics_stored(*, session: Session, experiment_ids: Sequence[int]) -> list[str]:
    """The metrics other than ROUGE that any of these experiments has scores on, sorted."""
    query = (
        select(ScoreRecord.metric)
        .where(ScoreRecord.experiment_id.in_(list(experiment_ids)))
        .distinct()
    )
    return sorted(session.scalars(query))


def put_scores(
    *,
    session: Session,
    experiment_id: int,
    scores: Mapping[str, Mapping[str, float | None]],
) -> None:
    """Store per-example scores (metric -> example key -> value), replacing what the experiment
    held on those metrics for those examples; ROUGE types go to the columns of results."""
    for metric, values in scores.items():
        if not values:
            continue
        if metric in ROUGE_COLUMNS:
            for key, value in values.items():
                session.execute(
                    ResultRecord.__table__.update()
                    .where(
                        ResultRecord.experiment_id == experiment_id,
                        ResultRecord.example_key == key,
                    )
                    .values({metric: value})
                )
            continue
        session.execute(
            delete(ScoreRecord).where(
                ScoreRecord.experiment_id == experiment_id,
                ScoreRecord.metric == metric,
                ScoreRecord.example_key.in_(list(values)),
            )
        )
        session.add_all(
            ScoreRecord(experiment_id=experiment_id, example_key=key, metric=metric, value=value)
            for key, value in values.items()
        )
    session.flush()
