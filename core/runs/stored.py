"""Experiments in the store outside a run: one created pending with its exact examples, a copy
of one, its spec read back, a retry made ready, and deletion, a running experiment refused."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from core.errors import PromptLabError
from core.library.refs import parse_ref
from core.policy import Actor, local_actor
from core.runs import limits as run_policy
from core.runs.examples import examples_for, get_dataset
from core.runs.spec import RunSpec
from storage import prompt_queries, queries
from storage.db import session_scope


def create(
    spec: RunSpec,
    *,
    db_url: str | None = None,
    study_id: int | None = None,
    example_keys: Sequence[str] | None = None,
    origin: str = "experiment",  # or "playground" (storage.schema.ORIGINS)
    actor: Actor | None = None,  # who creates it; None: the local user
) -> int:
    """Record an experiment as pending, with the exact examples it will evaluate."""
    run_policy.check_spec(spec, None if example_keys is None else len(example_keys))
    dataset = get_dataset(spec.dataset, db_url=db_url)
    if example_keys is None:
        example_keys = [ex.id for ex in examples_for(spec, dataset)[0]]
    by = (actor or local_actor()).name
    with session_scope(db_url) as session:
        spec_dict = spec.to_dict()
        design_id = queries.design_id(session=session, design=spec_dict["design"], created_by=by)
        experiment_id = queries.create_experiment(
            created_by=by,
            session=session,
            label=spec.label,
            study_id=study_id,
            dataset_name=spec.dataset,
            split=spec.split,
            example_keys=list(example_keys),
            design_id=design_id,
            spec=spec_dict,
            design=spec_dict["design"],
            settings=spec_dict["settings"],
            model_id=spec.model.model_id,
            seed=spec.settings.seed,
            n_examples=len(example_keys),
            backend="served" if spec.endpoint else _engine_backend(spec),
            endpoint=spec.endpoint.label() if spec.endpoint else None,
            origin=origin,
        )
        version_id = _version_used(session, spec, spec_dict["design"], by)
        queries.update_experiment(
            session=session, experiment_id=experiment_id, prompt_version_id=version_id
        )
        return experiment_id


def _version_used(session, spec: RunSpec, design: dict[str, Any], by: str) -> int:
    """The prompt version whose design the experiment runs exactly: the named one it was
    started from if nothing changed it since, else its design's unnamed version."""
    if spec.prompt:
        ref = parse_ref(spec.prompt)
        try:
            named = prompt_queries.resolve_version(
                session=session, name=ref.name, version=ref.version, label=ref.label
            )
        except PromptLabError:  # deleted since (a rerun of an old experiment): unnamed
            named = None
        if named is not None and named.design == design:
            return named.id
    return queries.version_for_design(session=session, design=design, created_by=by)


def copy(experiment_id: int, *, db_url: str | None = None, actor: Actor | None = None) -> int:
    """A new pending experiment with a stored one's spec, examples and study, `actor`'s."""
    with session_scope(db_url) as session:
        record = queries.get_experiment(session=session, experiment_id=experiment_id)
        spec, keys, study_id = RunSpec.from_dict(record.spec), record.example_keys, record.study_id
    return create(spec, db_url=db_url, study_id=study_id, example_keys=keys, actor=actor)


def stored_spec(experiment_id: int, *, db_url: str | None = None) -> RunSpec:
    """The spec an experiment was run with, e.g. to pre-fill a form that changes one thing."""
    with session_scope(db_url) as session:
        return RunSpec.from_dict(
            queries.get_experiment(session=session, experiment_id=experiment_id).spec
        )


def prepare_retry(*, session: Any, experiment_id: int) -> bool:
    """Forget an experiment's failed results, so that executing it again sends those examples
    again; whether anything is left to run. A running experiment is refused."""
    record = queries.get_experiment(session=session, experiment_id=experiment_id)
    if record.status == "running":
        raise PromptLabError(f"Experiment {experiment_id} is running; wait for it to end.")
    forgotten = queries.forget_failed(session=session, experiment_id=experiment_id)
    return bool(forgotten) or record.status != "completed"


def delete(
    experiment_ids: Sequence[int],
    *,
    db_url: str | None = None,
    busy: Collection[int] = (),
    actor: Actor | None = None,
) -> int:
    """Delete experiments and their results, all or none; how many went. One that is running
    is refused, so that its worker never loses its rows (`busy`: in a run in progress here),
    and so is one `actor` did not create (storage.queries.delete_experiments)."""
    with session_scope(db_url) as session:
        check_deletable(session=session, experiment_ids=experiment_ids, busy=busy)
        return queries.delete_experiments(
            session=session, experiment_ids=experiment_ids, actor=actor
        )


def check_deletable(
    *, session: Any, experiment_ids: Sequence[int], busy: Collection[int] = ()
) -> None:
    """Refuse unknown and running experiments. A run whose process died is not running: it is
    marked interrupted first (queries.mark_stale_runs), and can then be deleted."""
    queries.mark_stale_runs(session=session)
    records = queries.list_experiments(session=session, ids=list(experiment_ids))
    missing = sorted(set(experiment_ids) - {r.id for r in records})
    if missing:
        raise PromptLabError(f"There is no experiment {', '.join(map(str, missing))}.")
    running = sorted(r.id for r in records if r.status == "running")
    waiting = sorted(r.id for r in records if r.status != "running" and r.id in busy)
    problems = []
    if running:
        problems.append(f"{_numbered(running)} {_be(running)} running")
    if waiting:
        problems.append(f"{_numbered(waiting)} {_be(waiting)} part of a run in progress")
    if problems:
        them = "it" if len(running) + len(waiting) == 1 else "them"
        raise PromptLabError(f"{'; '.join(problems)}; cancel {them} first.")


def _numbered(ids: Sequence[int]) -> str:
    return f"Experiment {ids[0]}" if len(ids) == 1 else f"Experiments {', '.join(map(str, ids))}"


def _be(ids: Sequence[int]) -> str:
    return "is" if len(ids) == 1 else "are"


def _engine_backend(spec: RunSpec) -> str:
    """What an experiment generated here records as its backend: local (transformers) or
    llama.cpp."""
    return "llama.cpp" if spec.engine == "llama.cpp" else "local"
