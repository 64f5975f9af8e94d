"""Experiments: a run spec evaluated over a slice of a dataset and stored result by result,
so a killed run keeps what it finished and resumes without redoing it; re-runs from the record.
Creating, copying and deleting are in runs.stored, the examples in runs.examples (re-exported)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from core.datasets.data import Example
from core.errors import PromptLabError
from core.generation import confidence
from core.generation.local import Output, generate_batches
from core.models import registry as models
from core.policy import Actor
from core.prompting.design import RenderedPrompt
from core.runs import recording
from core.runs import reuse as copying
from core.runs import served as served_runner
from core.runs.examples import examples_for, get_dataset, pool_of  # noqa: F401
from core.runs.spec import RunSpec  # re-exported: callers say experiments.RunSpec
from core.runs.stored import (  # noqa: F401
    check_deletable,
    copy,
    create,
    delete,
    prepare_retry,
    stored_spec,
)
from storage import queries
from storage.db import session_scope
from storage.schema import utcnow

Progress = Callable[[int, int], None]
StopCheck = Callable[[], bool]
Tokens = Callable[[int], None]  # told the new tokens of each group of answers as it is stored


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


def rerun(experiment_id: int, *, actor: Actor | None = None, **kwargs: Any) -> int:
    """Run a stored experiment again, as a new experiment on the same examples."""
    new_id = copy(experiment_id, db_url=kwargs.get("db_url"), actor=actor)
    execute(new_id, **kwargs)
    return new_id


def execute(
    experiment_id: int,
    *,
    db_url: str | None = None,
    on_progress: Progress | None = None,
    should_stop: StopCheck | None = None,
    on_tokens: Tokens | None = None,
    reuse: bool = False,
) -> str:
    """Generate, score and store every unfinished example; returns the final status. An
    experiment that cannot start (its dataset or examples gone) is failed with the reason.
    `reuse`: an example whose exact prompt another experiment of the same study already sent
    to the same generator gets that answer copied instead (attempts 0; runs.reuse)."""
    spec, todo, pool, done, total = _start(experiment_id, db_url)
    backend = (
        served_runner.execute
        if spec.endpoint is not None
        else served_runner.execute_llama
        if spec.engine == "llama.cpp"
        else execute_local
    )
    try:
        return backend(
            experiment_id,
            spec,
            todo,
            pool,
            done,
            total,
            db_url,
            on_progress,
            should_stop,
            on_tokens=on_tokens,
            reuse=reuse,
        )
    except BaseException as exc:
        status = "failed" if isinstance(exc, Exception) else "interrupted"
        recording.update(
            db_url, experiment_id, status=status, error=stored_reason(exc), finished_at=utcnow()
        )
        raise


def stored_reason(exc: BaseException) -> str | None:
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
    experiment_id,
    spec: RunSpec,
    todo,
    pool,
    done,
    total,
    db_url,
    on_progress,
    should_stop,
    *,
    on_tokens: Tokens | None = None,
    reuse: bool = False,
) -> str:
    """The local backend, in the shape of the served one (runs.served.execute)."""
    with models.hold(spec.model) as loaded:
        return _generate_all(
            experiment_id,
            spec,
            todo,
            pool,
            loaded,
            done,
            total,
            db_url,
            on_progress,
            should_stop,
            on_tokens,
            reuse,
        )


def _generate_all(
    experiment_id,
    spec,
    todo,
    pool,
    loaded,
    done,
    total,
    db_url,
    on_progress,
    should_stop,
    on_tokens,
    reuse=False,
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
    if reuse:
        prompts, done = copying.copy_identical(experiment_id, spec, prompts, where, done, db_url)
    if on_progress:
        on_progress(done, total)
    for indices, outputs in generate_batches(
        loaded, prompts, spec.settings, batch_size=spec.batch_size
    ):
        batch = [prompts[i] for i in indices]
        sure = _confidences(loaded, batch, outputs) if spec.token_confidence else None
        done = recording.store_outputs(experiment_id, spec, batch, outputs, where, db_url, sure)
        if on_tokens:
            on_tokens(sum(out.new_tokens for out in outputs))
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
    recorded: dict[str, Any] | None = None,
) -> None:
    """Store outputs generated outside `execute` (the Playground's streamed runs) and complete
    the experiment, so they are found, compared and exported like any other. It started when
    its answers began (they came one after another), so that its throughput is theirs;
    `recorded` replaces what it records of where it ran (llama.cpp (local))."""
    position = {key: i for i, key in enumerate(_keys_of(experiment_id, db_url))}
    generating = timedelta(seconds=sum(out.latency_s for _, _, out in pairs))
    where_it_ran = {
        "model_revision": loaded.revision,
        "device": loaded.device,
        "dtype": loaded.dtype,
        "library_versions": recording.library_versions(served=spec.endpoint is not None),
    } | (recorded or {})
    recording.update(
        db_url, experiment_id, status="running", started_at=utcnow() - generating, **where_it_ran
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
            db_url, experiment_id, status="failed", error=stored_reason(exc), finished_at=utcnow()
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


def _confidences(
    loaded: models.LoadedModel, prompts: list[RenderedPrompt], outputs: list[Output]
) -> list[dict[str, Any]]:
    """Each answer token's probability, for a run that asked for them (one pass per answer)."""
    return [
        confidence.to_json(confidence.token_confidence(loaded, prompt, out.text))
        for prompt, out in zip(prompts, outputs, strict=True)
    ]
