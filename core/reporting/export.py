"""Experiments as tables: a comparison summary, per-example rows and examples side by side,
read from storage in as few queries as they need. CSV writing is in safe_csv, revisions in
revision; both are re-exported here for callers."""

from __future__ import annotations

import contextlib
import gc
import json
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm import Session

from core.errors import PromptLabError
from core.reporting import speed
from core.reporting.revision import dataset_revision, revision, unique_ids  # noqa: F401
from core.reporting.safe_csv import to_csv_bytes, write_csv  # noqa: F401
from storage.queries import ROUGE_COLUMNS
from storage.schema import (
    ExperimentRecord,
    PromptRecord,
    PromptVersionRecord,
    ResultRecord,
    ScoreRecord,
)

KEY_LISTS = ("shots", "dropped_shots")  # stored as JSON lists, shown as "d001;d002"
ARROW_TYPES = {str: pa.large_string(), int: pa.int64(), float: pa.float64()}
DESIGN_FIELDS = (
    "shots",
    "shot_format",
    "selection",
    "selection_seed",
    "instruction",
    "use_chat_template",
)
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
    # The named prompt version (name@N) whose design the experiment ran exactly; "" for none.
    "prompt": func.coalesce(PromptRecord.name + "@" + cast(PromptVersionRecord.version, Text), ""),
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
    "new_tokens",
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


# Tables ----------------------------------------------------------------------------------------


def summary_table(*, session: Session, experiment_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """One row per experiment (all of them newest first, or the ids in the order given);
    reads the experiments table only, never results."""
    ids = None if experiment_ids is None else unique_ids(experiment_ids)
    query = select(
        *SUMMARY_SOURCE.values(),
        ExperimentRecord.design,
        ExperimentRecord.settings,
        ExperimentRecord.aggregates,
        ExperimentRecord.created_at,
        ExperimentRecord.started_at,
        ExperimentRecord.finished_at,
    )
    query = query.outerjoin(
        PromptVersionRecord, PromptVersionRecord.id == ExperimentRecord.prompt_version_id
    ).outerjoin(PromptRecord, PromptRecord.id == PromptVersionRecord.prompt_id)
    query = query.order_by(ExperimentRecord.id.desc())
    if ids is not None:
        query = query.where(ExperimentRecord.id.in_(ids))
    rows = [_summary_row(row) for row in session.execute(query)]
    if ids is not None:
        _refuse_unknown(ids, {row["id"] for row in rows})
        rank = {experiment_id: i for i, experiment_id in enumerate(ids)}
        rows.sort(key=lambda row: rank[row["id"]])
    frame = pd.DataFrame(rows, columns=_summary_columns(_other_metrics(rows)))
    for name in ("created_at", "started_at", "finished_at"):
        frame[name] = pd.to_datetime(frame[name], utc=True)  # SQLite hands back naive UTC
    # Nullable types, so that a gap (no study, an older record) keeps 3 from showing as 3.0.
    return frame.astype(dict.fromkeys(WHOLE_NUMBERS, "Int64") | dict.fromkeys(FLAGS, "boolean"))


def per_example_table(*, session: Session, experiment_ids: Sequence[int]) -> pd.DataFrame:
    """One row per (experiment, example), experiments in the order given, examples in order;
    ROUGE's four types, then a column per other metric any of them was scored on."""
    ids = unique_ids(experiment_ids)
    labels = _labels(session, ids)
    frame = _results_frame(session, ids, list(PER_EXAMPLE_SOURCE))
    frame.insert(1, "label", frame["experiment_id"].map(pd.Series(labels, dtype="str")))
    others = _other_scores(session, ids)
    at = frame.columns.get_loc(ROUGE_COLUMNS[-1]) + 1
    for offset, metric in enumerate(others.columns):
        cells = pd.MultiIndex.from_arrays([frame["experiment_id"], frame["example_key"]])
        frame.insert(at + offset, metric, others[metric].reindex(cells).to_numpy(dtype=float))
    return frame


def _other_scores(
    session: Session, ids: list[int], metrics: Sequence[str] | None = None
) -> pd.DataFrame:
    """Scores beyond ROUGE, a column per metric (by name), indexed by experiment and example."""
    s = ScoreRecord
    query = select(s.experiment_id, s.example_key, s.metric, s.value).where(
        s.experiment_id.in_(ids)
    )
    if metrics is not None:
        query = query.where(s.metric.in_(list(metrics)))
    long = pd.DataFrame(
        session.execute(query).all(), columns=["experiment_id", "example_key", "metric", "value"]
    )
    if long.empty:
        index = pd.MultiIndex.from_tuples([], names=["experiment_id", "example_key"])
        return pd.DataFrame(index=index)
    long["value"] = long["value"].astype(float)
    wide = long.pivot(index=["experiment_id", "example_key"], columns="metric", values="value")
    return wide[sorted(wide.columns)]


def wide_table(
    *, session: Session, experiment_ids: Sequence[int], metrics: Sequence[str] | None = None
) -> pd.DataFrame:
    """One row per example, each experiment's output and ROUGE side by side (`e{id} output`),
    then its score on each other metric (`metrics`, else every one stored); an example one
    experiment did not evaluate has empty cells there."""
    ids = unique_ids(experiment_ids)
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
    wanted_others = [m for m in (metrics or ()) if m not in ROUGE_COLUMNS]
    others = _other_scores(session, ids, None if metrics is None else wanted_others)
    for i in ids:
        at = cells.columns.get_loc(f"e{i} {WIDE_VALUES[-1]}") + 1
        for offset, metric in enumerate(others.columns):
            cells.insert(at + offset, f"e{i} {metric}", _scores_for(others, i, metric, keys))
    return pd.concat([references.reindex(keys), cells], axis=1).reset_index()


def _scores_for(others: pd.DataFrame, experiment_id: int, metric: str, keys: pd.Index) -> Any:
    """One experiment's scores on one metric, by example key in the order of `keys`."""
    cells = pd.MultiIndex.from_arrays([[experiment_id] * len(keys), list(keys)])
    return others[metric].reindex(cells).to_numpy(dtype=float)


# Helpers ---------------------------------------------------------------------------------------


def _other_metrics(rows: list[dict[str, Any]]) -> list[str]:
    """The columns of the metrics beyond ROUGE that any row has a summary of, by name: mean,
    CI and (BLEU, chrF) the corpus-level score."""
    names = sorted({name for row in rows for name in row.get("_others", {})})
    corpus = {n for row in rows for n, stats in row.get("_others", {}).items() if "corpus" in stats}
    return [
        f"{name}{part}"
        for name in names
        for part in ("", "_ci_low", "_ci_high", *(("_corpus",) if name in corpus else ()))
    ]


def _summary_columns(more: Sequence[str] = ()) -> list[str]:
    rouge = [f"{name}{part}" for name in ROUGE_COLUMNS for part in ("", "_ci_low", "_ci_high")]
    return [
        *SUMMARY_SOURCE,
        "engine",
        *DESIGN_FIELDS,
        *SETTINGS_FIELDS,
        *rouge,
        *more,
        "mean_new_tokens",
        "mean_latency_s",
        "new_tokens",
        "generation_s",
        "tokens_per_s",
        "created_at",
        "started_at",
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
    others = {
        name: stats
        for name, stats in aggregates.items()
        if name not in ROUGE_COLUMNS and isinstance(stats, dict) and "ci_low" in stats
    }
    for name, stats in others.items():
        values[name] = stats.get("mean")
        values[f"{name}_ci_low"] = stats.get("ci_low")
        values[f"{name}_ci_high"] = stats.get("ci_high")
        values[f"{name}_corpus"] = stats.get("corpus")
    values["_others"] = others  # which, for the columns; not a column itself
    values["mean_new_tokens"] = aggregates.get("mean_new_tokens")
    values["mean_latency_s"] = aggregates.get("mean_latency_s")
    values["engine"] = speed.engine_label(row.backend, row.device, row.endpoint)
    values |= _throughput(aggregates, row.started_at, row.finished_at)
    values["created_at"], values["finished_at"] = row.created_at, row.finished_at
    values["started_at"] = row.started_at
    return values


def _throughput(aggregates: dict[str, Any], started: Any, finished: Any) -> dict[str, Any]:
    """A completed experiment's new tokens, the seconds from its start to its finish, and their
    ratio. Wall time, not the sum of latencies: answers overlap on a batching or concurrent
    engine, so only wall time compares engines; it includes loading, rendering and scoring (and
    the pause of a run resumed later), so it is what the run delivered, at most the engine's
    own speed. A Playground run's start is when its answer began (runs.experiments). Answers
    copied from another experiment (runs.reuse) are not counted; with nothing generated, no
    throughput."""
    new_tokens = aggregates.get("new_tokens")
    mean, n = aggregates.get("mean_new_tokens"), aggregates.get("n")
    if new_tokens is None and mean is not None and n is not None:  # stored before the total
        new_tokens = round(mean * (n - aggregates.get("n_failed", 0)))
    seconds = speed.seconds_between(started, finished) if new_tokens is not None else None
    return {
        "new_tokens": new_tokens,
        "generation_s": seconds,
        "tokens_per_s": None
        if aggregates.get("n_copied") and not new_tokens
        else speed.tokens_per_s(new_tokens, seconds),
    }


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
