"""Scoring a stored experiment again with other metrics or checks, without generating: its
outputs are read back, scored, stored beside the scores it had, and its summary recomputed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from core.errors import PromptLabError
from core.evaluation import metric_set
from core.evaluation.checks import Check
from core.policy import Actor, local_actor
from core.runs import recording
from core.runs.spec import RunSpec
from storage import queries
from storage.db import session_scope

BUSY = ("pending", "running")


@dataclass(frozen=True)
class Rescored:
    """What scoring again did: the score keys written and over how many outputs."""

    experiment_id: int
    keys: tuple[str, ...]
    n: int


def rescore(
    experiment_id: int,
    metrics: Sequence[str],
    checks: Sequence[Check] = (),
    *,
    db_url: str | None = None,
    actor: Actor | None = None,
) -> Rescored:
    """Score the outputs `experiment_id` stored on `metrics` and `checks`, replacing its earlier
    scores on those, and record them in its spec (beside the metrics it had) and summary."""
    metrics = metric_set.parse_metrics(metrics) if metrics else ()
    if not metrics and not checks:
        raise PromptLabError("Choose at least one metric or check to score the outputs with.")
    with session_scope(db_url) as session:
        record = queries.get_experiment(session=session, experiment_id=experiment_id)
        _refuse(record, actor)
        spec = RunSpec.from_dict(record.spec)
        scoring = replace(spec, metrics=metrics, checks=tuple(checks))
        results = [
            r
            for r in queries.results_of(session=session, experiment_id=experiment_id)
            if r.finish_reason != "error"
        ]
        keys = [r.example_key for r in results]
        scores = recording.score(
            scoring, [r.output for r in results], [r.reference for r in results], keys
        )
        queries.put_scores(
            session=session,
            experiment_id=experiment_id,
            scores={name: dict(zip(keys, values, strict=True)) for name, values in scores.items()},
        )
        kept = {c.name: c for c in (*spec.checks, *checks)}  # a check given again replaces it
        merged = replace(
            spec,
            metrics=tuple(dict.fromkeys((*spec.metrics, *metrics))),
            checks=tuple(kept.values()),
        )
        everything = queries.results_of(session=session, experiment_id=experiment_id)
        queries.update_experiment(
            session=session,
            experiment_id=experiment_id,
            spec=merged.to_dict(),
            aggregates=recording.aggregate(session, experiment_id, everything),
        )
    return Rescored(experiment_id, tuple(scores), len(results))


def _refuse(record, actor: Actor | None) -> None:
    """Only finished work is scored again, and only by whoever may change it."""
    if record.status in BUSY:
        raise PromptLabError(
            f"Experiment {record.id} is {record.status}; score it again once it has stopped."
        )
    if not (actor or local_actor()).may_change(record.created_by):
        whose = f"was created by {record.created_by}" if record.created_by else "has no creator"
        raise PromptLabError(
            f"You can score again only what you created: experiment {record.id} {whose}. An "
            "admin (PROMPT_LAB_ADMINS) can."
        )
