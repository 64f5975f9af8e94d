"""What each `python -m core` command does: thin calls into core and storage, printed plainly.
Every check that can fail runs before anything is stored, so a refused command changes nothing."""

from __future__ import annotations

import json
import logging
import shlex
import sys
import time
from argparse import Namespace
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from core import experiments, export, models, sweeps
from core.data import BUILTIN_NAME, import_file
from core.errors import PromptLabError
from core.experiments import RunSpec
from core.models import EMBEDDED, EMBEDDED_ALIASES, ModelRequest
from core.prompts import PRESETS, select_shots
from core.scoring import RougeOptions, score_rouge
from core.served import Endpoint, check_run, probe
from core.settings import GenerationSettings
from core.sweeps import Sweep
from storage import queries
from storage.db import database_url, get_engine, session_scope
from storage.schema import ExperimentRecord, StudyRecord

EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 130
log = logging.getLogger(__name__)
ROUGE = queries.ROUGE_COLUMNS
# CLI option → sweep dimension, in the order a sweep's labels name them.
SWEEPABLE = {
    "model": "model",
    "instruction": "instruction",
    "format": "example_format",
    "selection": "selection",
    "selection_seed": "selection_seed",
    "mmr_lambda": "mmr_lambda",
    "shot_order": "shot_order",
    "shots": "shots",
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "max_new_tokens": "max_new_tokens",
    "repetition_penalty": "repetition_penalty",
    "seed": "seed",
}
TABLES = {
    "summary": export.summary_table,
    "per_example": export.per_example_table,
    "wide": export.wide_table,
}


def open_db(url: str | None) -> None:
    """Open (and migrate) the database now, so a bad URL is one clear error and not a crash."""
    try:
        get_engine(url)
    except PromptLabError:
        raise
    except Exception as exc:  # a missing driver, an unknown dialect, a file that is no database
        message = f"Cannot open the database {_shown_url(url)}: {_first_line(exc)}"
        raise PromptLabError(message) from exc


def quiet_libraries() -> None:
    """No progress bars or deprecation chatter from transformers: stderr is for our messages."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


# Datasets ------------------------------------------------------------------------------------


def datasets_import(args: Namespace) -> int:
    if not args.name.strip():
        raise PromptLabError("--name must not be empty.")
    dataset = import_file(
        args.file,
        name=args.name.strip(),
        input_column=args.input_col,
        reference_column=args.reference_col,
        id_column=args.id_col,
        split_column=args.split_col,
    )
    with session_scope(args.db_url) as session:
        queries.save_dataset(session=session, dataset=dataset, replace=args.replace)
    counts: dict[str, int] = {}
    for example in dataset.examples:
        if example.split:
            counts[example.split] = counts.get(example.split, 0) + 1
    print(f"imported {len(dataset.examples)} examples as '{dataset.name}' ({_splits(counts)})")
    return EXIT_OK


def datasets_list(args: Namespace) -> int:
    experiments.get_dataset(BUILTIN_NAME, db_url=args.db_url)  # always there, stored on first use
    with session_scope(args.db_url) as session:
        summaries = queries.list_datasets(session=session)
    rows = [(s.name, s.examples, s.with_reference, _splits(s.splits)) for s in summaries]
    _print_table(("name", "examples", "with reference", "splits"), rows)
    return EXIT_OK


def datasets_delete(args: Namespace) -> int:
    with session_scope(args.db_url) as session:
        queries.delete_dataset(session=session, name=args.name)
        users = queries.list_experiments(session=session, dataset=args.name)
    note = f"; {len(users)} experiment(s) used it and cannot be resumed or re-run" if users else ""
    print(f"deleted dataset '{args.name}'{note}")
    return EXIT_OK


def _splits(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counts.items()) or "no splits"


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
        if spec.endpoint is not None:  # refused settings stop here, before anything is stored
            mapping = check_run(
                spec.settings,
                spec.endpoint,
                use_chat_template=spec.design.use_chat_template,
                token_confidence=spec.token_confidence,
            )
            notes.extend(mapping.approximate)
    for note in dict.fromkeys(notes):
        share = f" ({notes.count(note)} of {len(specs)} experiments)" if len(specs) > 1 else ""
        print(f"note: {note}{share}", file=sys.stderr)


def build_sweep(args: Namespace) -> Sweep:
    """The base spec with every single value set, and the options with several as dimensions."""
    spec, variations = base_spec(args), {}
    for option, key in SWEEPABLE.items():
        values = _values(key, getattr(args, option))
        if values and len(values) == 1:
            spec = sweeps.vary(spec, key, values[0])
        elif values:
            variations[key] = values
    return Sweep(spec, variations, args.name or "")


def base_spec(args: Namespace) -> RunSpec:
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
        model=ModelRequest(EMBEDDED, device=args.device, dtype=args.dtype),
        rouge=RougeOptions(use_stemmer=False) if args.no_stem else RougeOptions.lab(),
        batch_size=args.batch_size,
        token_confidence=args.token_confidence,
        label=args.name or "",
        endpoint=endpoint_of(args),
    )


def endpoint_of(args: Namespace) -> Endpoint | None:
    if not args.endpoint:
        if args.served_model:
            raise PromptLabError("--served-model needs --endpoint, the server's base URL.")
        return None
    if not args.served_model:
        raise PromptLabError("--endpoint needs --served-model, the model's name on the server.")
    return Endpoint(
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


def _values(key: str, given: str | list[str] | None) -> tuple[Any, ...] | None:
    if given is None:
        return None
    if isinstance(given, list):  # repeatable text options: a comma belongs to the text
        return tuple(map(unescape, given))
    values = sweeps.parse_values(key, given)
    return tuple(map(model_id, values)) if key == "model" else values


def unescape(text: str) -> str:
    """`\\n` and `\\t` as typed in a shell become a newline and a tab."""
    return text.replace("\\n", "\n").replace("\\t", "\t")


def model_id(name: str) -> str:
    return EMBEDDED if name.strip() in EMBEDDED_ALIASES else name.strip()


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
    for request in dict.fromkeys(spec.model for spec in specs if spec.endpoint):
        models.prompt_tokenizer(request)
    local = [spec.model for spec in specs if spec.endpoint is None]
    for request in reversed(list(dict.fromkeys(local))):
        models.get_model(request)


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
    scores = " ".join(f"{n} {aggregates[n]['mean']:.3f}" for n in ROUGE if n in aggregates)
    failed = aggregates.get("n_failed")
    extra = f", {failed} failed" if failed else ""
    label = f"  {_short(record.label, 80)}" if record.label else ""  # labels may hold newlines
    tail = f"({record.n_done} examples{extra}, {seconds:.1f} s)"
    return f"experiment {record.id}{label}  {scores or 'not scored (no references)'}  {tail}"


# Experiments -----------------------------------------------------------------------------------


def list_experiments(args: Namespace) -> int:
    with session_scope(args.db_url) as session:
        queries.mark_stale_runs(session=session)  # a killed run shows as interrupted, not running
        records = queries.list_experiments(
            session=session,
            model=model_id(args.model) if args.model else None,
            dataset=args.dataset,
            study_id=args.study,
            status=args.status,
        )
    if not records:
        print("no experiments")
        return EXIT_OK
    headers = ("id", "status", "label", "model", "dataset", "done", "rougeL", "created (UTC)")
    rows = [
        (
            r.id,
            r.status,
            _short(r.label, 40),
            _short(r.model_id, 32, keep_end=True),
            r.dataset_name,
            f"{r.n_done}/{r.n_examples}",
            _mean(r.aggregates, "rougeL"),
            f"{r.created_at:%Y-%m-%d %H:%M}",
        )
        for r in records
    ]
    _print_table(headers, rows)
    return EXIT_OK


def show(args: Namespace) -> int:
    with session_scope(args.db_url) as session:
        record = queries.get_experiment(session=session, experiment_id=args.id)
        results = queries.results_of(session=session, experiment_id=args.id)[: max(args.results, 0)]
    for line in describe(record, results):
        print(line)
    return EXIT_OK


def describe(record: ExperimentRecord, results: Sequence[Any]) -> list[str]:
    """An experiment as lines: what ran, how it scored, and its first results."""
    aggregates = record.aggregates or {}
    stem = "on" if record.spec.get("rouge", {}).get("use_stemmer") else "off"
    lines = [
        f"experiment {record.id}  {record.status}  {_short(record.label, 80)}".rstrip(),
        f"  dataset   {record.dataset_name}, split {record.split or 'all'}, "
        f"{record.n_done}/{record.n_examples} examples done",
        _model_line(record),
        f"  study     {record.study_id if record.study_id is not None else '–'}",
        f"  created   {record.created_at:%Y-%m-%d %H:%M:%S}",
        "  design    " + _pairs(record.design),
        "  settings  " + _pairs(record.settings),
    ]
    if record.error:
        lines.append(f"  error     {_short(record.error, 200)}")
    if any(n in aggregates for n in ROUGE):
        ci = aggregates.get("ci", {})
        lines.append(
            f"ROUGE: mean [{ci.get('confidence', 0.95):.0%} bootstrap CI] over "
            f"{aggregates.get('n_scored')} scored, stemmer {stem}"
        )
        for name in (n for n in ROUGE if n in aggregates):
            stats = aggregates[name]
            lines.append(
                f"  {name:<9} {stats['mean']:.3f} [{stats['ci_low']:.3f}, {stats['ci_high']:.3f}]"
            )
    reasons = aggregates.get("finish_reasons") or {}
    if reasons:
        lines.append("finish reasons: " + ", ".join(f"{k} {v}" for k, v in reasons.items()))
    if results:
        lines.append(f"first {len(results)} result(s):")
    for r in results:
        score = f"rougeL {r.rougeL:.3f}" if r.rougeL is not None else "not scored"
        lines.append(f"  [{r.position}] {r.example_key}  {score}  {r.finish_reason}")
        lines.append(f"    output:    {_short(r.output or r.error or '', 160)}")
        lines.append(f"    reference: {_short(r.reference or '–', 160)}")
    return lines


def _model_line(record: ExperimentRecord) -> str:
    if record.backend == "served":
        return f"  model     served by {record.endpoint}; prompts in {record.model_id}'s format"
    return f"  model     {record.model_id} ({record.device or '?'}, {record.dtype or '?'})"


def delete(args: Namespace) -> int:
    ids = list(dict.fromkeys(args.ids))
    listed = ", ".join(map(str, ids))
    with session_scope(args.db_url) as session:
        found = {r.id for r in queries.list_experiments(session=session, ids=ids)}
    missing = [i for i in ids if i not in found]
    if missing:
        raise PromptLabError(f"There is no experiment {', '.join(map(str, missing))}.")
    if not args.yes and not confirm(f"Delete experiment(s) {listed} and their results? [y/N] "):
        print("nothing deleted", file=sys.stderr)
        return EXIT_ERROR
    with session_scope(args.db_url) as session:
        queries.delete_experiments(session=session, experiment_ids=ids)
    print(f"deleted experiment(s) {listed}")
    return EXIT_OK


def confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise PromptLabError("Deleting needs confirmation: add --yes (stdin is not a terminal).")
    try:
        return input(question).strip().lower() in ("y", "yes")
    except EOFError:
        return False


# Export and scoring ----------------------------------------------------------------------------


def compare_experiments(args: Namespace) -> int:
    from core.cli_compare import compare_experiments as run

    return run(args)


def export_csv(args: Namespace) -> int:
    with session_scope(args.db_url) as session:
        ids = _export_ids(session, args)
        frame = TABLES[args.table](session=session, experiment_ids=ids)
    try:
        export.write_csv(frame, args.output, bom=args.bom)
    except OSError as exc:
        raise PromptLabError(f"Cannot write '{args.output}': {exc.strerror or exc}.") from exc
    print(f"wrote {len(frame)} row(s) of the {args.table.replace('_', '-')} table to {args.output}")
    return EXIT_OK


def _export_ids(session: Any, args: Namespace) -> list[int]:
    if args.ids and args.study is not None:
        raise PromptLabError("Give experiment ids or --study, not both.")
    if args.study is None:
        if not args.ids:
            raise PromptLabError("Give the experiment ids to export, or --study ID.")
        return list(args.ids)
    if session.get(StudyRecord, args.study) is None:
        raise PromptLabError(f"There is no study {args.study}.")
    found = queries.list_experiments(session=session, study_id=args.study)
    if not found:
        raise PromptLabError(f"Study {args.study} has no experiments left.")
    return sorted(r.id for r in found)


def score_text(args: Namespace) -> int:
    """ROUGE of two plain-text files, line i of one against line i of the other, as JSON."""
    predictions, references = _lines(args.predictions), _lines(args.references)
    report = score_rouge(predictions, references, options=RougeOptions(use_stemmer=args.stem))
    summary: dict[str, Any] = {"n": report.n, "use_stemmer": args.stem}
    summary |= {name: asdict(stats) for name, stats in report.aggregates.items()}
    summary |= {"confidence": report.confidence, "resamples": report.resamples, "seed": report.seed}
    print(json.dumps(summary, indent=2))
    return EXIT_OK


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise PromptLabError(f"Cannot read '{path}': {exc.strerror or exc}.") from exc
    except UnicodeDecodeError as exc:
        raise PromptLabError(f"'{path}' is not UTF-8 text (byte {exc.start}).") from exc


# Printing --------------------------------------------------------------------------------------


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(c) for c in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _short(text: str, width: int, *, keep_end: bool = False) -> str:
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    return "…" + text[-(width - 1) :] if keep_end else text[: width - 1] + "…"


def _pairs(values: dict[str, Any]) -> str:
    return " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in values.items())


def _mean(aggregates: dict[str, Any] | None, name: str) -> str:
    stats = (aggregates or {}).get(name)
    return f"{stats['mean']:.3f}" if stats else "–"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return _short(text[0], 200) if text else type(exc).__name__


def _shown_url(url: str | None) -> str:
    from sqlalchemy.engine import make_url

    full = database_url(url)
    try:
        return f"'{make_url(full).render_as_string(hide_password=True)}'"
    except Exception:  # unparseable: shown as given, there is no password to hide in it
        return f"'{full}'"
