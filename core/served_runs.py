"""An experiment run on a served endpoint: prompts rendered with the model's own tokenizer and
template, sent C at a time, stored as they come back; failed examples are stored as failed."""

from __future__ import annotations

import time

from core import models, recording
from core.experiments import RunSpec
from core.generation import Output
from core.prompts import RenderedPrompt
from core.served import check_run
from core.served_client import Client, Failure, run_concurrently
from storage.schema import utcnow

# What came back is stored (and scored) in groups: at least this often, so progress shows and a
# crash loses little, and at most this many at once (scoring costs ~0.1 s a call, not per answer).
FLUSH_EVERY_S = 1.0
FLUSH_EVERY_N = 16


def serve_all(
    experiment_id, spec: RunSpec, todo, pool, done, total, db_url, on_progress, should_stop
) -> str:
    endpoint = spec.endpoint
    mapping = check_run(
        spec.settings,
        endpoint,
        use_chat_template=spec.design.use_chat_template,
        token_confidence=spec.token_confidence,
    )
    prompter = models.prompt_tokenizer(spec.model)
    recording.update(
        db_url,
        experiment_id,
        backend="served",
        endpoint=endpoint.label(),
        model_revision=prompter.revision,
        device="server",
        dtype=None,
        library_versions={**recording.library_versions(), "httpx": _httpx_version()},
    )
    prompts, where, done = recording.render_todo(
        experiment_id, spec, todo, pool, prompter, done, db_url
    )
    if on_progress:
        on_progress(done, total)
    client = Client(endpoint, spec.settings, mapping, system_prompt=spec.design.system_prompt)
    stopped = False

    def stop_now() -> bool:
        nonlocal stopped
        stopped = stopped or bool(should_stop and should_stop())
        return stopped

    waiting: list[tuple[RenderedPrompt, Output | Failure]] = []
    last_flush = time.monotonic()
    try:
        budget = int(endpoint.error_budget * len(prompts))
        for index, result in run_concurrently(
            client, prompts, error_budget=budget, should_stop=stop_now
        ):
            waiting.append((prompts[index], result))
            if len(waiting) >= FLUSH_EVERY_N or time.monotonic() - last_flush > FLUSH_EVERY_S:
                done = _store(experiment_id, spec, waiting, where, db_url)
                waiting, last_flush = [], time.monotonic()
                if on_progress:
                    on_progress(done, total)
    finally:
        client.close()
        if waiting:  # whatever came back before an error is kept
            done = _store(experiment_id, spec, waiting, where, db_url)
            if on_progress:
                on_progress(done, total)
    if stopped and done < total:
        recording.update(db_url, experiment_id, status="interrupted", finished_at=utcnow())
        return "interrupted"
    recording.finish(experiment_id, spec, db_url)
    return "completed"


def _store(
    experiment_id: int,
    spec: RunSpec,
    results: list[tuple[RenderedPrompt, Output | Failure]],
    where: recording.Where,
    db_url: str | None,
) -> int:
    answered = [(p, r) for p, r in results if isinstance(r, Output)]
    failed = [(p, r) for p, r in results if isinstance(r, Failure)]
    done = 0
    if answered:
        done = recording.store_outputs(
            experiment_id,
            spec,
            [p for p, _ in answered],
            [r for _, r in answered],
            where,
            db_url,
        )
    if failed:
        done = recording.store_failures(
            experiment_id, [(p, f.error, f.attempts) for p, f in failed], where, db_url
        )
    return done


def _httpx_version() -> str:
    import httpx

    return httpx.__version__
