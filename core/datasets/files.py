"""Uploads before and after import: a raw preview and the columns of a file, the column mapping
with guessed defaults, and datasets as tables (listed, searched, their import problems split)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import pandas as pd

from core.datasets.data import (
    INPUT_GUESSES,
    REFERENCE_GUESSES,
    Dataset,
    SplitRoles,
    _cell,
    _read_rows,
    check_file_size,
    import_bytes,
)
from core.errors import PromptLabError

READABLE = (".csv", ".tsv", ".txt", ".jsonl", ".ndjson", ".json")  # what core.datasets.data reads
ID_GUESSES = ("id", "key", "example_id", "uid")
SPLIT_GUESSES = ("split", "subset", "partition")
PREVIEW_ROWS = 10
LINE = "file line"  # not "line": a file may well have a column of that name
EXAMPLE_COLUMNS = ("id", "split", "input", "reference")


@dataclass(frozen=True)
class UploadPreview:
    """The first rows of a file as read (before any mapping), and every column it has."""

    filename: str
    columns: tuple[str, ...]
    rows: pd.DataFrame  # first rows, each with its line number in the file (LINE)
    total_rows: int
    problems: tuple[str, ...] = ()  # lines that cannot be read at all (invalid JSON)


@dataclass(frozen=True)
class ColumnMapping:
    """Which column holds what; only the input is required."""

    input: str
    reference: str | None = None
    id: str | None = None
    split: str | None = None

    def check(self) -> ColumnMapping:
        """Refuse one column used for two roles (almost always a wrong pick in a list)."""
        roles = (("input", self.input), ("reference", self.reference), ("id", self.id))
        used: dict[str, str] = {}
        for role, column in (*roles, ("split", self.split)):
            if column is None:
                continue
            if column in used:
                raise PromptLabError(
                    f"Column '{column}' is chosen both as the {used[column]} and as the {role}; "
                    "choose a different column for one of them."
                )
            used[column] = role
        return self


def preview_upload(raw: bytes, *, filename: str, limit: int = PREVIEW_ROWS) -> UploadPreview:
    """Read a CSV/TSV/JSONL upload without importing it: its columns and first rows."""
    check_file_size(len(raw), filename)
    if not filename.lower().endswith(READABLE):
        raise PromptLabError(f"'{filename}': only .csv, .tsv and .jsonl files can be imported.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PromptLabError(f"'{filename}' is not UTF-8 text (byte {exc.start}).") from exc
    columns: dict[str, None] = {}
    first: list[dict[str, Any]] = []
    total, problems = 0, ()
    try:
        for row in _read_rows(text, filename):
            total += 1
            columns.update(dict.fromkeys(row.values))
            if len(first) < limit:
                first.append({LINE: row.line} | {k: _text(v) for k, v in row.values.items()})
    except PromptLabError as exc:  # row problems come after every readable line was read
        problems = tuple(import_problems(str(exc))[1])
        if not problems:  # the file itself is unreadable
            raise
    if not total and not problems:
        raise PromptLabError(f"'{filename}' has no data rows.")
    frame = pd.DataFrame(first, columns=[LINE, *columns])
    frame = frame.astype({LINE: "int64"} | dict.fromkeys(columns, "string"))
    return UploadPreview(filename, tuple(columns), frame, total, problems)


def guess_mapping(columns: Sequence[str]) -> ColumnMapping:
    """Defaults for the mapping, guessed from the column names as core.datasets.data does."""
    input_column = _guess(columns, INPUT_GUESSES) or (columns[0] if columns else "")
    rest = [c for c in columns if c != input_column]
    return ColumnMapping(
        input=input_column,
        reference=_guess(rest, REFERENCE_GUESSES),
        id=_guess(rest, ID_GUESSES),
        split=_guess(rest, SPLIT_GUESSES),
    )


def upload_split_values(raw: bytes, *, filename: str, column: str) -> list[str]:
    """The distinct values of an upload's split column, in the order they first appear (for
    choosing their roles; rows that cannot be read are the preview's to report)."""
    values: dict[str, None] = {}
    try:
        for row in _read_rows(raw.decode("utf-8-sig", errors="replace"), filename):
            if value := _cell(row.values.get(column)):
                values[value] = None
    except PromptLabError:
        pass
    return list(values)


def import_upload(
    raw: bytes,
    *,
    filename: str,
    name: str,
    mapping: ColumnMapping,
    split_roles: SplitRoles | None = None,
) -> Dataset:
    """The whole upload as a Dataset under `name`, or a PromptLabError listing its bad rows;
    `split_roles` say which split values give the shots and which are evaluated."""
    name = name.strip()
    if not name:
        raise PromptLabError("Give the dataset a name.")
    mapping.check()
    return import_bytes(
        raw,
        filename=filename,
        name=name,
        input_column=mapping.input,
        reference_column=mapping.reference,
        id_column=mapping.id,
        split_column=mapping.split,
        split_roles=split_roles,
        require_reference=mapping.reference is not None,
        source=filename,
    )


def default_name(filename: str) -> str:
    """The dataset name offered for an upload: the file's name without its extension."""
    return PurePath(filename).stem.strip()


def import_problems(message: str) -> tuple[str, list[str]]:
    """An import error split into its headline and the problem lines ("line 4: …") under it."""
    head, *rest = message.splitlines() or [""]
    return head, [line for line in rest if line.strip()]


def examples_frame(dataset: Dataset) -> pd.DataFrame:
    """The dataset's examples as a table: id, split, input, reference."""
    rows = [(ex.id, ex.split, ex.input, ex.reference) for ex in dataset.examples]
    return pd.DataFrame(rows, columns=list(EXAMPLE_COLUMNS), dtype="string")


def search_examples(frame: pd.DataFrame, query: str) -> pd.DataFrame:
    """Rows whose id, input or reference contains `query`, ignoring case; all rows if empty."""
    query = query.strip()
    if not query:
        return frame
    hit = pd.Series(False, index=frame.index)
    for column in ("id", "input", "reference"):
        found = frame[column].str.contains(query, case=False, regex=False, na=False)
        hit |= found.fillna(False).astype(bool)
    return frame[hit]


def summaries_frame(summaries: Iterable[Any]) -> pd.DataFrame:
    """Stored datasets (storage.queries.DatasetSummary) as a table."""
    rows = [
        (
            s.name,
            s.source,
            s.examples,
            s.with_reference,
            ", ".join(f"{split} {n}" for split, n in s.splits.items()) or "none",
            s.created_at,
        )
        for s in summaries
    ]
    columns = ["name", "source", "examples", "with reference", "splits", "created"]
    return pd.DataFrame(rows, columns=columns)


def _text(value: Any) -> str | None:
    """A cell as text for the preview; JSON values that are not strings keep their JSON form."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _guess(columns: Sequence[str], guesses: Sequence[str]) -> str | None:
    lower = {c.lower(): c for c in columns}
    return next((lower[g] for g in guesses if g in lower), None)
