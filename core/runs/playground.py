"""Playground runs: one prompt streamed to the page, then stored as a one-example experiment,
so that it can be found, re-run, compared and exported like any other."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

from core.datasets.data import Example
from core.errors import PromptLabError
from core.generation.confidence import encode_answer
from core.generation.local import Output
from core.generation.settings import GenerationSettings
from core.models.loading import LoadedModel
from core.policy import Actor, local_actor
from core.prompting.design import PromptDesign, RenderedPrompt
from core.runs import experiments
from core.runs import served as served_runs
from core.served import llama_engine
from core.served.client import Client
from core.served.endpoint import Endpoint, check_run
from core.served.stream import ServedStream
from storage import queries
from storage.db import session_scope
from storage.schema import TYPED_INPUTS

TYPED_DATASET = TYPED_INPUTS  # inputs typed into the Playground, kept so that runs can re-run
LABEL = "playground"  # only a label: Playground runs are told apart by their origin
ORIGIN = "playground"


def typed_example(text: str, reference: str | None = None) -> Example:
    """An input typed by hand; its id is a hash of its content, so retyping it finds it again."""
    if not text.strip():
        raise PromptLabError("Type an input for the model, or pick one from a dataset.")
    reference = reference if reference and reference.strip() else None
    digest = hashlib.sha256(f"{text}\0{reference or ''}".encode()).hexdigest()[:12]
    return Example(f"typed-{digest}", text, reference, "eval")


def served_answer(
    endpoint: Endpoint,
    prompter: LoadedModel,
    prompt: RenderedPrompt,
    settings: GenerationSettings,
    design: PromptDesign,
) -> ServedStream:
    """The endpoint's answer to `prompt` as a stream; refuses settings it cannot honour.
    `prompter` (the tokenizer that rendered the prompt) counts the answer's tokens when the
    server does not."""
    mapping = check_run(settings, endpoint, use_chat_template=design.use_chat_template)
    client = Client(endpoint, settings, mapping)
    return ServedStream(
        client,
        prompt,
        count_tokens=lambda text: len(encode_answer(prompter, text)),
        close_client=True,
    )


class LlamaStream:
    """llama.cpp (local)'s answer to `prompt`, streamed as from an endpoint: the engine for the
    spec's GGUF model is started (or the running one taken) when the stream is read, and held
    (neither replaced nor stopped) until it ends. Settings it cannot honour, and a model that
    is no GGUF file, are refused when it is made."""

    def __init__(self, spec: experiments.RunSpec, prompter: LoadedModel, prompt: RenderedPrompt):
        self.spec, self.prompter, self.prompt = spec, prompter, prompt
        self.config = served_runs.engine_config(spec, context_window=prompter.context_window)
        check_run(
            spec.settings,
            llama_engine.EXAMPLE_ENDPOINT,
            use_chat_template=spec.design.use_chat_template,
            who=llama_engine.NAME,
        )
        self._stream: ServedStream | None = None

    def __iter__(self) -> Iterator[str]:
        with llama_engine.hold(self.config) as engine:
            self._stream = served_answer(
                engine.endpoint(), self.prompter, self.prompt, self.spec.settings, self.spec.design
            )
            yield from self._stream

    @property
    def result(self) -> Output | None:
        return self._stream.result if self._stream else None

    @property
    def counted_here(self) -> bool:
        return bool(self._stream and self._stream.counted_here)


def store_run(
    spec: experiments.RunSpec,
    example: Example,
    prompt: RenderedPrompt,
    output: Output,
    loaded: LoadedModel,
    *,
    db_url: str | None = None,
    actor: Actor | None = None,  # who ran it; None: the local user
    study_id: int | None = None,
) -> int:
    """Store one streamed run as a completed experiment (scored when there is a reference),
    marked as the Playground's, so that the list hides it unless asked. One on llama.cpp
    (local) records its engine as a run there does (runs.served.llama_recorded)."""
    if spec.dataset == TYPED_DATASET:
        with session_scope(db_url) as session:
            queries.add_example(
                session=session,
                dataset_name=TYPED_DATASET,
                example=example,
                source="inputs typed in the Playground",
                created_by=(actor or local_actor()).name,
            )
    experiment_id = experiments.create(
        spec,
        db_url=db_url,
        example_keys=[example.id],
        origin=ORIGIN,
        actor=actor,
        study_id=study_id,
    )
    recorded = None
    if spec.engine == "llama.cpp":
        config = served_runs.engine_config(spec, context_window=loaded.context_window)
        recorded = served_runs.llama_recorded(config)
    experiments.record_outputs(
        experiment_id, spec, [(example, prompt, output)], loaded, db_url=db_url, recorded=recorded
    )
    return experiment_id


def store_variants(
    specs: Sequence[experiments.RunSpec],
    example: Example,
    runs: Sequence[tuple[RenderedPrompt, Output]],
    loaded: LoadedModel,
    *,
    name: str = "Playground variants",
    db_url: str | None = None,
    actor: Actor | None = None,
) -> tuple[int, list[int]]:
    """Variants run side by side on one input, stored as one small study: an experiment per
    variant (each spec's label names it), in order. Returns (study, experiments)."""
    if not specs or len(specs) != len(runs):
        raise PromptLabError("Each variant needs its answer to be stored.")
    actor = actor or local_actor()
    with session_scope(db_url) as session:
        study_id = queries.create_study(
            session=session,
            name=name,
            base_spec=specs[0].to_dict(),
            variations={"variant": [spec.label for spec in specs]},
            created_by=actor.name,
        )
    ids = [
        store_run(
            spec, example, prompt, output, loaded, db_url=db_url, actor=actor, study_id=study_id
        )
        for spec, (prompt, output) in zip(specs, runs, strict=True)
    ]
    return study_id, ids
