"""Reuse within a study: an example whose exact prompt another experiment of the same study
already sent to the same generator gets that stored answer copied (attempts 0), not generated."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from core.generation.local import Output
from core.prompting.design import RenderedPrompt
from core.runs import recording
from core.runs.spec import RunSpec
from storage import queries
from storage.db import session_scope
from storage.schema import ExperimentRecord, ResultRecord


def copy_identical(
    experiment_id: int,
    spec: RunSpec,
    prompts: Sequence[RenderedPrompt],
    where: recording.Where,
    done: int,
    db_url: str | None,
) -> tuple[list[RenderedPrompt], int]:
    """Store, scored on this experiment's metrics and checks, a copy of the earliest error-free
    answer that another experiment of its study got for each prompt's exact text with the same
    generator (`generator`); the prompts left to generate, and the count of finished examples.
    Shots, dropped shots and truncation are this experiment's own rendering of the same text.

    Only a generation that the settings decide is honestly copied: greedy, or sampled with a
    seed. Sampled runs with identical settings (seed included) are treated as the same
    generation, though a seeded sample can depend on the batch it was drawn in."""
    with session_scope(db_url) as session:
        record = queries.get_experiment(session=session, experiment_id=experiment_id)
        found = _earlier_answers(session, record, prompts, spec.token_confidence)
    copied = [p for p in prompts if p.sent_text in found]
    if copied:
        done = recording.store_outputs(
            experiment_id,
            spec,
            copied,
            [replace(found[p.sent_text][0], example_id=p.example_id) for p in copied],
            where,
            db_url,
            [found[p.sent_text][1] for p in copied] if spec.token_confidence else None,
        )
    return [p for p in prompts if p.sent_text not in found], done


def _earlier_answers(
    session: Any,
    record: ExperimentRecord,
    prompts: Sequence[RenderedPrompt],
    token_confidence: bool,
) -> dict[str, tuple[Output, Any]]:
    """Per prompt text, the earliest answer to copy (as an Output) and its token confidence."""
    if record.study_id is None or not prompts:
        return {}
    same = [
        other.id
        for other in queries.list_experiments(
            session=session, study_id=record.study_id, model=record.model_id
        )
        if other.id != record.id and generator(other) == generator(record)
    ]
    if not same:
        return {}
    found: dict[str, tuple[Output, Any]] = {}
    for result in queries.reusable_results(
        session=session, experiment_ids=same, prompts=[p.sent_text for p in prompts]
    ):
        if token_confidence and result.token_confidence is None:
            continue  # this run asked for them; that answer was stored without
        found.setdefault(result.prompt, (_copied(result), result.token_confidence))
    return found


def generator(record: ExperimentRecord) -> tuple:
    """What decides an answer besides the prompt's text: the model and its revision, the whole
    generation settings, how the text is sent (chat template, the API), and where it runs: the
    backend, device and dtype, and the endpoint (for llama.cpp (local) the backend alone, whose
    record names its slot count too; its greedy text can differ with the slots)."""
    spec = record.spec or {}
    endpoint = spec.get("endpoint") or {}
    return (
        record.model_id,
        record.model_revision,
        record.settings,
        (spec.get("design") or {}).get("use_chat_template"),
        endpoint.get("api"),
        record.backend,
        record.device,
        record.dtype,
        None if record.backend == "llama.cpp" else record.endpoint,
    )


def _copied(result: ResultRecord) -> Output:
    """A stored answer as an output of this run: nothing sent (attempts 0) and no time taken."""
    return Output(
        example_id=result.example_key,
        text=result.output,
        prompt_tokens=result.prompt_tokens,
        new_tokens=result.new_tokens,
        finish_reason=result.finish_reason,
        latency_s=0.0,
        stop_string=result.stop_string,
        batch_size=result.batch_size,  # the batch it was generated in (seeded sampling)
        batch_index=result.batch_index,
        attempts=0,
    )
