"""People's ratings and blind choices as tables, for CSV downloads and the command line; written
as CSV by safe_csv's rules, like every other table."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import PromptLabError
from core.reporting.revision import unique_ids
from core.reporting.safe_csv import to_csv_bytes
from storage.judgement_queries import choices_of, ratings_of
from storage.schema import ExperimentRecord

RATING_COLUMNS = [
    "experiment_id",
    "label",
    "example_key",
    "rater",
    "scale",
    "value",
    "note",
    "created_at",
    "updated_at",
]
CHOICE_COLUMNS = [
    "experiment_a",
    "experiment_b",
    "example_key",
    "rater",
    "choice",  # of experiment_a or experiment_b: a, b, tie or both_bad
    "winner",  # the id chosen as better, or "" for a tie or both bad
    "shown_left",
    "created_at",
]


def ratings_table(*, session: Session, experiment_ids: Sequence[int]) -> pd.DataFrame:
    """One row per rating of these experiments' outputs: each rater's own, with the times."""
    ids = unique_ids(experiment_ids)
    labels = _labels(session, ids)
    rows = [
        (r.experiment_id, labels[r.experiment_id], r.example_key, r.rater, r.scale, r.value)
        + (r.note, r.created_at, r.updated_at)
        for r in ratings_of(session=session, experiment_ids=ids)
    ]
    frame = pd.DataFrame(rows, columns=RATING_COLUMNS)
    return _times(frame, "created_at", "updated_at").astype(
        {"experiment_id": "int64", "value": "int64"}
    )


def choices_table(*, session: Session, experiment_ids: Sequence[int]) -> pd.DataFrame:
    """One row per blind choice involving any of these experiments, a being the lower id."""
    ids = unique_ids(experiment_ids)
    _labels(session, ids)
    rows = [
        (c.experiment_a, c.experiment_b, c.example_key, c.rater, c.choice)
        + ("" if c.winner is None else str(c.winner), c.shown_left, c.created_at)
        for c in choices_of(session=session, experiment_ids=ids)
    ]
    frame = pd.DataFrame(rows, columns=CHOICE_COLUMNS)
    return _times(frame, "created_at").astype(
        {"experiment_a": "int64", "experiment_b": "int64", "shown_left": "int64"}
    )


def ratings_csv(*, session: Session, experiment_ids: Sequence[int]) -> bytes:
    return to_csv_bytes(ratings_table(session=session, experiment_ids=experiment_ids))


def choices_csv(*, session: Session, experiment_ids: Sequence[int]) -> bytes:
    return to_csv_bytes(choices_table(session=session, experiment_ids=experiment_ids))


def _times(frame: pd.DataFrame, *names: str) -> pd.DataFrame:
    for name in names:
        frame[name] = pd.to_datetime(frame[name], utc=True)
    return frame


def _labels(session: Session, ids: list[int]) -> dict[int, str]:
    """Each experiment's label; unknown ids are refused by number."""
    found = dict(
        session.execute(
            select(ExperimentRecord.id, ExperimentRecord.label).where(ExperimentRecord.id.in_(ids))
        ).all()
    )
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise PromptLabError(
            f"There is no experiment {', '.join(missing)}; pick ids from the experiments list."
        )
    return found
