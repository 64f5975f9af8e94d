"""`python -m core run`, `rerun`, `resume` and `retry-failed`: building the specs from the
options, loading models before anything is stored, and following the run on the terminal."""

from __future__ import annotations

import logging
import shlex
import sys
import time
from argparse import Namespace
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import func, select

from core.cli.commands import EXIT_INTERRUPTED, EXIT_OK, model_id, short
from core.cli.metrics import scoring_of
from core.errors import PromptLabError
from core.evaluation.scoring import RougeOptions
from core.generation.settings import GenerationSettings
from core.models import access as model_access
from core.models import registry as models
from core.models.loading import ModelRequest
from core.models.locating import EMBEDDED
from core.prompting.design import PRESETS, select_shots
from core.prompting.rendering import check_for_model
from core.runs import experiments, sweeps
from core.runs import limits as run_policy
from core.runs import served as served_runner
from core.runs.experiments import RunSpec
from core.runs.sweeps import Sweep
from core.served import llama_engine
from core.served.endpoint import Endpoint, check_run, probe
from storage import queries
from storage.db import session_scope
from storage.schema import ExperimentRecord

log = logging.getLogger(__name__)

# CLI option → sweep dimension, in the order a sweep's labels name them.
SWEEPABLE = {
    "prompt": "prompt",
    "model": "model",
    "instruction": "instruction",
    "format": "example_format",
    "selection": "selection",
    "selection_seed": "selection_seed",
    "mmr_lambda": "mmr_lambda",
    "shot_order": "shot_order",
    "shot_format": "shot_format",
    "instruction_role": "instruction_role",
    "shots": "shots",
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "max_new_tokens": "max_new_tokens",
    "repetition_penalty": "repetition_penalty",
    "seed": "seed",
}

# Running -------------------------------------------------------------------------------------


def run(args: Namespace) -> int:
    """One experiment, or a study when any option lists several values."""
    sweep = build_sweep(args)
    specs = sweep.expand()
    dataset = experiments.get_dataset(sweep.base.dataset, db_url=args.db_url)
    chosen, pool = experiments.examples_for(sweep.base, dataset)
    for spec in specs:  # too few shots in the pool would otherwise fail every example
        select_shots(spec.design, pool, chosen[0])
    _print_notes(specs)
    _load_models(specs)
    watch = Watch(args)
    if not sweep.variations:
        return watch.guard(lambda: _run_single(specs[0], watch))
    return watch.guard(lambda: _run_study(sweep, watch))


def _print_notes(specs: Sequence[RunSpec]) -> None:
    """Settings that greedy decoding ignores, once each, with how many experiments they affect."""
    notes = [note for spec in specs for note in spec.settings.ignored()]
    for spec in specs:
        engine = spec.engine == "llama.cpp"
        if spec.endpoint is not None or engine:  # refused settings stop here, before storing
            mapping = check_run(
                spec.settings,
                llama_engine.EXAMPLE_ENDPOINT if engine else spec.endpoint,
                use_chat_template=spec.design.use_chat_template,
                token_confidence=spec.token_confidence,
                who=llama_engine.NAME if engine else None,
            )
            notes.extend(mapping.approximate)
    for note in dict.fromkeys(notes):
        share = f" ({notes.count(note)} of {len(specs)} experiments)" if len(specs) > 1 else ""
        print(f"note: {note}{share}", file=sys.stderr)


def build_sweep(args: Namespace) -> Sweep:
    """The base spec with every single value set, and the options with several as dimensions."""
    spec, variations = base_spec(args), {}
    for option, key in SWEEPABLE.items():
        values = _values(key, getattr(args, option), args.db_url)
        if values and len(values) == 1:
            spec = sweeps.vary(spec, key, values[0])
        elif values:
            variations[key] = values
    return Sweep(spec, variations, args.name or "")


def base_spec(args: Namespace) -> RunSpec:
    model_access.check_remote_code(args.trust_remote_code)  # before anything else is read
    design = PRESETS[args.preset]
    if args.no_chat_template:
        design = design.with_(use_chat_template=False)
    return RunSpec(
        dataset=args.dataset,
        split=None if args.split == "all" else args.split,
        limit=_limit(args.limit),
        offset=args.offset,
        design=design,
        settings=GenerationSettings(stop=tuple(map(unescape, args.stop or ()))),
        model=ModelRequest(
            EMBEDDED,
            device=args.device,
            dtype=args.dtype,
            trust_remote_code=args.trust_remote_code,
        ),
        rouge=RougeOptions(use_stemmer=False) if args.no_stem else RougeOptions.lab(),
        batch_size=args.batch_size,
        token_confidence=args.token_confidence,
        label=args.name or "",
        endpoint=endpoint_of(args),
        engine=args.engine,
        slots=args.slots,
        **scoring_of(args),
    )


def endpoint_of(args: Namespace) -> Endpoint | None:
    if not args.endpoint:
        if args.served_model:
            raise PromptLabError("--served-model needs --endpoint, the server's base URL.")
        return None
    if not args.served_model:
        raise PromptLabError("--endpoint needs --served-model, the model's name on the server.")
    endpoint = Endpoint(
        base_url=args.endpoint,
        model=args.served_model,
        api=args.api,
        server=args.server,
        api_key_env=args.api_key_env,
        concurrency=args.concurrency,
        timeout_s=args.request_timeout,
        max_retries=args.max_retries,
        error_budget=args.error_budget,
    )
    endpoint.check_policy()  # the operator's hosts and key variables, before any request
    return endpoint


def _values(
    key: str, given: str | list[str] | None, db_url: str | None = None
) -> tuple[Any, ...] | None:
    if given is None:
        return None
    if isinstance(given, list):  # repeatable text options: a comma belongs to the text
        return tuple(map(unescape, given))
    values = sweeps.parse_values(key, given, db_url=db_url)
    return tuple(map(model_id, values)) if key == "model" else values


def unescape(text: str) -> str:
    """`\\n` and `\\t` as typed in a shell become a newline and a tab."""
    return text.replace("\\n", "\n").replace("\\t", "\t")


def _limit(text: str) -> int | None:
    if text.strip().lower() == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise PromptLabError(f"--limit takes a whole number or 'all'; got '{text}'.") from None


def _load_models(specs: Sequence[RunSpec]) -> None:
    """Load every model before anything is stored; the first to run is loaded last and stays.
    A served run needs only the tokenizer here, and an endpoint that answers."""
    for endpoint in dict.fromkeys(spec.endpoint for spec in specs if spec.endpoint):
        probe(endpoint)
    for spec in specs:  # llama.cpp (local) takes GGUF models only, refused before storing
        if spec.engine == "llama.cpp":
            served_runner.engine_config(spec)
    served = [spec.model for spec in specs if _not_here(spec)]
    for request in dict.fromkeys(served):
        models.prompt_tokenizer(request)
    local = [spec.model for spec in specs if not _not_here(spec)]
    for request in reversed(list(dict.fromkeys(local))):
        models.get_model(request)
    for spec in specs:  # a design the model cannot take is refused before anything is stored
        loaded = (
            models.prompt_tokenizer(spec.model) if _not_here(spec) else models.get_model(spec.model)
        )
        check_for_model(loaded, spec.design)


def _not_here(spec: RunSpec) -> bool:
    """Whether the transformers model stays unloaded: another engine generates."""
    return spec.endpoint is not None or spec.engine == "llama.cpp"


def _run_single(spec: RunSpec, watch: Watch) -> None:
    experiment_id = experiments.create(spec, db_url=watch.db_url)
    watch.start(experiment_id)
    experiments.execute(experiment_id, db_url=watch.db_url, on_progress=watch.progress)
    watch.finish()


def _run_study(sweep: Sweep, watch: Watch) -> None:
    def next_experiment(_number: int, experiment_id: int, _spec: RunSpec) -> None:
        watch.finish()  # run_sweep reports only starts: the previous one has just finished
        watch.start(experiment_id)

    sweeps.run_sweep(
        sweep, db_url=watch.db_url, on_experiment=next_experiment, on_progress=watch.progress
    )
    watch.finish()


def rerun(args: Namespace) -> int:
    with session_scope(args.db_url) as session:
        record = queries.get_experiment(session=session, experiment_id=args.id)
        spec, keys = RunSpec.from_dict(record.spec), list(record.example_keys)
        newest = session.scalar(select(func.max(ExperimentRecord.id)))
    dataset = experiments.get_dataset(spec.dataset, db_url=args.db_url)
    missing = sorted(set(keys) - {ex.id for ex in dataset.examples})
    if missing:
        raise PromptLabError(f"Dataset '{spec.dataset}' no longer has example(s) {missing[:5]}.")
    run_policy.check_spec(spec, len(keys))  # today's policy, whatever it was when it ran
    _load_models([spec])
    watch = Watch(args, after=newest)

    def work() -> None:
        watch.start(None)
        watch.current = experiments.rerun(args.id, db_url=args.db_url, on_progress=watch.progress)
        watch.finish()

    return watch.guard(work)


def resume(args: Namespace) -> int:
    """Finish each experiment in turn, in the order given."""
    return _each(args, experiments.resume)


def retry_failed(args: Namespace) -> int:
    """Run each experiment's failed examples again, in the order given."""
    return _each(args, experiments.retry_failed)


def _each(args: Namespace, action: Callable[..., str]) -> int:
    watch = Watch(args)

    def work() -> None:
        for number, experiment_id in enumerate(args.ids):
            watch.start(experiment_id)
            watch.queue = args.ids[number + 1 :]
            action(experiment_id, db_url=args.db_url, on_progress=watch.progress)
            watch.finish()

    return watch.guard(work)


class Watch:
    """Follows the experiment running now: progress on a terminal, a line when it finishes, and
    on Ctrl-C or failure, how to resume it."""

    def __init__(self, args: Namespace, after: int | None = None) -> None:
        self.db_url, self.db_given = args.db_url, getattr(args, "db", None)
        self.current: int | None = None
        self.after = after  # for rerun: the new experiment is the first with a larger id
        self.queue: list[int] = []  # for resume: the ids still to come
        self.started = 0.0

    def start(self, experiment_id: int | None) -> None:
        self.current, self.started = experiment_id, time.perf_counter()

    def progress(self, done: int, total: int) -> None:
        if sys.stderr.isatty():
            sys.stderr.write(f"\r  {done}/{total} examples")
            sys.stderr.flush()

    def finish(self) -> None:
        if self.current is None:
            return
        if sys.stderr.isatty():
            sys.stderr.write("\r\033[K")
        with session_scope(self.db_url) as session:
            record = queries.get_experiment(session=session, experiment_id=self.current)
            print(result_line(record, time.perf_counter() - self.started), flush=True)
            failed = (record.aggregates or {}).get("n_failed")
            if failed and record.backend == "served":
                db = f" --db {shlex.quote(self.db_given)}" if self.db_given else ""
                print(
                    f"note: {failed} example(s) failed; try them again with: "
                    f"python -m core{db} retry-failed {record.id}",
                    file=sys.stderr,
                )
        self.current = None

    def guard(self, work: Callable[[], None]) -> int:
        try:
            work()
        except KeyboardInterrupt:
            if sys.stderr.isatty():
                sys.stderr.write("\n")
            print(self._resume_advice("interrupted"), file=sys.stderr)
            return EXIT_INTERRUPTED
        except Exception as exc:
            log.debug("the run stopped on an error", exc_info=True)
            if self._unfinished():
                reason = str(exc) if isinstance(exc, PromptLabError) else type(exc).__name__
                raise PromptLabError(self._resume_advice(f"failed ({reason})")) from exc
            raise
        return EXIT_OK

    def _unfinished(self) -> list[ExperimentRecord]:
        """The experiment stopped now (first) and those after it that have not run."""
        with session_scope(self.db_url) as session:
            if self.current is None and self.after is not None:  # rerun's new experiment
                first_new = select(func.min(ExperimentRecord.id))
                self.current = session.scalar(first_new.where(ExperimentRecord.id > self.after))
            record = session.get(ExperimentRecord, self.current) if self.current else None
            if record is None or record.status in ("completed", "running"):
                return []  # nothing to resume here, or another process is on it
            later = queries.list_experiments(session=session, ids=self.queue)
            if record.study_id is not None:
                later += queries.list_experiments(
                    session=session, study_id=record.study_id, status="pending"
                )
            waiting = {r.id: r for r in later if r.id != record.id and r.status != "completed"}
            return [record, *(waiting[i] for i in sorted(waiting))]

    def _resume_advice(self, what: str) -> str:
        unfinished = self._unfinished()
        if not unfinished:
            return f"{what}; nothing was stored."
        first, ids = unfinished[0], " ".join(str(r.id) for r in unfinished)
        db = f" --db {shlex.quote(self.db_given)}" if self.db_given else ""
        later = f" ({len(unfinished) - 1} not started yet)" if len(unfinished) > 1 else ""
        # retry-failed also tries the examples that failed, which resume keeps as they are.
        served = first.backend == "served"
        action, command = ("retry", "retry-failed") if served else ("resume", "resume")
        return (
            f"experiment {first.id} {what} after {first.n_done} of {first.n_examples} examples"
            f"{later}; {action} with: python -m core{db} {command} {ids}"
        )


def result_line(record: ExperimentRecord, seconds: float) -> str:
    """`experiment 12  shots=1  rouge1 0.312 … (20 examples, 41.2 s)`."""
    aggregates = record.aggregates or {}
    scores = " ".join(
        f"{n} {aggregates[n]['mean']:.3f}" for n in queries.ROUGE_COLUMNS if n in aggregates
    )
    failed = aggregates.get("n_failed")
    extra = f", {failed} failed" if failed else ""
    label = f"  {short(record.label, 80)}" if record.label else ""  # labels may hold newlines
    tail = f"({record.n_done} examples{extra}, {seconds:.1f} s)"
    return f"experiment {record.id}{label}  {scores or 'not scored (no references)'}  {tail}"
