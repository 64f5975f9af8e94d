"""Experiment tables from a real SQLite store, and CSV that round-trips and cannot run formulas."""

from __future__ import annotations

import contextlib
import io
import math
import re

import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import event, text

from core.errors import PromptLabError
from core.reporting import export
from storage import queries
from storage.db import get_engine, session_scope
from storage.schema import utcnow

pytestmark = pytest.mark.both_databases

ROUGE = ("rouge1", "rouge2", "rougeL", "rougeLsum")
TRICKY = 'Line one, with a comma\nline "two"\r\nline three\rafter a lone CR — naïve 日本語 🙂'


def _stats(mean: float) -> dict[str, float]:
    return {"mean": mean, "ci_low": mean - 0.05, "ci_high": mean + 0.05}


def _experiment(session, *, label, keys, design=None, settings=None, **fields) -> int:
    return queries.create_experiment(
        session=session,
        label=label,
        dataset_name="dialogsum",
        split="eval",
        example_keys=keys,
        spec={"label": label},
        design={"instruction": "Summarize.", "shots": 0, "selection": "first", **(design or {})},
        settings={"do_sample": False, "temperature": 1.0, "max_new_tokens": 64, **(settings or {})},
        model_id="tiny/model",
        n_examples=len(keys),
        **fields,
    )


def _result(key: str, position: int, output: str, score: float, **fields) -> dict:
    return dict(
        example_key=key,
        position=position,
        prompt=f"Summarize.\n\n{key} dialogue\n\nSummary:\n",
        output=output,
        reference=f"reference of {key}",
        **{name: score for name in ROUGE},
        prompt_tokens=10 + position,
        new_tokens=5,
        finish_reason="eos",
        latency_s=0.25,
        **fields,
    )


@pytest.fixture
def store(db):
    """Three experiments: two on overlapping example sets, one still pending with no results."""
    with session_scope(db) as session:
        first = _experiment(
            session,
            label="greedy",
            keys=["d1", "d2", "d3"],
            design={"shots": 2, "use_chat_template": True},
            settings={"stop": ["\n\n", ";"], "seed": 7},
            model_revision="abc123",
            device="cpu",
            dtype="float32",
        )
        queries.add_results(
            session=session,
            experiment_id=first,
            results=[
                # Stored out of example order, as batching by prompt length stores them.
                _result("d2", 1, TRICKY, 0.25, shots=["p1", "p2"], dropped_shots=["p2"]),
                _result("d3", 2, "=HYPERLINK(1)", 0.0, shots=["p1", "p2"]),
                _result("d1", 0, "first output", 0.5, shots=["p1", "p2"]),
            ],
        )
        aggregates = {name: _stats(0.25) for name in ROUGE}
        aggregates |= {"n": 3, "mean_new_tokens": 5.0, "mean_latency_s": 0.25}
        queries.update_experiment(
            session=session,
            experiment_id=first,
            status="completed",
            aggregates=aggregates,
            finished_at=utcnow(),
        )
        second = _experiment(session, label="sampled", keys=["d3", "d4"])
        queries.add_results(
            session=session,
            experiment_id=second,
            results=[
                _result("d3", 0, "other d3", 0.75),
                dict(
                    example_key="d4",
                    position=1,
                    prompt="",
                    output="",
                    reference=None,
                    finish_reason="error",
                    error="too long",
                ),
            ],
        )
        pending = _experiment(session, label="pending", keys=["d1"])
    return {"db": db, "first": first, "second": second, "pending": pending}


def _statements(db: str) -> list[str]:
    """SQL run on the store's engine from now on, as text, collected in the returned list."""
    seen: list[str] = []
    event.listen(
        get_engine(db),
        "before_cursor_execute",
        lambda _conn, _cursor, statement, *_rest: seen.append(statement),
    )
    return seen


# Summary ---------------------------------------------------------------------------------------


def test_summary_has_one_row_per_experiment_newest_first_with_settings_flattened(store):
    with session_scope(store["db"]) as session:
        frame = export.summary_table(session=session)
    assert frame["id"].tolist() == [store["pending"], store["second"], store["first"]]
    assert frame["label"].tolist() == ["pending", "sampled", "greedy"]
    for name in ROUGE:
        assert {name, f"{name}_ci_low", f"{name}_ci_high"} <= set(frame.columns)
    assert "spec" not in frame.columns and "example_keys" not in frame.columns
    greedy = frame.set_index("id").loc[store["first"]]
    assert greedy["rougeL"] == pytest.approx(0.25)
    assert greedy["rougeL_ci_low"] == pytest.approx(0.20)
    assert greedy["rougeL_ci_high"] == pytest.approx(0.30)
    assert (greedy["shots"], greedy["instruction"], greedy["seed"]) == (2, "Summarize.", 7)
    assert greedy["stop"] == '["\\n\\n", ";"]'
    assert (greedy["status"], greedy["dataset"], greedy["n_done"]) == ("completed", "dialogsum", 3)
    assert (greedy["model_revision"], greedy["mean_new_tokens"]) == ("abc123", 5.0)
    assert str(frame["created_at"].dt.tz) == "UTC"
    assert str(frame["study_id"].dtype) == "Int64" and str(frame["do_sample"].dtype) == "boolean"
    assert greedy["finished_at"] >= greedy["created_at"]
    pending = frame.set_index("id").loc[store["pending"]]
    assert math.isnan(pending["rougeL"]) and pd.isna(pending["finished_at"])


def test_summary_keeps_the_order_asked_for(store):
    with session_scope(store["db"]) as session:
        frame = export.summary_table(
            session=session, experiment_ids=[store["first"], store["pending"], store["first"]]
        )
    assert frame["id"].tolist() == [store["first"], store["pending"]]


def test_summary_reads_only_the_experiments_table(store):
    seen = _statements(store["db"])
    with session_scope(store["db"]) as session:
        export.summary_table(session=session)
        export.summary_table(session=session, experiment_ids=[store["first"]])
    selects = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 2 and all("FROM experiments" in s for s in selects)
    assert not any(re.search(r"\bresults\b", s) for s in seen)
    assert not any("example_keys" in s or "experiments.spec" in s for s in selects)


# Per example and wide --------------------------------------------------------------------------


def test_per_example_table_has_a_row_per_result_in_the_order_asked_for(store):
    with session_scope(store["db"]) as session:
        frame = export.per_example_table(
            session=session, experiment_ids=[store["second"], store["first"]]
        )
    assert len(frame) == 5
    assert frame["experiment_id"].tolist() == [store["second"]] * 2 + [store["first"]] * 3
    assert frame["example_key"].tolist() == ["d3", "d4", "d1", "d2", "d3"]
    assert frame["label"].tolist() == ["sampled"] * 2 + ["greedy"] * 3
    row = frame.iloc[3]
    assert row["output"] == TRICKY and row["reference"] == "reference of d2"
    assert (row["shots"], row["dropped_shots"]) == ("p1;p2", "p2")
    assert row["prompt"] == "Summarize.\n\nd2 dialogue\n\nSummary:\n"
    assert row["rougeL"] == pytest.approx(0.25) and row["prompt_tokens"] == 11
    failed = frame.iloc[1]
    assert (failed["finish_reason"], failed["error"], failed["shots"]) == ("error", "too long", "")
    assert pd.isna(failed["rougeL"])
    assert list(frame.columns[:6]) == [
        "experiment_id",
        "label",
        "example_key",
        "position",
        "reference",
        "output",
    ]
    assert frame.columns[-1] == "prompt"


def test_per_example_table_reads_results_in_one_query(store):
    seen = _statements(store["db"])
    with session_scope(store["db"]) as session:
        export.per_example_table(session=session, experiment_ids=[store["first"], store["second"]])
    assert len([s for s in seen if re.search(r"FROM results\b", s)]) == 1


def test_wide_table_lines_experiments_up_by_example_with_gaps_left_empty(store):
    ids = [store["first"], store["second"], store["pending"]]
    with session_scope(store["db"]) as session:
        wide = export.wide_table(session=session, experiment_ids=ids)
    assert wide["example_key"].tolist() == ["d1", "d2", "d3", "d4"]
    expected = ["example_key", "reference"] + [
        f"e{i} {value}" for i in ids for value in ("output", *ROUGE)
    ]
    assert wide.columns.tolist() == expected
    row = wide.set_index("example_key")
    first, second, pending = (f"e{i}" for i in ids)
    assert row.loc["d3", f"{first} output"] == "=HYPERLINK(1)"
    assert row.loc["d3", f"{second} output"] == "other d3"
    assert row.loc["d3", f"{second} rougeL"] == pytest.approx(0.75)
    assert pd.isna(row.loc["d1", f"{second} output"]) and pd.isna(row.loc["d4", f"{first} rougeL"])
    assert row[f"{pending} output"].isna().all()
    assert row.loc["d4", "reference"] is None or pd.isna(row.loc["d4", "reference"])
    assert row.loc["d2", "reference"] == "reference of d2"
    assert all(wide[f"e{i} rougeL"].dtype == "float64" for i in ids)
    written = export.to_csv_bytes(wide).decode()  # scores stay numbers, unquoted
    assert '"d3","reference of d3","\'=HYPERLINK(1)",0,0,0,0,"other d3",0.75,' in written


@pytest.mark.parametrize("table", ["summary_table", "per_example_table", "wide_table"])
def test_unknown_experiment_ids_are_named(store, table):
    with session_scope(store["db"]) as session, pytest.raises(PromptLabError) as caught:
        getattr(export, table)(session=session, experiment_ids=[store["first"], 98, 99])
    assert "no experiments 98, 99" in str(caught.value)


def test_no_experiments_asked_for_gives_empty_tables_with_their_columns(store):
    with session_scope(store["db"]) as session:
        per_example = export.per_example_table(session=session, experiment_ids=[])
        wide = export.wide_table(session=session, experiment_ids=[])
    assert per_example.empty and "prompt" in per_example.columns
    assert wide.empty and wide.columns.tolist() == ["example_key", "reference"]


# CSV -------------------------------------------------------------------------------------------


def test_csv_round_trip_keeps_multiline_cells_commas_quotes_and_unicode(tmp_path):
    frame = pd.DataFrame(
        {"text": [TRICKY, "plain", 'say "hi", then go'], "score": [0.5, -0.25, 1.0]}
    )
    path = tmp_path / "out.csv"
    export.write_csv(frame, path)
    back = pd.read_csv(path, keep_default_na=False)
    assert back["text"].tolist() == frame["text"].tolist()
    assert back["score"].tolist() == [0.5, -0.25, 1.0]


def test_per_example_csv_has_one_record_per_result_despite_newlines(store, tmp_path):
    with session_scope(store["db"]) as session:
        frame = export.per_example_table(
            session=session, experiment_ids=[store["first"], store["second"]]
        )
    path = tmp_path / "per_example.csv"
    export.write_csv(frame, path)
    back = pd.read_csv(path, keep_default_na=False)
    assert len(back) == len(frame) == 5
    assert back["prompt"].tolist() == frame["prompt"].tolist()
    assert back.loc[1, "output"] == TRICKY
    assert back.loc[2, "output"] == "'=HYPERLINK(1)"


def test_byte_order_mark_only_when_asked(tmp_path):
    frame = pd.DataFrame({"text": ["é"]})
    assert export.to_csv_bytes(frame, bom=True) == '\ufeff"text"\r\n"é"\r\n'.encode()
    assert export.to_csv_bytes(frame) == '"text"\r\n"é"\r\n'.encode()
    export.write_csv(frame, tmp_path / "bom.csv", bom=True)
    export.write_csv(frame, tmp_path / "plain.csv")
    assert (tmp_path / "bom.csv").read_bytes() == export.to_csv_bytes(frame, bom=True)
    assert (tmp_path / "plain.csv").read_bytes() == export.to_csv_bytes(frame)
    text, binary = io.StringIO(), io.BytesIO()
    export.write_csv(frame, text, bom=True)
    export.write_csv(frame, binary, bom=True)
    assert text.getvalue() == '\ufeff"text"\r\n"é"\r\n'
    assert binary.getvalue() == export.to_csv_bytes(frame, bom=True)


@pytest.mark.parametrize("cell", ["=SUM(A1)", "+1", "-x", "@cmd", "\tfoo", "\r=1", "-2"])
def test_text_that_starts_a_formula_gets_a_leading_quote(cell):
    frame = pd.DataFrame({"text": [cell, "plain"]})
    back = pd.read_csv(io.BytesIO(export.to_csv_bytes(frame)), keep_default_na=False)
    assert back["text"].tolist() == ["'" + cell, "plain"]
    assert frame["text"].tolist() == [cell, "plain"]  # the caller's frame is left alone


def test_numbers_plain_text_and_inner_signs_are_left_alone():
    frame = pd.DataFrame(
        {
            "score": [-0.5, 1.0],
            "count": [-3, 4],
            "mixed": [-1, None],  # an object column holding a negative number
            "text": ["a = b", "e-mail @home"],
        }
    )
    frame["mixed"] = frame["mixed"].astype(object)
    written = export.to_csv_bytes(frame).decode().splitlines()
    assert written[1:] == ['-0.5,-3,"-1.0","a = b"', '1,4,,"e-mail @home"']  # numbers unquoted
    back = pd.read_csv(io.StringIO("\n".join(written)))
    assert back["score"].tolist() == [-0.5, 1.0] and back["count"].tolist() == [-3, 4]
    assert back["mixed"].iloc[0] == -1.0 and back["text"].tolist() == frame["text"].tolist()


def test_headers_that_start_a_formula_are_neutralised_too():
    frame = pd.DataFrame({"=cmd": ["x"], "ok": ["y"]})
    assert export.to_csv_bytes(frame).decode().splitlines()[0] == '"\'=cmd","ok"'


def test_wide_table_of_an_experiment_without_results_is_empty_but_has_its_columns(store):
    with session_scope(store["db"]) as session:
        wide = export.wide_table(session=session, experiment_ids=[store["pending"]])
    assert wide.empty
    assert wide.columns.tolist()[:3] == ["example_key", "reference", f"e{store['pending']} output"]


def test_summary_csv_reads_back_with_its_gaps_flags_and_dates(store):
    with session_scope(store["db"]) as session:
        frame = export.summary_table(session=session)
    back = pd.read_csv(io.BytesIO(export.to_csv_bytes(frame, bom=True)), encoding="utf-8-sig")
    assert back.columns.tolist() == frame.columns.tolist()
    assert back["id"].tolist() == frame["id"].tolist()
    assert back["rougeL"].tolist()[2] == pytest.approx(0.25) and pd.isna(back["rougeL"][0])
    assert back["use_chat_template"].tolist()[2] is True
    assert back["stop"].tolist()[2] == '["\\n\\n", ";"]'
    created = pd.to_datetime(back["created_at"], utc=True)
    assert (created - frame["created_at"]).abs().max() < pd.Timedelta(milliseconds=1)


@pytest.mark.parametrize(
    "dtype", [object, "str", "string", pd.ArrowDtype(pa.large_string()), "category"]
)
def test_formula_cells_are_neutralised_whatever_the_text_dtype(dtype):
    frame = pd.DataFrame({"text": pd.Series(["=1+1", "fine", None], dtype=dtype)})
    back = pd.read_csv(io.BytesIO(export.to_csv_bytes(frame)), keep_default_na=False)
    assert back["text"].tolist() == ["'=1+1", "fine", ""]


def test_writing_into_a_missing_folder_says_so(tmp_path):
    with pytest.raises(PromptLabError, match="Cannot write the CSV file .*folder exists"):
        export.write_csv(pd.DataFrame({"a": [1]}), tmp_path / "no" / "such.csv")


def test_a_single_column_with_gaps_keeps_every_row():
    frame = pd.DataFrame({"score": [1.5, None, 2.0]})
    back = pd.read_csv(io.BytesIO(export.to_csv_bytes(frame)))
    assert len(back) == 3 and back["score"].iloc[2] == 2.0 and pd.isna(back["score"].iloc[1])


def test_reading_text_as_str_gives_the_same_table_as_the_sqlite_bytes_path(store, monkeypatch):
    """Other databases take the plain str path; it must give exactly what SQLite's gives."""
    ids = [store["second"], store["first"]]
    with session_scope(store["db"]) as session:
        fast = export.per_example_table(session=session, experiment_ids=ids)
        # The connection goes back to giving str to everyone else.
        assert isinstance(session.execute(text("select label from experiments")).scalar(), str)
    monkeypatch.setattr(export, "_text_as_bytes", lambda _session: contextlib.nullcontext(False))
    with session_scope(store["db"]) as session:
        plain = export.per_example_table(session=session, experiment_ids=ids)
    pd.testing.assert_frame_equal(fast, plain)
    assert fast.loc[3, "output"] == TRICKY


# Revision --------------------------------------------------------------------------------------


def _revision(db: str, ids=None, **kwargs) -> tuple:
    with session_scope(db) as session:
        return export.revision(session=session, experiment_ids=ids, **kwargs)


def test_revision_stays_while_nothing_is_written(store):
    ids = [store["first"], store["second"]]
    assert _revision(store["db"], ids) == _revision(store["db"], ids)
    assert _revision(store["db"]) == _revision(store["db"])


def test_revision_changes_with_new_results_progress_status_and_label(store):
    db, second = store["db"], store["second"]
    seen = [_revision(db, [second])]
    with session_scope(db) as session:  # a result replaced: same count, a newer id
        session.execute(text("DELETE FROM results WHERE example_key = 'd4'"))
        queries.add_results(
            session=session, experiment_id=second, results=[_result("d4", 1, "again", 0.5)]
        )
    seen.append(_revision(db, [second]))
    for change in ({"status": "completed"}, {"label": "renamed"}, {"aggregates": {"n": 2}}):
        with session_scope(db) as session:
            queries.update_experiment(session=session, experiment_id=second, **change)
        seen.append(_revision(db, [second]))
    assert len(set(seen)) == len(seen)
    assert _revision(db, [store["first"]]) == _revision(db, [store["first"]])


def test_revision_of_a_deleted_experiment_differs_from_its_successor_under_the_same_id(db):
    with session_scope(db) as session:
        first = _experiment(session, label="one", keys=["d1"])
        queries.add_results(
            session=session, experiment_id=first, results=[_result("d1", 0, "x", 0.5)]
        )
    before = _revision(db, [first])
    with session_scope(db) as session:
        queries.delete_experiments(session=session, experiment_ids=[first])
    assert _revision(db, [first]) != before
    with session_scope(db) as session:
        again = _experiment(session, label="one", keys=["d1"], id=first)  # as SQLite reuses ids
        queries.add_results(
            session=session, experiment_id=again, results=[_result("d1", 0, "x", 0.5)]
        )
    assert _revision(db, [first]) != before


def test_revision_without_results_reads_the_experiments_table_only(store):
    seen = _statements(store["db"])
    _revision(store["db"], results=False)
    other_tables = re.compile(r"\b(FROM|JOIN)\s+(results|examples)\b", re.IGNORECASE)
    assert seen and not any(other_tables.search(statement) for statement in seen)
