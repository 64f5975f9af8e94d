"""What the `python -m core` commands do, running aside (`cli_runs`) and compare (`cli_compare`):
thin calls into core and storage, printed plainly.
Every check that can fail runs before anything is stored, so a refused command changes nothing."""

from __future__ import annotations

import json
import logging
import sys
from argparse import Namespace
from collections.abc import Sequence
from typing import Any

from core.datasets.data import BUILTIN_NAME, SplitRoles, import_file
from core.errors import PromptLabError
from core.evaluation.compare import is_score
from core.models.locating import EMBEDDED, EMBEDDED_ALIASES
from core.policy import local_user
from core.reporting import export, judgement_export
from core.runs import experiments
from storage import queries
from storage.db import database_url, get_engine, session_scope
from storage.schema import ExperimentRecord, StudyRecord

EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 130
log = logging.getLogger(__name__)
ROUGE = queries.ROUGE_COLUMNS
TABLES = {
    "summary": export.summary_table,
    "per_example": export.per_example_table,
    "wide": export.wide_table,
    "ratings": judgement_export.ratings_table,
    "choices": judgement_export.choices_table,
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
        split_roles=_split_roles(args),
    )
    with session_scope(args.db_url) as session:
        queries.save_dataset(
            session=session, dataset=dataset, replace=args.replace, created_by=local_user()
        )
    counts: dict[str, int] = {}
    for example in dataset.examples:
        if example.split:
            counts[example.split] = counts.get(example.split, 0) + 1
    print(f"imported {len(dataset.examples)} examples as '{dataset.name}' ({_splits(counts)})")
    return EXIT_OK


def _split_roles(args: Namespace) -> SplitRoles | None:
    """The roles --shots-split and --eval-split give; None (guess them) when neither is given."""
    if args.shots_split is None and args.eval_split is None:
        return None
    if args.split_col is None:
        raise PromptLabError("--shots-split and --eval-split need --split-col.")
    return SplitRoles(_listed(args.shots_split), _listed(args.eval_split))


def _listed(text: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (text or "").split(",") if v.strip())


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


def model_id(name: str) -> str:
    return EMBEDDED if name.strip() in EMBEDDED_ALIASES else name.strip()


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
            short(r.label, 40),
            short(r.model_id, 32, keep_end=True),
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
    from core.evaluation.judgements import rating_summary

    with session_scope(args.db_url) as session:
        record = queries.get_experiment(session=session, experiment_id=args.id)
        results = queries.results_of(session=session, experiment_id=args.id)[: max(args.results, 0)]
        ratings = queries.ratings_of(session=session, experiment_ids=[args.id])
        choices = queries.choices_of(session=session, experiment_ids=[args.id])
    for line in describe(record, results):
        print(line)
    if ratings:  # people's judgement, when there is some
        print(f"ratings: {rating_summary(ratings)[args.id].sentence()}")
    if choices:
        others = sorted({c.experiment_a + c.experiment_b - args.id for c in choices})
        against = ", ".join(map(str, others))
        print(f"blind choices: {len(choices)} (against experiment {against})")
    return EXIT_OK


def _other_scores(aggregates: dict[str, Any]) -> list[str]:
    """The summary of each metric beyond ROUGE: mean [95% CI], and corpus level where it has one
    (BLEU, chrF); a check's pass rate has a Wilson interval."""
    names = [n for n, v in aggregates.items() if n not in ROUGE and is_score(v)]
    if not names:
        return []
    lines = ["other scores: mean [95% CI] (a check: pass rate [Wilson CI])"]
    for name in names:
        stats = aggregates[name]
        corpus = f"  corpus {stats['corpus']:.3f}" if stats.get("corpus") is not None else ""
        lines.append(
            f"  {name:<9} {stats['mean']:.3f} [{stats['ci_low']:.3f}, {stats['ci_high']:.3f}]"
            f"  n {stats.get('n', '?')}{corpus}"
        )
    return lines


def describe(record: ExperimentRecord, results: Sequence[Any]) -> list[str]:
    """An experiment as lines: what ran, how it scored, and its first results."""
    aggregates = record.aggregates or {}
    stem = "on" if record.spec.get("rouge", {}).get("use_stemmer") else "off"
    lines = [
        f"experiment {record.id}  {record.status}  {short(record.label, 80)}".rstrip(),
        f"  dataset   {record.dataset_name}, split {record.split or 'all'}, "
        f"{record.n_done}/{record.n_examples} examples done",
        _model_line(record),
        f"  study     {record.study_id if record.study_id is not None else '–'}",
        f"  created   {record.created_at:%Y-%m-%d %H:%M:%S}",
        "  design    " + _pairs(record.design),
        "  settings  " + _pairs(record.settings),
    ]
    if record.error:
        lines.append(f"  error     {short(record.error, 200)}")
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
    lines += _other_scores(aggregates)
    reasons = aggregates.get("finish_reasons") or {}
    if reasons:
        lines.append("finish reasons: " + ", ".join(f"{k} {v}" for k, v in reasons.items()))
    if results:
        lines.append(f"first {len(results)} result(s):")
    for r in results:
        score = f"rougeL {r.rougeL:.3f}" if r.rougeL is not None else "not scored"
        lines.append(f"  [{r.position}] {r.example_key}  {score}  {r.finish_reason}")
        lines.append(f"    output:    {short(r.output or r.error or '', 160)}")
        lines.append(f"    reference: {short(r.reference or '–', 160)}")
    return lines


def _model_line(record: ExperimentRecord) -> str:
    if record.backend == "served":
        return f"  model     served by {record.endpoint}; prompts in {record.model_id}'s format"
    if record.backend == "llama.cpp":
        versions = record.library_versions or {}
        digest = versions.get("gguf_sha256", "?")[:16]
        return (
            f"  model     {record.model_id} on {record.endpoint}; xllamacpp "
            f"{versions.get('xllamacpp', '?')}, GGUF sha256 {digest}…"
        )
    return f"  model     {record.model_id} ({record.device or '?'}, {record.dtype or '?'})"


def delete(args: Namespace) -> int:
    ids = list(dict.fromkeys(args.ids))
    listed = ", ".join(map(str, ids))
    with session_scope(args.db_url) as session:  # refused before asking: unknown or running
        experiments.check_deletable(session=session, experiment_ids=ids)
    if not args.yes and not confirm(f"Delete experiment(s) {listed} and their results? [y/N] "):
        print("nothing deleted", file=sys.stderr)
        return EXIT_ERROR
    experiments.delete(ids, db_url=args.db_url)
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


# Printing --------------------------------------------------------------------------------------


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(c) for c in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def short(text: str, width: int, *, keep_end: bool = False) -> str:
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
    return short(text[0], 200) if text else type(exc).__name__


def _shown_url(url: str | None) -> str:
    from sqlalchemy.engine import make_url

    full = database_url(url)
    try:
        return f"'{make_url(full).render_as_string(hide_password=True)}'"
    except Exception:  # unparseable: shown as given, there is no password to hide in it
        return f"'{full}'"
