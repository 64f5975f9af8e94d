"""Datasets of examples (an input and its reference): the built-in dialogue set and CSV/JSONL
imports, which are all-or-nothing: a file with bad rows is refused with their line numbers."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from core import policy
from core.errors import PromptLabError

DATA_DIR = policy.PROJECT / "data"
BUILTIN_FILE = DATA_DIR / "dialogues.jsonl"
BUILTIN_NAME = "dialogues"
INPUT_GUESSES = ("dialogue", "input", "text", "prompt", "question", "document", "source")
REFERENCE_GUESSES = ("summary", "reference", "output", "target", "answer", "label")
SHOTS_SPLITS = ("pool", "train", "training")  # split values that give the shots, when unsaid
EVAL_SPLITS = ("eval", "test", "validation", "valid", "val", "dev")  # the first present is scored
MAX_LISTED_PROBLEMS = 20
# csv refuses cells over 128 KiB by default; a long transcript is a legitimate input.
csv.field_size_limit(max(csv.field_size_limit(), 64 * 2**20))


@dataclass(frozen=True)
class Example:
    id: str
    input: str
    reference: str | None = None
    split: str | None = None  # "pool" (shots come from here) or "eval" (scored), when known


@dataclass(frozen=True)
class Dataset:
    name: str
    examples: tuple[Example, ...]
    source: str = ""
    input_column: str = "input"
    reference_column: str | None = "reference"

    def split(self, name: str) -> tuple[Example, ...]:
        """The examples of one split; a dataset without splits has them all in each."""
        if not any(ex.split for ex in self.examples):
            return self.examples
        return tuple(ex for ex in self.examples if ex.split == name)

    @property
    def pool(self) -> tuple[Example, ...]:
        return self.split("pool")

    @property
    def eval(self) -> tuple[Example, ...]:
        return self.split("eval")

    def by_id(self, example_id: str) -> Example:
        for ex in self.examples:
            if ex.id == example_id:
                return ex
        raise PromptLabError(f"Dataset '{self.name}' has no example '{example_id}'.")


@dataclass(frozen=True)
class SplitRoles:
    """Which values of a split column give the shots and which are evaluated; stored as the
    canonical "pool" and "eval", so that every page reads the dataset the same way."""

    shots: tuple[str, ...] = ()  # none: a zero-shot dataset
    evaluated: tuple[str, ...] = ()


def guess_split_roles(values: Sequence[str]) -> SplitRoles | None:
    """Roles for the usual split names (train gives shots; test, else validation, is scored);
    None when a value is not one of them, since then only the user knows."""
    lower = {v.lower(): v for v in values}
    if any(v not in (*SHOTS_SPLITS, *EVAL_SPLITS) for v in lower):
        return None
    shots = tuple(v for v in values if v.lower() in SHOTS_SPLITS)
    evaluated = next((lower[name] for name in EVAL_SPLITS if name in lower), None)
    return SplitRoles(shots, (evaluated,) if evaluated else ())


def load_builtin() -> Dataset:
    """The 64 dialogues written for Prompt Lab: 16 in the shot pool, 48 for evaluation."""
    dataset = import_file(
        BUILTIN_FILE,
        name=BUILTIN_NAME,
        input_column="dialogue",
        reference_column="summary",
        id_column="id",
        split_column="split",
    )
    # Where it ships, not where this checkout happens to live.
    return replace(dataset, source="built-in (data/dialogues.jsonl)")


@dataclass(frozen=True)
class _Row:
    line: int
    values: dict


def import_file(
    path: str | Path,
    *,
    name: str | None = None,
    input_column: str | None = None,
    reference_column: str | None = None,
    id_column: str | None = None,
    split_column: str | None = None,
    split_roles: SplitRoles | None = None,
    require_reference: bool = True,
) -> Dataset:
    """Read a CSV or JSONL file into a Dataset; refuse it whole if any row is unusable."""
    path = Path(path)
    try:
        check_file_size(path.stat().st_size, path.name)
        raw = path.read_bytes()
    except OSError as exc:
        raise PromptLabError(f"Cannot read '{path}': {exc.strerror or exc}.") from exc
    return import_bytes(
        raw,
        filename=path.name,
        name=name or path.stem,
        input_column=input_column,
        reference_column=reference_column,
        id_column=id_column,
        split_column=split_column,
        split_roles=split_roles,
        require_reference=require_reference,
        source=str(path),
    )


MB = 1024 * 1024  # as Streamlit counts its server.maxUploadSize


def check_file_size(size: int, filename: str) -> None:
    """Refuse a dataset file over the operator's limit, before any of it is read as rows."""
    limit = policy.current().max_upload_mb
    if limit and size > limit * MB:
        raise PromptLabError(
            f"'{filename}' is {size / MB:.1f} MB; dataset files may be at most {limit:g} MB "
            f"here (the operator's {policy.VARIABLES['max_upload_mb']}). Import a smaller file, "
            "or split it."
        )


def import_bytes(
    raw: bytes,
    *,
    filename: str,
    name: str,
    input_column: str | None = None,
    reference_column: str | None = None,
    id_column: str | None = None,
    split_column: str | None = None,
    split_roles: SplitRoles | None = None,
    require_reference: bool = True,
    source: str = "",
) -> Dataset:
    """Like import_file, for bytes already in memory (an upload). With a split column, its
    values take the roles given, or guessed from their names (refused when that is not sure)."""
    check_file_size(len(raw), filename)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PromptLabError(f"'{filename}' is not UTF-8 text (byte {exc.start}).") from exc
    rows = list(_read_rows(text, filename))
    if not rows:
        raise PromptLabError(f"'{filename}' has no data rows.")
    columns = _columns(rows)
    input_column = _choose_column(input_column, columns, INPUT_GUESSES, "input", filename)
    if reference_column is None and require_reference:
        reference_column = _choose_column(None, columns, REFERENCE_GUESSES, "reference", filename)
    elif reference_column is not None:
        _choose_column(reference_column, columns, (), "reference", filename)
    examples = _examples(rows, input_column, reference_column, id_column, split_column, filename)
    source = source or filename
    if split_column is not None:
        examples, renamed = _assign_splits(examples, split_column, split_roles, filename)
        source += f" (split {renamed})" if renamed else ""
    return Dataset(name, tuple(examples), source, input_column, reference_column)


def split_values(examples: Sequence[Example]) -> list[str]:
    """The distinct split values, in the order they first appear."""
    return list(dict.fromkeys(ex.split for ex in examples if ex.split))


def _assign_splits(
    examples: list[Example], column: str, roles: SplitRoles | None, filename: str
) -> tuple[list[Example], str]:
    """Examples with their split values renamed pool/eval by role (others kept, out of both),
    and the renaming as a note for the source, so that the file's own names stay visible."""
    values = split_values(examples)
    listed = ", ".join(values) or "none"
    roles = roles or guess_split_roles(values)
    if roles is None:
        raise PromptLabError(
            f"Say which values of the split column '{column}' give the shots and which are "
            f"evaluated; its values are: {listed}."
        )
    for value in (*roles.shots, *roles.evaluated):
        if value not in values:
            raise PromptLabError(
                f"'{value}' is not a value of the split column '{column}'; "
                f"its values are: {listed}."
            )
    if both := set(roles.shots) & set(roles.evaluated):
        raise PromptLabError(
            f"Split value(s) {', '.join(sorted(both))} cannot give the shots and be evaluated: "
            "an example is never its own shot. For no split at all, choose no split column."
        )
    if not roles.evaluated:
        raise PromptLabError(
            f"Choose the value(s) of the split column '{column}' whose examples are evaluated "
            f"(its values are: {listed}), or no split column to use every example for both."
        )
    names = dict.fromkeys(roles.shots, "pool") | dict.fromkeys(roles.evaluated, "eval")
    for value in values:  # a value with no role must not pass for one
        names.setdefault(value, f"{value} (unused)" if value in ("pool", "eval") else value)
    renamed = ", ".join(f"{v} → {n}" for v, n in names.items() if n != v)
    return [replace(ex, split=names.get(ex.split, ex.split)) for ex in examples], renamed


def _read_rows(text: str, filename: str) -> Iterator[_Row]:
    if filename.lower().endswith((".jsonl", ".ndjson", ".json")):
        yield from _jsonl_rows(text, filename)
    elif filename.lower().endswith((".csv", ".tsv", ".txt")):
        yield from _csv_rows(text, "\t" if filename.lower().endswith(".tsv") else ",", filename)
    else:
        raise PromptLabError(f"'{filename}': only .csv, .tsv and .jsonl files can be imported.")


def _jsonl_rows(text: str, filename: str) -> Iterator[_Row]:
    bad = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.append(f"line {number}: not valid JSON ({exc.msg})")
            continue
        if not isinstance(value, dict):
            bad.append(f"line {number}: a JSON object was expected")
            continue
        yield _Row(number, value)
    if bad:
        raise PromptLabError(_problem_report(filename, bad))


def _csv_rows(text: str, delimiter: str, filename: str) -> Iterator[_Row]:
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        reader.fieldnames  # reads the header, so line_num counts from it  # noqa: B018
        start = reader.line_num + 1
        for row in reader:
            # A quoted cell may span lines: report the line where the row starts.
            yield _Row(start, {k: v for k, v in row.items() if k is not None})
            start = reader.line_num + 1
    except csv.Error as exc:
        raise PromptLabError(
            f"'{filename}' line {reader.line_num + 1}: not readable as CSV ({exc})."
        ) from exc


def _columns(rows: Sequence[_Row]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row.values))
    return list(seen)


def _choose_column(
    chosen: str | None, columns: list[str], guesses: Sequence[str], role: str, filename: str
) -> str:
    if chosen is not None:
        if chosen not in columns:
            raise PromptLabError(
                f"'{filename}' has no column '{chosen}' for the {role}; "
                f"its columns are: {', '.join(columns)}."
            )
        return chosen
    lower = {c.lower(): c for c in columns}
    for guess in guesses:
        if guess in lower:
            return lower[guess]
    raise PromptLabError(
        f"Choose the {role} column of '{filename}'; its columns are: {', '.join(columns)}."
    )


def _examples(rows, input_col, reference_col, id_col, split_col, filename) -> list[Example]:
    examples, problems, seen = [], [], {}
    for number, row in enumerate(rows, start=1):
        text = _cell(row.values.get(input_col))
        ref = _cell(row.values.get(reference_col)) if reference_col else None
        example_id = _cell(row.values.get(id_col)) if id_col else None
        missing = [c for c, v in ((input_col, text), (reference_col, ref)) if c and not v]
        if id_col and not example_id:
            missing.append(id_col)
        if missing:
            problems.append(f"line {row.line}: empty or missing {', '.join(missing)}")
            continue
        example_id = example_id or str(number)
        if example_id in seen:
            problems.append(f"line {row.line}: id '{example_id}' repeats line {seen[example_id]}")
            continue
        seen[example_id] = row.line
        split = _cell(row.values.get(split_col)) if split_col else None
        examples.append(Example(example_id, text, ref, split or None))
    if problems:
        raise PromptLabError(_problem_report(filename, problems))
    return examples


def _cell(value: object) -> str:
    if value is None:
        return ""
    return value.strip() if isinstance(value, str) else str(value)


def _problem_report(filename: str, problems: list[str]) -> str:
    shown = problems[:MAX_LISTED_PROBLEMS]
    more = len(problems) - len(shown)
    tail = f"\n… and {more} more." if more else ""
    return (
        f"'{filename}' was not imported: {len(problems)} row(s) have problems.\n"
        + "\n".join(shown)
        + tail
    )
