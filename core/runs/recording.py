"""How an experiment's results are stored: prompts rendered for the examples still to do,
outputs scored and stored batch by batch, failures kept as failed, and the summary at the end."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from core.datasets.data import Example
from core.errors import PromptLabError
from core.evaluation import compare, metric_set
from core.generation.local import Output
from core.models import registry as models
from core.models.loading import LoadedModel
from core.prompting import embeddings
from core.prompting.design import Embed, PromptDesign, RenderedPrompt
from core.prompting.rendering import check_for_model, render_for_model
from storage import queries
from storage.db import session_scope
from storage.schema import utcnow

if TYPE_CHECKING:
    from core.runs.spec import RunSpec

Where = dict[str, tuple[int, str | None]]  # example id: (its position, its reference)


def render_todo(
    experiment_id: int,
    spec: RunSpec,
    todo: Sequence[tuple[int, Example]],
    pool: Sequence[Example],
    loaded: LoadedModel,
    done: int,
    db_url: str | None,
) -> tuple[list[RenderedPrompt], Where, int]:
    """Prompts for the examples still to do, and where each sits in the experiment with its
    reference; an example that cannot be rendered is stored as failed."""
    check_for_model(loaded, spec.design)  # refused for the whole run, not example by example
    prompts, failed, where = [], [], {}
    embed = _embedder_for(spec.design, pool, [example for _, example in todo])
    for position, example in todo:
        try:
            prompt = render_for_model(
                loaded,
                spec.design,
                example,
                pool,
                max_new_tokens=spec.settings.max_new_tokens,
                embed=embed,
            )
        except PromptLabError as exc:
            failed.append(_failed_result(position, example, str(exc)))
            continue
        prompts.append(replace(prompt, example_id=example.id))
        where[example.id] = (position, example.reference)
    if failed:
        with session_scope(db_url) as session:
            done = queries.add_results(session=session, experiment_id=experiment_id, results=failed)
    return prompts, where, done


def _embedder_for(
    design: PromptDesign, pool: Sequence[Example], examples: Sequence[Example]
) -> Embed | None:
    """For designs that pick or order shots by similarity: the pool (cached across runs) and
    every input embedded up front, in batches, so selecting shots per example only reads them."""
    if not design.needs_embeddings:
        return None
    embedder = embeddings.get_embedder()
    embedder.embed_cached([ex.input for ex in (*pool, *examples)])
    return embedder.embed_cached


def _failed_result(position: int, example: Example, error: str) -> dict[str, Any]:
    return dict(
        example_key=example.id,
        position=position,
        prompt="",
        output="",
        reference=example.reference,
        finish_reason="error",
        error=error,
    )


def store_outputs(
    experiment_id: int,
    spec: RunSpec,
    prompts: list[RenderedPrompt],
    outputs: list[Output],
    where: Where,
    db_url: str | None,
    confidences: list[dict[str, Any]] | None = None,
) -> int:
    """Score outputs on the run's metrics and checks and store them; the count of finished
    examples."""
    refs = [where[p.example_id][1] for p in prompts]
    scores = score(spec, [out.text for out in outputs], refs, [p.example_id for p in prompts])
    rows = []
    for i, (prompt, out) in enumerate(zip(prompts, outputs, strict=True)):
        position, reference = where[prompt.example_id]
        rows.append(
            dict(
                example_key=prompt.example_id,
                position=position,
                prompt=prompt.sent_text,
                output=out.text,
                reference=reference,
                **{name: scores[name][i] for name in scores if name in queries.ROUGE_COLUMNS},
                prompt_tokens=out.prompt_tokens,
                new_tokens=out.new_tokens,
                finish_reason=out.finish_reason,
                stop_string=out.stop_string,
                latency_s=out.latency_s,
                shots=list(prompt.shot_ids),
                dropped_shots=list(prompt.dropped_shot_ids),
                truncated_input_tokens=prompt.truncated_input_tokens,
                batch_size=out.batch_size,
                batch_index=out.batch_index,
                attempts=out.attempts,
                token_confidence=confidences[i] if confidences else None,
            )
        )
    others = {
        name: {p.example_id: values[i] for i, p in enumerate(prompts)}
        for name, values in scores.items()
        if name not in queries.ROUGE_COLUMNS
    }
    with session_scope(db_url) as session:
        done = queries.add_results(session=session, experiment_id=experiment_id, results=rows)
        queries.put_scores(session=session, experiment_id=experiment_id, scores=others)
        return done


def score(
    spec: RunSpec, texts: Sequence[str], refs: Sequence[str | None], keys: Sequence[str]
) -> dict[str, list[float | None]]:
    """Each score key of the run's metrics and checks: one value per output (None: unscored)."""
    examples = [{"id": key, "reference": ref} for key, ref in zip(keys, refs, strict=True)]
    return metric_set.score_outputs(
        spec.metrics, texts, refs, examples=examples, checks=spec.checks, rouge=spec.rouge
    )


def store_failures(
    experiment_id: int,
    failures: Sequence[tuple[RenderedPrompt, str, int]],
    where: Where,
    db_url: str | None,
) -> int:
    """Store examples whose prompt was sent but got no answer: (prompt, error, attempts) each;
    the count of finished examples."""
    rows: list[dict[str, Any]] = [
        dict(
            example_key=prompt.example_id,
            position=where[prompt.example_id][0],
            prompt=prompt.sent_text,
            output="",
            reference=where[prompt.example_id][1],
            prompt_tokens=prompt.prompt_tokens or 0,
            finish_reason="error",
            error=error[:2000],
            attempts=attempts,
            shots=list(prompt.shot_ids),
            dropped_shots=list(prompt.dropped_shot_ids),
            truncated_input_tokens=prompt.truncated_input_tokens,
        )
        for prompt, error, attempts in failures
    ]
    with session_scope(db_url) as session:
        return queries.add_results(session=session, experiment_id=experiment_id, results=rows)


def finish(experiment_id: int, spec: RunSpec, db_url: str | None) -> None:
    """Mark an experiment completed, with the summary of every result it holds."""
    with session_scope(db_url) as session:
        results = queries.results_of(session=session, experiment_id=experiment_id)
        queries.update_experiment(
            session=session,
            experiment_id=experiment_id,
            status="completed",
            finished_at=utcnow(),
            aggregates=aggregate(session, experiment_id, results),
        )


def aggregate(session: Any, experiment_id: int, results: Sequence[Any]) -> dict[str, Any]:
    """Per metric stored, the mean with its CI (a check's pass rate with a Wilson interval) and,
    for BLEU and chrF, the corpus-level score; and the run's token and finish statistics."""
    summary: dict[str, Any] = {"n": len(results)}
    generated = [r for r in results if r.finish_reason != "error"]
    summary["n_failed"] = len(results) - len(generated)
    names = [
        *queries.ROUGE_COLUMNS,
        *queries.metrics_stored(session=session, experiment_ids=[experiment_id]),
    ]
    scored: set[str] = set()
    for name in names:
        values = queries.scores_by_key(session=session, experiment_id=experiment_id, metric=name)
        if values:
            summary[name] = compare.summarise(name, list(values.values()))
            scored |= set(values)
    summary["n_scored"] = len(scored)
    with_reference = [r for r in generated if r.reference is not None]
    for name, value in metric_set.corpus_scores(
        [m for m in metric_set.BUILTIN if m in summary],
        [r.output for r in with_reference],
        [r.reference for r in with_reference],
    ).items():
        summary[name]["corpus"] = value
    sent = [r for r in generated if r.attempts]  # attempts 0: copied (runs.reuse), not sent
    if generated:
        summary["new_tokens"] = sum(r.new_tokens for r in sent)  # for its throughput
        summary["mean_new_tokens"] = sum(r.new_tokens for r in generated) / len(generated)
        summary["mean_prompt_tokens"] = sum(r.prompt_tokens for r in generated) / len(generated)
    if sent:
        summary["mean_latency_s"] = sum(r.latency_s for r in sent) / len(sent)
    if len(sent) < len(generated):
        summary["n_copied"] = len(generated) - len(sent)
    reasons: dict[str, int] = {}
    for r in results:
        reasons[r.finish_reason] = reasons.get(r.finish_reason, 0) + 1
    summary["finish_reasons"] = reasons
    summary["ci"] = {"confidence": 0.95, "resamples": 1000, "seed": 0, "method": "percentile"}
    return summary


def update(db_url: str | None, experiment_id: int, **fields: Any) -> None:
    with session_scope(db_url) as session:
        queries.update_experiment(session=session, experiment_id=experiment_id, **fields)


def library_versions(*, served: bool = False) -> dict[str, str]:
    """The versions that decide a run's outputs, recorded with it (and the HTTP client's, for a
    run on an endpoint)."""
    import sqlalchemy

    versions = {
        **models.library_versions(),
        "python": platform.python_version(),
        "sqlalchemy": sqlalchemy.__version__,
    }
    if served:
        import httpx

        versions["httpx"] = httpx.__version__
    return versions
