"""Experiments: a run spec evaluated over a slice of a dataset and stored result by result,
so a killed run keeps what it finished and resumes without redoing it; re-runs from the record."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy.exc import IntegrityError

from core.datasets.data import BUILTIN_NAME, Dataset, Example, load_builtin
from core.errors import PromptLabError
from core.generation import confidence
from core.generation.local import Output, generate_batches
from core.models import registry as models
from core.policy import Actor, local_actor
from core.prompting.design import RenderedPrompt
from core.runs import limits as run_policy
from core.runs import recording
from core.runs.spec import RunSpec  # re-exported: callers say experiments.RunSpec
from core.served import runner as served_runner
from storage import queries
from storage.db import session_scope
from storage.schema import utcnow

Progress = Callable[[int, int], None]
StopCheck = Callable[[], bool]


def examples_for(spec: RunSpec, dataset: Dataset) -> tuple[list[Example], list[Example]]:
    """(the examples to evaluate, the pool of `dataset` that shots come from)."""
    chosen = list(dataset.split(spec.split) if spec.split else dataset.examples)
    if spec.split and not chosen:
        raise PromptLabError(f"Dataset '{dataset.name}' has no '{spec.split}' split.")
    end = None if spec.limit is None else spec.offset + spec.limit
    chosen = chosen[spec.offset : end]
    if not chosen:
        raise PromptLabError(f"No examples left after offset {spec.offset}.")
    run_policy.check_example_count(len(chosen))
    return chosen, list(dataset.pool)


def get_dataset(name: str, *, db_url: str | None = None) -> Dataset:
    """A stored dataset; the built-in one is stored on first use."""
    if name == BUILTIN_NAME:
        try:
            with session_scope(db_url) as session:
                if name not in queries.list_dataset_names(session=session):
                    queries.save_dataset(session=session, dataset=load_builtin())
        except (IntegrityError, PromptLabError):
            # Another process may have stored it between the look and the save: its copy is
            # the same data. Anything else is a real failure.
            with session_scope(db_url) as session:
                if name not in queries.list_dataset_names(session=session):
                    raise
    with session_scope(db_url) as session:
        return queries.load_dataset(session=session, name=name)


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
        return queries.create_experiment(
            created_by=by,
            session=session,
            label=spec.label,
            study_id=study_id,
            dataset_name=spec.dataset,
            split=spec.split,
            example_keys=list(example_keys),
            design_id=queries.design_id(session=session, design=spec_dict["design"], created_by=by),
            spec=spec_dict,
            design=spec_dict["design"],
            settings=spec_dict["settings"],
            model_id=spec.model.model_id,
            seed=spec.settings.seed,
            n_examples=len(example_keys),
            backend="served" if spec.endpoint else "local",
            endpoint=spec.endpoint.label() if spec.endpoint else None,
            origin=origin,
        )


def run(
    spec: RunSpec,
    *,
    db_url: str | None = None,
    on_progress: Progress | None = None,
    should_stop: StopCheck | None = None,
    actor: Actor | None = None,
) -> int:
    """Create and execute one experiment; returns its id."""
    experiment_id = create(spec, db_url=db_url, actor=actor)
    execute(experiment_id, db_url=db_url, on_progress=on_progress, should_stop=should_stop)
    return experiment_id


def resume(experiment_id: int, **kwargs: Any) -> str:
    """Finish an interrupted, failed or pending experiment without redoing finished examples."""
    with session_scope(kwargs.get("db_url")) as session:
        queries.mark_stale_runs(session=session)
        status = queries.get_experiment(session=session, experiment_id=experiment_id).status
    if status == "completed":
        raise PromptLabError(f"Experiment {experiment_id} is complete; nothing to resume.")
    if status == "running":
        raise PromptLabError(f"Experiment {experiment_id} is running in another process.")
    return execute(experiment_id, **kwargs)


def retry_failed(experiment_id: int, **kwargs: Any) -> str:
    """Try an experiment's failed examples again, and any it never reached; keeps the rest."""
    with session_scope(kwargs.get("db_url")) as session:
        queries.mark_stale_runs(session=session)
        if not prepare_retry(session=session, experiment_id=experiment_id):
            raise PromptLabError(f"Experiment {experiment_id} has no failed examples to retry.")
    return execute(experiment_id, **kwargs)


def prepare_retry(*, session: Any, experiment_id: int) -> bool:
    """Forget an experiment's failed results, so that executing it again sends those examples
    again; whether anything is left to run. A running experiment is refused."""
    record = queries.get_experiment(session=session, experiment_id=experiment_id)
    if record.status == "running":
        raise PromptLabError(f"Experiment {experiment_id} is running; wait for it to end.")
    forgotten = queries.forget_failed(session=session, experiment_id=experiment_id)
    return bool(forgotten) or record.status != "completed"


def rerun(experiment_id: int, *, actor: Actor | None = None, **kwargs: Any) -> int:
    """Run a stored experiment again, as a new experiment on the same examples."""
    new_id = copy(experiment_id, db_url=kwargs.get("db_url"), actor=actor)
    execute(new_id, **kwargs)
    return new_id


def copy(experiment_id: int, *, db_url: str | None = None, actor: Actor | None = None) -> int:
    """A new pending experiment with a stored one's spec, examples and study, `actor`'s."""
    with session_scope(db_url) as session:
        record = queries.get_experiment(session=session, experiment_id=experiment_id)
        spec, keys, study_id = RunSpec.from_dict(record.spec), record.example_keys, record.study_id
    return create(spec, db_url=db_url, study_id=study_id, example_keys=keys, actor=actor)


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


def stored_spec(experiment_id: int, *, db_url: str | None = None) -> RunSpec:
    """The spec an experiment was run with, e.g. to pre-fill a form that changes one thing."""
    with session_scope(db_url) as session:
        return RunSpec.from_dict(
            queries.get_experiment(session=session, experiment_id=experiment_id).spec
        )


def execute(
    experiment_id: int,
    *,
    db_url: str | None = None,
    on_progress: Progress | None = None,
    should_stop: StopCheck | None = None,
) -> str:
    """Generate, score and store every unfinished example; returns the final status. An
    experiment that cannot start (its dataset or examples gone) is failed with the reason."""
    spec, todo, pool, done, total = _start(experiment_id, db_url)
    backend = served_runner.execute if spec.endpoint is not None else execute_local
    try:
        return backend(
            experiment_id, spec, todo, pool, done, total, db_url, on_progress, should_stop
        )
    except BaseException as exc:
        status = "failed" if isinstance(exc, Exception) else "interrupted"
        recording.update(
            db_url, experiment_id, status=status, error=_reason(exc), finished_at=utcnow()
        )
        raise


def _reason(exc: BaseException) -> str | None:
    """What a stopped experiment keeps as its error: a sentence for its reader, never a
    traceback or the text of an unexpected exception (it may hold paths); that goes to the log."""
    if isinstance(exc, PromptLabError):
        return str(exc)[:2000]
    if isinstance(exc, Exception):
        return (
            f"Something went wrong inside Prompt Lab ({type(exc).__name__}); the details are "
            "in the app's log."
        )
    return None  # interrupted (Ctrl-C, a stop): not an error


def execute_local(
    experiment_id, spec: RunSpec, todo, pool, done, total, db_url, on_progress, should_stop
) -> str:
    """The local backend, in the shape of the served one (served.runner.execute)."""
    with models.hold(spec.model) as loaded:
        return _generate_all(
            experiment_id, spec, todo, pool, loaded, done, total, db_url, on_progress, should_stop
        )


def _generate_all(
    experiment_id, spec, todo, pool, loaded, done, total, db_url, on_progress, should_stop
) -> str:
    recording.update(
        db_url,
        experiment_id,
        model_revision=loaded.revision,
        device=loaded.device,
        dtype=loaded.dtype,
        library_versions=recording.library_versions(),
    )
    prompts, where, done = recording.render_todo(
        experiment_id, spec, todo, pool, loaded, done, db_url
    )
    if on_progress:
        on_progress(done, total)
    for indices, outputs in generate_batches(
        loaded, prompts, spec.settings, batch_size=spec.batch_size
    ):
        batch = [prompts[i] for i in indices]
        sure = _confidences(loaded, batch, outputs) if spec.token_confidence else None
        done = recording.store_outputs(experiment_id, spec, batch, outputs, where, db_url, sure)
        if on_progress:
            on_progress(done, total)
        if should_stop and should_stop() and done < total:
            recording.update(db_url, experiment_id, status="interrupted", finished_at=utcnow())
            return "interrupted"
    recording.finish(experiment_id, spec, db_url)
    return "completed"


def record_outputs(
    experiment_id: int,
    spec: RunSpec,
    pairs: Sequence[tuple[Example, RenderedPrompt, Output]],
    loaded: models.LoadedModel,
    *,
    db_url: str | None = None,
) -> None:
    """Store outputs generated outside `execute` (the Playground's streamed runs) and complete
    the experiment, so they are found, compared and exported like any other."""
    position = {key: i for i, key in enumerate(_keys_of(experiment_id, db_url))}
    recording.update(
        db_url,
        experiment_id,
        status="running",
        started_at=utcnow(),
        model_revision=loaded.revision,
        device=loaded.device,
        dtype=loaded.dtype,
        library_versions=recording.library_versions(served=spec.endpoint is not None),
    )
    where = {ex.id: (position[ex.id], ex.reference) for ex, _, _ in pairs}
    prompts = [replace(prompt, example_id=ex.id) for ex, prompt, _ in pairs]
    recording.store_outputs(
        experiment_id, spec, prompts, [out for _, _, out in pairs], where, db_url
    )
    recording.finish(experiment_id, spec, db_url)


def _keys_of(experiment_id: int, db_url: str | None) -> list[str]:
    with session_scope(db_url) as session:
        return list(
            queries.get_experiment(session=session, experiment_id=experiment_id).example_keys
        )


def _start(experiment_id: int, db_url: str | None):
    """Check that an experiment can run, then mark it running; a check that fails marks it
    failed with the reason instead, so that it never stays "running" without a worker."""
    with session_scope(db_url) as session:
        record = queries.get_experiment(session=session, experiment_id=experiment_id)
        spec = RunSpec.from_dict(record.spec)
        finished = queries.finished_keys(session=session, experiment_id=experiment_id)
        keys, started_at = list(record.example_keys), record.started_at
    try:
        dataset = get_dataset(spec.dataset, db_url=db_url)
        pool = pool_of(spec, dataset, db_url=db_url)
        by_id = {ex.id: ex for ex in dataset.examples}
        missing = [k for k in keys if k not in by_id]
        if missing:
            raise PromptLabError(
                f"Dataset '{spec.dataset}' no longer has example(s) {', '.join(missing[:5])}."
            )
    except PromptLabError as exc:
        recording.update(
            db_url, experiment_id, status="failed", error=_reason(exc), finished_at=utcnow()
        )
        raise
    recording.update(
        db_url,
        experiment_id,
        status="running",
        error=None,
        pid=os.getpid(),
        host=socket.gethostname(),
        started_at=started_at or utcnow(),
        heartbeat_at=utcnow(),
        finished_at=None,
    )
    todo = [(keys.index(k), by_id[k]) for k in keys if k not in finished]
    return spec, todo, pool, len(finished), len(keys)


def pool_of(spec: RunSpec, dataset: Dataset, *, db_url: str | None = None) -> list[Example]:
    """The examples shots are drawn from: `dataset`'s pool, or another dataset's."""
    if spec.pool_dataset and spec.pool_dataset != dataset.name:
        return list(get_dataset(spec.pool_dataset, db_url=db_url).pool)
    return list(dataset.pool)


def _confidences(
    loaded: models.LoadedModel, prompts: list[RenderedPrompt], outputs: list[Output]
) -> list[dict[str, Any]]:
    """Each answer token's probability, for a run that asked for them (one pass per answer)."""
    return [
        confidence.to_json(confidence.token_confidence(loaded, prompt, out.text))
        for prompt, out in zip(prompts, outputs, strict=True)
    ]
