"""Experiments as tables (a comparison summary, per-example rows, examples side by side) and the
one safe way to write them as CSV.

CSV safety. A spreadsheet program runs a cell that starts with `=`, `+`, `-` or `@` as a formula,
and a leading tab or carriage return can hide such a start; model outputs and prompts are
untrusted text, so every *text* cell (and header) starting with one of those six characters gets
a leading single quote `'` (the OWASP "CSV injection" rule). This changes the text of such cells
by that one leading quote; numbers stay numbers, so -0.5 is written as -0.5. Every text cell is
written in double quotes and rows end in CRLF (RFC 4180), so a cell holding a newline, a lone
carriage return, a comma or a quote reads back as one cell. (Python's csv writer under minimal
quoting leaves a lone CR unquoted when rows end in LF, and readers split the row there.)
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import math
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from sqlalchemy import JSON, Text, cast, func, select
from sqlalchemy.orm import Session

from core.errors import PromptLabError
from storage.queries import ROUGE_COLUMNS
from storage.schema import DatasetRecord, ExampleRecord, ExperimentRecord, ResultRecord

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff".encode()
# pyarrow's writer is C++: 100,000 rows with their prompts in well under a second, where pandas'
# (Python's csv module) takes several. "needed" quotes every text cell, numbers never.
CSV_OPTIONS = pa_csv.WriteOptions(eol="\r\n", quoting_style="needed")
KEY_LISTS = ("shots", "dropped_shots")  # stored as JSON lists, shown as "d001;d002"
ARROW_TYPES = {str: pa.large_string(), int: pa.int64(), float: pa.float64()}
DESIGN_FIELDS = ("shots", "selection", "selection_seed", "instruction", "use_chat_template")
SETTINGS_FIELDS = (
    "do_sample",
    "temperature",
    "top_k",
    "top_p",
    "max_new_tokens",
    "repetition_penalty",
    "num_beams",
    "seed",
    "stop",
)
# Only what the table shows: spec, example_keys and library_versions can be large.
SUMMARY_SOURCE = {
    "id": ExperimentRecord.id,
    "label": ExperimentRecord.label,
    "origin": ExperimentRecord.origin,  # experiment or playground
    "study_id": ExperimentRecord.study_id,
    "status": ExperimentRecord.status,
    "dataset": ExperimentRecord.dataset_name,
    "split": ExperimentRecord.split,
    "model_id": ExperimentRecord.model_id,
    "model_revision": ExperimentRecord.model_revision,
    "device": ExperimentRecord.device,
    "dtype": ExperimentRecord.dtype,
    "backend": ExperimentRecord.backend,
    "endpoint": ExperimentRecord.endpoint,
    "n_examples": ExperimentRecord.n_examples,
    "n_done": ExperimentRecord.n_done,
}
PER_EXAMPLE_SOURCE = {
    "experiment_id": ResultRecord.experiment_id,
    "example_key": ResultRecord.example_key,
    "position": ResultRecord.position,
    "reference": ResultRecord.reference,
    "output": ResultRecord.output,
    **{name: getattr(ResultRecord, name) for name in ROUGE_COLUMNS},
    "prompt_tokens": ResultRecord.prompt_tokens,
    "new_tokens": ResultRecord.new_tokens,
    "finish_reason": ResultRecord.finish_reason,
    "latency_s": ResultRecord.latency_s,
    # As their JSON text: one json.loads for the whole column beats one per row.
    "shots": cast(ResultRecord.shots, Text),
    "dropped_shots": cast(ResultRecord.dropped_shots, Text),
    "truncated_input_tokens": ResultRecord.truncated_input_tokens,
    "error": ResultRecord.error,
    "attempts": ResultRecord.attempts,
    "prompt": ResultRecord.prompt,
}
WIDE_VALUES = ("output", *ROUGE_COLUMNS)
WHOLE_NUMBERS = (
    "study_id",
    "n_examples",
    "n_done",
    "shots",
    "selection_seed",
    "top_k",
    "max_new_tokens",
    "num_beams",
    "seed",
)
FLAGS = ("use_chat_template", "do_sample")
# Written once, when an experiment is created: left out of its revision to keep that small.
UNCHANGING = ("spec", "example_keys", "design", "settings", "library_versions")


# Revision --------------------------------------------------------------------------------------


def revision(
    *, session: Session, experiment_ids: Sequence[int] | None = None, results: bool = True
) -> tuple:
    """A value that changes with every write that the tables of these experiments (all, if
    None) depend on: each one's row (status, progress, times, label, aggregates...) and, if
    `results`, the count and newest id of its results and of its dataset's examples. Equal
    revisions, equal tables. Cheap: no result or example row is read, only indexed ids."""
    kept = [c for c in ExperimentRecord.__table__.columns if c.name not in UNCHANGING]
    query = select(*(cast(c, Text) if isinstance(c.type, JSON) else c for c in kept))
    if experiment_ids is not None:
        query = query.where(ExperimentRecord.id.in_(_unique(experiment_ids)))
    rows = tuple(tuple(row) for row in session.execute(query.order_by(ExperimentRecord.id)))
    if not results:
        return rows
    ids = [row[0] for row in rows]
    names = {row[[c.name for c in kept].index("dataset_name")] for row in rows}
    stored = (
        select(ResultRecord.experiment_id, func.count(), func.max(ResultRecord.id))
        .where(ResultRecord.experiment_id.in_(ids))
        .group_by(ResultRecord.experiment_id)
        .order_by(ResultRecord.experiment_id)
    )
    return (
        rows,
        tuple(tuple(row) for row in session.execute(stored)),
        dataset_revision(session=session, names=names),
    )


def dataset_revision(*, session: Session, names: Iterable[str]) -> tuple:
    """Each named dataset's id, example count and newest example id: it changes when one is
    stored again, extended or deleted."""
    examples = (
        select(DatasetRecord.name, DatasetRecord.id, func.count(), func.max(ExampleRecord.id))
        .join(ExampleRecord, isouter=True)
        .where(DatasetRecord.name.in_(list(names)))
        .group_by(DatasetRecord.id, DatasetRecord.name)
        .order_by(DatasetRecord.name)
    )
    return tuple(tuple(row) for row in session.execute(examples))


# Tables ----------------------------------------------------------------------------------------


def summary_table(*, session: Session, experiment_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """One row per experiment (all of them newest first, or the ids in the order given);
    reads the experiments table only, never results."""
    ids = None if experiment_ids is None else _unique(experiment_ids)
    query = select(
        *SUMMARY_SOURCE.values(),
        ExperimentRecord.design,
        ExperimentRecord.settings,
        ExperimentRecord.aggregates,
        ExperimentRecord.created_at,
        ExperimentRecord.finished_at,
    ).order_by(ExperimentRecord.id.desc())
    if ids is not None:
        query = query.where(ExperimentRecord.id.in_(ids))
    rows = [_summary_row(row) for row in session.execute(query)]
    if ids is not None:
        _refuse_unknown(ids, {row["id"] for row in rows})
        rank = {experiment_id: i for i, experiment_id in enumerate(ids)}
        rows.sort(key=lambda row: rank[row["id"]])
    frame = pd.DataFrame(rows, columns=_summary_columns())
    for name in ("created_at", "finished_at"):
        frame[name] = pd.to_datetime(frame[name], utc=True)  # SQLite hands back naive UTC
    # Nullable types, so that a gap (no study, an older record) keeps 3 from showing as 3.0.
    return frame.astype(dict.fromkeys(WHOLE_NUMBERS, "Int64") | dict.fromkeys(FLAGS, "boolean"))


def per_example_table(*, session: Session, experiment_ids: Sequence[int]) -> pd.DataFrame:
    """One row per (experiment, example), experiments in the order given, examples in order."""
    ids = _unique(experiment_ids)
    labels = _labels(session, ids)
    frame = _results_frame(session, ids, list(PER_EXAMPLE_SOURCE))
    frame.insert(1, "label", frame["experiment_id"].map(pd.Series(labels, dtype="str")))
    return frame


def wide_table(*, session: Session, experiment_ids: Sequence[int]) -> pd.DataFrame:
    """One row per example, each experiment's output and ROUGE side by side (`e{id} output`);
    an example one experiment did not evaluate has empty cells there."""
    ids = _unique(experiment_ids)
    _labels(session, ids)
    if not ids:
        return pd.DataFrame(columns=["example_key", "reference"])
    names = ["experiment_id", "example_key", "position", "reference", *WIDE_VALUES]
    long = _results_frame(session, ids, names)
    # Examples in order of first appearance, walking the experiments in the order given.
    keys = pd.Index(long["example_key"].drop_duplicates(), name="example_key")
    references = long.groupby("example_key", sort=False)["reference"].first()
    cells = long.pivot(index="example_key", columns="experiment_id", values=list(WIDE_VALUES))
    wanted = pd.MultiIndex.from_tuples([(value, i) for i in ids for value in WIDE_VALUES])
    cells = cells.reindex(index=keys, columns=wanted)
    cells.columns = [f"e{i} {value}" for value, i in wanted]
    # pivot mixes text and scores into object columns; give each back its own type.
    cells = cells.astype({f"e{i} {value}": long[value].dtype for value, i in wanted})
    return pd.concat([references.reindex(keys), cells], axis=1).reset_index()


# CSV -------------------------------------------------------------------------------------------


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy in which every text cell and header starting a formula has a leading `'`."""
    safe = frame.copy(deep=False)
    for position in range(frame.shape[1]):
        column = frame.iloc[:, position]
        if _never_text(column.dtype):
            continue
        if isinstance(column.dtype, pd.StringDtype):
            flagged = column.str.startswith(FORMULA_STARTS).fillna(False).astype(bool)
            if flagged.any():
                safe.isetitem(position, column.mask(flagged, "'" + column))
            continue
        # Anything else (object, categorical, Arrow types) is checked value by value.
        values = column.tolist()
        flagged = [isinstance(v, str) and v.startswith(FORMULA_STARTS) for v in values]
        if any(flagged):
            fixed = [f"'{v}" if hit else v for v, hit in zip(values, flagged, strict=True)]
            safe.isetitem(position, pd.Series(fixed, index=frame.index, dtype=object))
    safe.columns = [_defused(name) for name in frame.columns]
    return safe


def to_csv_bytes(frame: pd.DataFrame, *, bom: bool = False) -> bytes:
    """The frame as safe CSV in UTF-8, with a byte-order mark for spreadsheet programs if `bom`."""
    sink = pa.BufferOutputStream()
    _write(frame, sink, bom=bom)
    return sink.getvalue().to_pybytes()


def write_csv(
    frame: pd.DataFrame,
    path_or_buffer: str | os.PathLike[str] | IO[str] | IO[bytes],
    *,
    bom: bool = False,
) -> None:
    """Write the frame as safe CSV to a path, a binary buffer or a text buffer."""
    if isinstance(path_or_buffer, str | os.PathLike):
        try:
            sink = pa.OSFile(os.fspath(path_or_buffer), "wb")
        except OSError as exc:
            raise PromptLabError(
                f"Cannot write the CSV file {path_or_buffer}: {exc}. "
                "Check that its folder exists and is writable."
            ) from exc
        with sink:
            _write(frame, sink, bom=bom)
    elif _is_binary(path_or_buffer):
        _write(frame, path_or_buffer, bom=bom)
    else:
        path_or_buffer.write(to_csv_bytes(frame, bom=bom).decode("utf-8"))


# Helpers ---------------------------------------------------------------------------------------


def _summary_columns() -> list[str]:
    rouge = [f"{name}{part}" for name in ROUGE_COLUMNS for part in ("", "_ci_low", "_ci_high")]
    return [
        *SUMMARY_SOURCE,
        *DESIGN_FIELDS,
        *SETTINGS_FIELDS,
        *rouge,
        "mean_new_tokens",
        "mean_latency_s",
        "created_at",
        "finished_at",
    ]


def _summary_row(row: Any) -> dict[str, Any]:
    values = dict(zip(SUMMARY_SOURCE, row[: len(SUMMARY_SOURCE)], strict=True))
    design, settings, aggregates = row.design or {}, row.settings or {}, row.aggregates or {}
    values |= {name: design.get(name) for name in DESIGN_FIELDS}
    values |= {name: settings.get(name) for name in SETTINGS_FIELDS}
    # JSON keeps stop strings unambiguous: they may hold ';', quotes or newlines.
    values["stop"] = json.dumps(settings.get("stop") or [], ensure_ascii=False)
    for name in ROUGE_COLUMNS:
        stats = aggregates.get(name) or {}
        values[name] = stats.get("mean")
        values[f"{name}_ci_low"] = stats.get("ci_low")
        values[f"{name}_ci_high"] = stats.get("ci_high")
    values["mean_new_tokens"] = aggregates.get("mean_new_tokens")
    values["mean_latency_s"] = aggregates.get("mean_latency_s")
    values["created_at"], values["finished_at"] = row.created_at, row.finished_at
    return values


def _results_frame(session: Session, ids: list[int], names: list[str]) -> pd.DataFrame:
    """The named result columns (with experiment_id and position) of these experiments, read in
    one query as plain tuples, in the caller's experiment order and each one's example order."""
    columns = [PER_EXAMPLE_SOURCE[name] for name in names]
    query = select(*columns).where(ResultRecord.experiment_id.in_(ids))
    with _collector_paused(), _text_as_bytes(session) as raw:
        # Core execution: plain rows, without the ORM's per-row loading machinery.
        rows = session.connection().execute(query).all() if ids else []
        values = list(zip(*rows, strict=True)) if rows else [()] * len(names)
        del rows
        arrays = {}
        for name, column, column_values in zip(names, columns, values, strict=True):
            kind = ARROW_TYPES[column.type.python_type]
            if name in KEY_LISTS:
                arrays[name] = pa.array(_joined_keys(column_values), kind)
            elif raw and kind == pa.large_string():  # checked as UTF-8 by the cast
                arrays[name] = pa.array(column_values, pa.large_binary()).cast(kind)
            else:
                arrays[name] = pa.array(column_values, kind)
    table = pa.table(arrays)
    # Ordered here, not by ORDER BY: without an index on (experiment_id, position) SQLite would
    # copy every row, prompts and all, into a temporary B-tree; and rows are stored in
    # generation order (by prompt length), not in example order.
    rank = pd.Index(ids).get_indexer(np.asarray(values[names.index("experiment_id")]))
    order = np.lexsort((np.asarray(values[names.index("position")]), rank))
    if (order != np.arange(len(order))).any():
        table = table.take(order)
    return table.to_pandas()  # text becomes pandas' Arrow-backed str without a copy per cell


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off while building ~10^5 rows: each of its passes walks every
    tuple made so far, a third of the load time at 100,000 results (measured); no cycles are
    made here, so nothing waits for it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextlib.contextmanager
def _text_as_bytes(session: Session) -> Iterator[bool]:
    """On SQLite, text comes back as bytes for the duration (True): pyarrow takes UTF-8 bytes as
    they are, where Python first decodes every cell into a str and pyarrow encodes it again;
    half the load time for non-English text (measured). Other drivers are left alone (False)."""
    driver = session.connection().connection.driver_connection
    if not isinstance(driver, sqlite3.Connection):
        yield False
        return
    previous, driver.text_factory = driver.text_factory, bytes
    try:
        yield True
    finally:
        driver.text_factory = previous


def _joined_keys(stored: Sequence[str | None]) -> list[str]:
    """Stored JSON lists of example keys as 'd001;d002', parsed in one call for the column."""
    texts = [text.decode() if isinstance(text, bytes) else text or "null" for text in stored]
    parsed = json.loads("[" + ",".join(texts) + "]")
    return [";".join(map(str, keys)) if keys else "" for keys in parsed]


def _labels(session: Session, ids: list[int]) -> dict[int, str]:
    """Each experiment's label; unknown ids are refused by number."""
    if not ids:
        return {}
    rows = session.execute(
        select(ExperimentRecord.id, ExperimentRecord.label).where(ExperimentRecord.id.in_(ids))
    ).all()
    labels = {experiment_id: label for experiment_id, label in rows}
    _refuse_unknown(ids, set(labels))
    return labels


def _refuse_unknown(ids: list[int], known: set[int]) -> None:
    missing = [i for i in ids if i not in known]
    if missing:
        listed = ", ".join(map(str, missing))
        raise PromptLabError(
            f"There is no experiment {listed}; pick ids from the experiments list."
            if len(missing) == 1
            else f"There are no experiments {listed}; pick ids from the experiments list."
        )


def _unique(experiment_ids: Sequence[int]) -> list[int]:
    return list(dict.fromkeys(int(i) for i in experiment_ids))


def _defused(name: Any) -> Any:
    return f"'{name}" if isinstance(name, str) and name.startswith(FORMULA_STARTS) else name


def _write(frame: pd.DataFrame, sink: Any, *, bom: bool) -> None:
    if bom:
        sink.write(BOM)
    safe = neutralise_formulas(frame)
    arrays = [_arrow_column(safe.iloc[:, position]) for position in range(safe.shape[1])]
    if len(arrays) == 1:  # a row of one empty cell would be a blank line, which readers skip
        arrays = [pc.fill_null(arrays[0].cast(pa.large_string()), "")]  # written as ""
    table = pa.Table.from_arrays(arrays, names=[str(name) for name in safe.columns])
    pa_csv.write_csv(table, sink, CSV_OPTIONS)


def _arrow_column(column: pd.Series) -> pa.Array | pa.ChunkedArray:
    if _never_text(column.dtype) or isinstance(column.dtype, pd.StringDtype):
        return pa.array(column, from_pandas=True)  # NaN becomes an empty cell, not "nan"
    # Mixed Python values, lists, categories: written as their text.
    return pa.array([None if _missing(v) else str(v) for v in column], pa.large_string())


def _never_text(dtype: Any) -> bool:
    """Real numbers, booleans and datetimes: no formula can hide there, and pyarrow writes them."""
    if isinstance(dtype, pd.CategoricalDtype):
        return False
    types = pd.api.types
    return (
        types.is_any_real_numeric_dtype(dtype)
        or types.is_bool_dtype(dtype)
        or types.is_datetime64_any_dtype(dtype)
    )


def _missing(value: Any) -> bool:
    return (
        value is None
        or value is pd.NA
        or value is pd.NaT
        or (isinstance(value, float) and math.isnan(value))
    )


def _is_binary(handle: Any) -> bool:
    mode = getattr(handle, "mode", None)  # gzip's is a number
    return isinstance(handle, io.RawIOBase | io.BufferedIOBase) or (
        isinstance(mode, str) and "b" in mode
    )
