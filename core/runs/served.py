"""An experiment run on a served endpoint: prompts rendered with the model's own tokenizer and
template, sent C at a time, stored as they come back; failed examples are stored as failed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from core.errors import PromptLabError
from core.generation.local import Output
from core.models import locating
from core.models import registry as models
from core.prompting.design import RenderedPrompt
from core.runs import recording
from core.runs import reuse as copying
from core.runs.spec import RunSpec
from core.served import llama_engine
from core.served.client import Client, Failure, run_concurrently
from core.served.endpoint import check_run
from storage.schema import utcnow

# What came back is stored (and scored) in groups: at least this often, so progress shows and a
# crash loses little, and at most this many at once (scoring costs ~0.1 s a call, not per answer).
FLUSH_EVERY_S = 1.0
FLUSH_EVERY_N = 16
Tokens = Callable[[int], None]  # as runs.experiments.Tokens (which imports this module)


def execute_llama(
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
    """llama.cpp (local): the engine for the spec's GGUF model started (or the running one
    taken), then the run sent to it as to a served endpoint; recorded as backend llama.cpp with
    the GGUF's SHA-256, the engine's version and its slot count."""
    prompter = models.prompt_tokenizer(spec.model)
    config = engine_config(spec, context_window=prompter.context_window)
    check_run(  # refused before a server is started for nothing
        spec.settings,
        llama_engine.EXAMPLE_ENDPOINT,
        use_chat_template=spec.design.use_chat_template,
        token_confidence=spec.token_confidence,
        who=llama_engine.NAME,
    )
    with llama_engine.hold(config) as engine:
        return execute(
            experiment_id,
            replace(spec, engine="transformers", slots=None, endpoint=engine.endpoint()),
            todo,
            pool,
            done,
            total,
            db_url,
            on_progress,
            should_stop,
            recorded=llama_recorded(config),
            on_tokens=on_tokens,
            reuse=reuse,
        )


def llama_recorded(config: llama_engine.EngineConfig) -> dict:
    """What an experiment on llama.cpp (local) records of where it ran: the backend, the engine
    with its slots and file, and the GGUF's SHA-256 and the engine's version beside the rest."""
    versions = recording.library_versions(served=True) | {
        "xllamacpp": llama_engine.engine_version(),
        "gguf_sha256": llama_engine.gguf_sha256(config.gguf),
        "llama_cpp_slots": str(config.slots),
    }
    return {
        "backend": "llama.cpp",
        "endpoint": f"{llama_engine.NAME}, {config.slots} slot(s), {config.gguf.name}",
        "device": "cpu",
        "library_versions": versions,
    }


def planned_engine(spec: RunSpec) -> llama_engine.EngineConfig:
    """The engine a run of `spec` on llama.cpp (local) starts, its context from the model's own
    window, as execute_llama chooses it; a model that is no GGUF file is refused first."""
    engine_config(spec)  # refused before any tokenizer is loaded for it
    return engine_config(spec, context_window=models.prompt_tokenizer(spec.model).context_window)


def engine_config(spec: RunSpec, context_window: int | None = None) -> llama_engine.EngineConfig:
    """The llama.cpp (local) engine a spec asks for; a model that is no GGUF file is refused."""
    model_id = spec.model.model_id
    if not locating.is_gguf(model_id):
        raise PromptLabError(
            f"llama.cpp (local) runs GGUF models only (the embedded model, or a .gguf file); "
            f"'{model_id}' is not one: generate with transformers instead."
        )
    return llama_engine.config_for(
        locating.gguf_path(model_id), slots=spec.slots, context_window=context_window
    )


def execute(
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
    recorded: dict | None = None,
    on_tokens: Tokens | None = None,
    reuse: bool = False,
) -> str:
    """The served backend, in the shape of the local one (experiments.execute_local);
    `recorded` replaces what the experiment records of where it ran (llama.cpp (local));
    `on_tokens` is told the new tokens of each group of answers generated and stored; `reuse`
    copies answers another experiment of the study got for the same prompt (runs.reuse)."""
    endpoint = spec.endpoint
    mapping = check_run(
        spec.settings,
        endpoint,
        use_chat_template=spec.design.use_chat_template,
        token_confidence=spec.token_confidence,
    )
    prompter = models.prompt_tokenizer(spec.model)
    where_it_ran = {
        "backend": "served",
        "endpoint": endpoint.label(),
        "device": "server",
        "library_versions": recording.library_versions(served=True),
    } | (recorded or {})
    recording.update(
        db_url, experiment_id, model_revision=prompter.revision, dtype=None, **where_it_ran
    )
    prompts, where, done = recording.render_todo(
        experiment_id, spec, todo, pool, prompter, done, db_url
    )
    if reuse:
        prompts, done = copying.copy_identical(experiment_id, spec, prompts, where, done, db_url)
    if on_progress:
        on_progress(done, total)
    client = Client(endpoint, spec.settings, mapping)
    stopped = False

    def stop_now() -> bool:
        nonlocal stopped
        stopped = stopped or bool(should_stop and should_stop())
        return stopped

    store = _Store(experiment_id, spec, where, db_url, total, on_progress, done, on_tokens)
    try:
        budget = int(endpoint.error_budget * len(prompts))
        for index, result in run_concurrently(
            client, prompts, error_budget=budget, should_stop=stop_now, on_idle=store.flush_if_due
        ):
            store.add(prompts[index], result)
    finally:
        client.close()
        store.flush()  # whatever came back before an error is kept
    done = store.done
    if stopped and done < total:
        recording.update(db_url, experiment_id, status="interrupted", finished_at=utcnow())
        return "interrupted"
    recording.finish(experiment_id, spec, db_url)
    return "completed"


class _Store:
    """Answers as they come back, stored (and scored) in groups: when 16 are waiting, or when
    one has waited a second, even if no other answer arrives meanwhile."""

    def __init__(
        self, experiment_id, spec, where, db_url, total, on_progress, done, on_tokens=None
    ) -> None:
        self.experiment_id, self.spec, self.where, self.db_url = experiment_id, spec, where, db_url
        self.total, self.on_progress, self.done = total, on_progress, done
        self.on_tokens = on_tokens  # told the new tokens of each group stored
        self.waiting: list[tuple[RenderedPrompt, Output | Failure]] = []
        self.since = time.monotonic()  # when the oldest waiting answer came back

    def add(self, prompt: RenderedPrompt, result: Output | Failure) -> None:
        if not self.waiting:
            self.since = time.monotonic()
        self.waiting.append((prompt, result))
        if len(self.waiting) >= FLUSH_EVERY_N:
            self.flush()
        else:
            self.flush_if_due()

    def flush_if_due(self) -> None:
        if self.waiting and time.monotonic() - self.since >= FLUSH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        if not self.waiting:
            return
        answered = [(p, r) for p, r in self.waiting if isinstance(r, Output)]
        failed = [(p, r) for p, r in self.waiting if isinstance(r, Failure)]
        self.waiting = []
        if answered:
            self.done = recording.store_outputs(
                self.experiment_id,
                self.spec,
                [p for p, _ in answered],
                [r for _, r in answered],
                self.where,
                self.db_url,
            )
            if self.on_tokens:
                self.on_tokens(sum(out.new_tokens for _, out in answered))
        if failed:
            self.done = recording.store_failures(
                self.experiment_id,
                [(p, f.error, f.attempts) for p, f in failed],
                self.where,
                self.db_url,
            )
        if self.on_progress:
            self.on_progress(self.done, self.total)
