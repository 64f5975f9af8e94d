"""The command line, run for real: in-process through `cli.main` on a temp SQLite store and the
tiny Llama, and once as `python -m core` in its own process for the no-traceback contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from core import cli
from core.cli import runs as cli_runs
from core.errors import PromptLabError
from core.runs import experiments
from storage import queries
from storage.db import session_scope
from storage.schema import ExperimentRecord, StudyRecord
from tests.test_compare import store_experiment

ROOT = Path(__file__).resolve().parent.parent
FAST = ("--limit", "3", "--max-new-tokens", "4", "--batch-size", "3")


def invoke(db: str, *argv: str) -> int:
    return cli.main(["--db", db, *argv])


def snapshot(db: str) -> tuple[int, int, list[str]]:
    """What a refused command must leave as it was: experiments, studies, datasets."""
    with session_scope(db) as session:
        experiments = session.scalar(select(func.count(ExperimentRecord.id)))
        studies = session.scalar(select(func.count(StudyRecord.id)))
        return experiments, studies, queries.list_dataset_names(session=session)


def outputs(db: str, experiment_id: int) -> list[tuple[str, str]]:
    with session_scope(db) as session:
        results = queries.results_of(session=session, experiment_id=experiment_id)
        return [(r.example_key, r.output) for r in results]


def assert_one_line_error(err: str) -> None:
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def study_db(tmp_path_factory, tiny_causal_dir) -> str:
    """A store holding one study: experiments 1 (zero-shot) and 2 (one-shot), greedy."""
    url = f"sqlite:///{tmp_path_factory.mktemp('cli')}/study.sqlite"
    assert invoke(url, "run", "--model", str(tiny_causal_dir), "--shots", "0,1", *FAST) == 0
    return url


@pytest.fixture
def csv_file(tmp_path) -> Path:
    path = tmp_path / "talks.csv"
    path.write_text(
        "id,dialogue,summary,split\n"
        "a,#Person1#: hi,one says hi,pool\n"
        "b,#Person1#: bye,one says bye,eval\n"
        "c,#Person1#: thanks,one thanks,eval\n",
        encoding="utf-8",
    )
    return path


# Help and datasets ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [[], ["datasets"], ["datasets", "import"], ["datasets", "list"], ["datasets", "delete"]]
    + [[c] for c in ("run", "list", "show", "rerun", "resume", "delete", "export", "score")],
)
def test_every_command_has_help(command, capsys):
    assert cli.main([*command, "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: python -m core")


def test_datasets_import_list_and_delete(db, csv_file, capsys):
    argv = ["datasets", "import", str(csv_file), "--name", "talks", "--split-col", "split"]
    assert invoke(db, *argv) == 0
    assert capsys.readouterr().out.strip() == "imported 3 examples as 'talks' (pool 1, eval 2)"
    assert invoke(db, "datasets", "list") == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].split() == ["name", "examples", "with", "reference", "splits"]
    assert listed[1].split() == ["dialogues", "64", "64", "eval", "48,", "pool", "16"]
    assert listed[2].split() == ["talks", "3", "3", "eval", "2,", "pool", "1"]
    assert invoke(db, "datasets", "delete", "talks") == 0
    assert snapshot(db)[2] == ["dialogues"]


def test_import_gives_train_and_test_their_roles_or_takes_them_from_options(db, tmp_path, capsys):
    path = tmp_path / "splits.csv"
    path.write_text(
        "dialogue,summary,split\nhi,greets,train\nbye,leaves,validation\nyo,slang,test\n",
        encoding="utf-8",
    )
    argv = ["datasets", "import", str(path), "--split-col", "split"]
    assert invoke(db, *argv, "--name", "guessed") == 0
    assert capsys.readouterr().out.strip().endswith("(pool 1, validation 1, eval 1)")
    chosen = ("--shots-split", "train,test", "--eval-split", "validation")
    assert invoke(db, *argv, "--name", "chosen", *chosen) == 0
    assert capsys.readouterr().out.strip().endswith("(pool 2, eval 1)")
    assert invoke(db, *argv, "--name", "nothing", "--shots-split", "train") == 1
    assert "whose examples are evaluated" in capsys.readouterr().err
    assert "nothing" not in snapshot(db)[2]


def test_import_refuses_a_file_with_bad_rows_by_line_and_stores_nothing(db, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("dialogue,summary\nhello,hi\nbye,\n,thanks\nok,fine\n", encoding="utf-8")
    before = snapshot(db)
    assert invoke(db, "datasets", "import", str(bad), "--name", "bad") == 1
    err = capsys.readouterr().err
    assert_one_line_error(err)
    assert "2 row(s) have problems" in err and "line 3:" in err and "line 4:" in err
    assert snapshot(db) == before and "bad" not in before[2]


def test_import_under_a_taken_name_needs_replace(db, csv_file, capsys):
    assert invoke(db, "datasets", "import", str(csv_file), "--name", "talks") == 0
    assert invoke(db, "datasets", "import", str(csv_file), "--name", "talks") == 1
    assert "exists already" in capsys.readouterr().err
    assert invoke(db, "datasets", "import", str(csv_file), "--name", "talks", "--replace") == 0


# Running ---------------------------------------------------------------------------------------


def test_a_sweep_prints_one_line_per_experiment_and_forms_one_study(study_db, capsys):
    with session_scope(study_db) as session:
        records = sorted(queries.list_experiments(session=session), key=lambda r: r.id)
        assert [(r.label, r.status, r.n_done) for r in records] == [
            ("shots=0", "completed", 3),
            ("shots=1", "completed", 3),
        ]
        assert records[0].study_id == records[1].study_id is not None
        assert records[0].example_keys == records[1].example_keys


def test_run_prints_the_result_line(db, tiny_causal_dir, capsys):
    argv = ["run", "--model", str(tiny_causal_dir), "--shots", "1", "--temperature", "0,0.7"]
    assert invoke(db, *argv, *FAST, "--seed", "3", "--top-p", "0.9") == 0
    out, err = capsys.readouterr()
    assert err == (
        "note: top_p=0.9 is ignored: greedy decoding always takes the most likely token "
        "(turn sampling on to use it). (1 of 2 experiments)\n"
    )
    out = out.splitlines()
    assert len(out) == 2
    assert out[0].startswith("experiment 1  temperature=0 (greedy)  rouge1 0.")
    assert out[1].startswith("experiment 2  temperature=0.7  rouge1 0.")
    assert all(" rougeL 0." in line and line.endswith(" s)") for line in out)
    assert "(3 examples, " in out[0]
    with session_scope(db) as session:
        first, second = (queries.get_experiment(session=session, experiment_id=i) for i in (1, 2))
        assert not first.settings["do_sample"] and second.settings["temperature"] == 0.7
        assert first.seed == second.seed == 3 and first.design["shots"] == 1


@pytest.mark.parametrize(
    ("model", "more", "refusal"),
    [
        ("tiny_causal_dir", ["--no-chat-template"], "need the model's chat template: it is"),
        ("tiny_t5_dir", [], "an encoder-decoder model reads one text."),
    ],
)
def test_shots_as_turns_are_refused_before_anything_is_stored(
    db, request, capsys, model, more, refusal
):
    argv = ["run", "--model", str(request.getfixturevalue(model)), "--shots", "1", *more]
    capsys.readouterr()  # whatever building the model printed
    assert invoke(db, *argv, "--shot-format", "inline,turns", *FAST) == 1
    err = capsys.readouterr().err
    assert_one_line_error(err)
    assert refusal in err
    assert snapshot(db)[:2] == (0, 0)  # no experiment, no study


def test_one_combination_runs_one_experiment_outside_a_study(db, tiny_causal_dir, capsys):
    argv = ["run", "--model", str(tiny_causal_dir), "--preset", "flan", "--name", "mine"]
    assert invoke(db, *argv, *FAST) == 0
    assert capsys.readouterr().out.startswith("experiment 1  mine  rouge1 ")
    assert snapshot(db)[:2] == (1, 0)


def test_instructions_keep_their_commas_and_sweep_by_repetition(db, tiny_causal_dir, capsys):
    argv = ["run", "--model", str(tiny_causal_dir), "--stop", "\\n", *FAST]
    argv += ["--instruction", "Sum up, briefly.", "--instruction", "Summarize:\\nplease"]
    assert invoke(db, *argv, "--format", "Talk: {input}\\nGist: {output}", "--shots", "1") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[1] for line in lines] == [
        "instruction=Sum up, briefly.",
        "instruction=Summarize: please",  # one line each, though the label holds a newline
    ]
    with session_scope(db) as session:
        second = queries.get_experiment(session=session, experiment_id=2)
    assert second.design["instruction"] == "Summarize:\nplease"
    assert second.design["example_format"] == "Talk: {input}\nGist: {output}"
    assert second.settings["stop"] == ["\n"]


def test_list_and_show(study_db, tiny_causal_dir, capsys):
    assert invoke(study_db, "list", "--study", "1", "--status", "completed") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        *("id", "status", "label", "model", "dataset", "done", "rougeL", "created", "(UTC)")
    ]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["2", "completed", "shots=1"],
        ["1", "completed", "shots=0"],
    ]
    assert all("3/3" in line and "dialogues" in line for line in lines[1:])
    assert invoke(study_db, "list", "--model", "other") == 0
    assert capsys.readouterr().out.strip() == "no experiments"
    assert invoke(study_db, "show", "2", "--results", "2") == 0
    out = capsys.readouterr().out
    assert out.startswith("experiment 2  completed  shots=1\n")
    assert "ROUGE: mean [95% bootstrap CI] over 3 scored, stemmer on" in out
    assert "  rougeL    0." in out and "finish reasons: " in out
    assert out.count("    output:") == 2 and "first 2 result(s):" in out


def test_greedy_rerun_reproduces_outputs_and_delete_removes_it(db, tiny_causal_dir, capsys):
    assert invoke(db, "run", "--model", str(tiny_causal_dir), "--shots", "1", *FAST) == 0
    assert invoke(db, "rerun", "1") == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("experiment 2  rouge1 ")
    assert outputs(db, 2) == outputs(db, 1) and outputs(db, 1)
    assert invoke(db, "delete", "1", "2", "--yes") == 0
    assert capsys.readouterr().out.strip() == "deleted experiment(s) 1, 2"
    assert snapshot(db)[0] == 0


def test_delete_asks_on_a_terminal_and_refuses_without_one(
    db, tiny_causal_dir, capsys, monkeypatch
):
    assert invoke(db, "run", "--model", str(tiny_causal_dir), *FAST) == 0
    assert invoke(db, "delete", "1") == 1  # pytest's stdin is no terminal
    assert_one_line_error(capsys.readouterr().err)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", lambda question: "n")
    assert invoke(db, "delete", "1") == 1
    assert snapshot(db)[0] == 1
    monkeypatch.setattr("builtins.input", lambda question: "y")
    assert invoke(db, "delete", "1") == 0
    assert snapshot(db)[0] == 0


def test_ctrl_c_marks_the_experiment_interrupted_and_says_how_to_resume(
    db, tiny_causal_dir, capsys, monkeypatch
):
    calls = []

    def interrupt_on_second_batch(self, done, total):
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli_runs.Watch, "progress", interrupt_on_second_batch)
    argv = ["run", "--model", str(tiny_causal_dir), "--shots", "0,1", "--limit", "4"]
    assert invoke(db, *argv, "--max-new-tokens", "4", "--batch-size", "2") == 130
    err = capsys.readouterr().err
    assert "experiment 1 interrupted after 2 of 4 examples (1 not started yet)" in err
    assert f"resume with: python -m core --db {db} resume 1 2" in err
    with session_scope(db) as session:
        statuses = [r.status for r in queries.list_experiments(session=session)]
    assert statuses == ["pending", "interrupted"]
    monkeypatch.undo()
    assert invoke(db, "resume", "1", "2") == 0
    assert [line.split()[1] for line in capsys.readouterr().out.splitlines()] == ["1", "2"]
    assert len(outputs(db, 1)) == len(outputs(db, 2)) == 4


def test_ctrl_c_during_a_rerun_names_the_new_experiment(db, tiny_causal_dir, capsys, monkeypatch):
    assert invoke(db, "run", "--model", str(tiny_causal_dir), *FAST) == 0

    def interrupt(self, done, total):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_runs.Watch, "progress", interrupt)
    assert invoke(db, "rerun", "1") == 130
    err = capsys.readouterr().err
    assert "experiment 2 interrupted after 0 of 3 examples; resume with: " in err


def test_a_run_that_fails_midway_says_how_to_resume(db, tiny_causal_dir, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise PromptLabError("the model ran out of memory.")
        yield

    monkeypatch.setattr(experiments, "generate_batches", broken)
    assert invoke(db, "run", "--model", str(tiny_causal_dir), *FAST) == 1
    err = capsys.readouterr().err
    assert_one_line_error(err)
    assert "experiment 1 failed (the model ran out of memory.) after 0 of 3 examples" in err
    assert err.endswith(f"resume with: python -m core --db {db} resume 1\n")


# Export and scoring ----------------------------------------------------------------------------


def test_export_summary_per_example_and_wide(study_db, tmp_path, capsys):
    summary, rows, wide = (tmp_path / f"{n}.csv" for n in ("summary", "rows", "wide"))
    assert invoke(study_db, "export", "1", "2", "-o", str(summary), "--bom") == 0
    assert invoke(study_db, "export", "--study", "1", "--per-example", "-o", str(rows)) == 0
    assert invoke(study_db, "export", "2", "1", "--wide", "-o", str(wide)) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("wrote 2 row(s) of the summary")
    assert summary.read_bytes().startswith(b"\xef\xbb\xbf")
    table = pd.read_csv(summary, encoding="utf-8-sig")
    assert list(table["id"]) == [1, 2] and list(table["shots"]) == [0, 1]
    assert table["rougeL"].between(0, 1).all()
    per_example = pd.read_csv(rows)
    assert len(per_example) == 6 and list(per_example["experiment_id"]) == [1, 1, 1, 2, 2, 2]
    side_by_side = pd.read_csv(wide)
    assert len(side_by_side) == 3
    assert list(side_by_side.columns[:4]) == ["example_key", "reference", "e2 output", "e2 rouge1"]


def test_score_prints_rouge_as_json(tmp_path, capsys):
    predictions, references = tmp_path / "p.txt", tmp_path / "r.txt"
    predictions.write_text("the cat sat\na dog barked\n", encoding="utf-8")
    references.write_text("the cat sat\na bird sang\n", encoding="utf-8")
    argv = ["score", "--predictions", str(predictions), "--references", str(references)]
    assert cli.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 2 and report["use_stemmer"] is False
    assert report["rouge1"]["mean"] == pytest.approx((1 + 1 / 3) / 2)
    assert report["rouge1"]["ci_low"] <= report["rouge1"]["mean"] <= report["rouge1"]["ci_high"]
    assert set(report) >= {"rouge2", "rougeL", "rougeLsum", "confidence", "resamples", "seed"}


# Errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--dataset", "nope"], "There is no dataset 'nope'"),
        (
            ["run", "--model", "{tmp}/missing"],
            "is not a model folder or GGUF file that Prompt Lab may open",
        ),
        (["run", "--top-p", "1.5"], "top_p must be in (0, 1]"),
        (["run", "--temperature", "0.7,-1"], "temperature must be > 0"),
        (["run", "--shots", "1,x"], "shots takes int values"),
        (["run", "--shots", "0,0"], "lists a value twice"),
        (["run", "--shots", "40"], "the pool has only 16 usable"),
        (["run", "--split", "train"], "no 'train' split"),
        (["run", "--limit", "0"], "limit must be at least 1"),
        (["run", "--limit", "many"], "--limit takes a whole number"),
        (["run", "--offset", "100"], "No examples left after offset 100"),
        (["run", "--format", "no placeholder"], "needs an {input} placeholder"),
        (["run", "--selection", "best"], "selection must be first, random or ids"),
        (["run", "--device", "tpu"], "Unknown device 'tpu'"),
        (["run", "--offset", "x"], "argument --offset: invalid int value"),
        (["show", "99"], "There is no experiment 99"),
        (["rerun", "99"], "There is no experiment 99"),
        (["resume", "99"], "There is no experiment 99"),
        (["resume", "1"], "complete; nothing to resume"),
        (["delete", "1", "99", "--yes"], "There is no experiment 99"),
        (["export", "99", "-o", "{tmp}/x.csv"], "There is no experiment 99"),
        (["export", "--study", "99", "-o", "{tmp}/x.csv"], "There is no study 99"),
        (["export", "-o", "{tmp}/x.csv"], "Give the experiment ids"),
        (["export", "1", "-o", "{tmp}/no/such/dir/x.csv"], "Cannot write"),
        (["datasets", "import", "{tmp}/none.csv", "--name", "x"], "Cannot read"),
        (["datasets", "import", "{csv}", "--name", "x", "--input-col", "text"], "no column 'text'"),
        (["datasets", "delete", "nope"], "There is no dataset 'nope'"),
        (["score", "--predictions", "{tmp}/none.txt", "--references", "{csv}"], "Cannot read"),
        (["score", "--predictions", "{csv}", "--references", "{one}"], "Got 4 predictions but 1"),
    ],
)
def test_bad_input_is_one_error_line_and_changes_nothing(
    study_db, tmp_path, tiny_causal_dir, csv_file, capsys, argv, message
):
    (tmp_path / "one.txt").write_text("just one\n", encoding="utf-8")
    places = {"tmp": tmp_path, "csv": csv_file, "one": tmp_path / "one.txt"}
    argv = [part.format(**places) if "{" in part and "}" in part else part for part in argv]
    model = ["--model", str(tiny_causal_dir)] if argv[0] == "run" and "--model" not in argv else []
    before = snapshot(study_db)
    assert invoke(study_db, *argv, *model) != 0
    err = capsys.readouterr().err
    assert_one_line_error(err)
    assert message in err
    assert snapshot(study_db) == before
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize(
    "url, message",
    [
        ("not a url", "is not a database URL"),
        ("sqlite:///{tmp}/no/such/folder/x.sqlite", "folder for the database does not exist"),
        ("sqlite:///{tmp}/plain.txt", "Cannot open the database"),
        ("nosuchdialect://x", "Cannot open the database 'nosuchdialect://x'"),
        ("postgresql://me:secret@localhost/db", "'postgresql://me:***@localhost/db'"),
    ],
)
def test_a_bad_database_url_is_one_error_line(tmp_path, capsys, url, message):
    (tmp_path / "plain.txt").write_text("no database here\n", encoding="utf-8")
    assert invoke(url.format(tmp=tmp_path), "list") == 1
    err = capsys.readouterr().err
    assert_one_line_error(err)
    assert message in err and "secret" not in err


def test_an_unexpected_error_is_an_apology_without_traceback(db, capsys, monkeypatch):
    def broken(**_kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr(queries, "list_experiments", broken)
    assert invoke(db, "list") == 1
    err = capsys.readouterr().err
    assert_one_line_error(err)
    assert "sorry" in err and "(ValueError)" in err and "--debug" in err


def test_python_m_core_reports_errors_without_a_traceback(tmp_path, tiny_causal_dir):
    db = f"sqlite:///{tmp_path}/t.sqlite"
    argv = ["run", "--dataset", "nope", "--model", str(tiny_causal_dir)]
    done = subprocess.run(
        [sys.executable, "-m", "core", "--db", db, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert_one_line_error(done.stderr)
    assert done.stderr.startswith("error: There is no dataset 'nope'.")
    assert snapshot(db)[:2] == (0, 0)


@pytest.mark.slow
def test_the_embedded_model_is_the_default(db, capsys):
    assert invoke(db, "run", "--limit", "1", "--max-new-tokens", "8", "--device", "cpu") == 0
    assert capsys.readouterr().out.startswith("experiment 1  rouge1 ")
    with session_scope(db) as session:
        (record,) = queries.list_experiments(session=session)
    assert record.model_id == "embedded:smollm2-135m-instruct" and record.status == "completed"


def test_shots_by_similarity_and_their_order_sweep_from_the_command_line(
    db, tiny_causal_dir, capsys, tmp_path, monkeypatch
):
    monkeypatch.setenv("PROMPT_LAB_CACHE", str(tmp_path / "cache"))
    argv = ["run", "--model", str(tiny_causal_dir), "--shots", "2", "--selection", "similar,mmr"]
    assert invoke(db, *argv, "--shot-order", "similar_last", "--mmr-lambda", "0.3", *FAST) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[1] for line in out] == ["selection=similar", "selection=mmr"]
    with session_scope(db) as session:
        first, second = (queries.get_experiment(session=session, experiment_id=i) for i in (1, 2))
        assert first.design["shot_order"] == second.design["shot_order"] == "similar_last"
        assert second.design["mmr_lambda"] == 0.3
    assert invoke(db, "run", "--model", str(tiny_causal_dir), "--shot-order", "sideways") == 1
    assert "shot_order must be given, reversed or similar_last" in capsys.readouterr().err


def test_compare_prints_verdicts_and_the_shot_curve(db, capsys):
    low = [0.20, 0.25, 0.18, 0.30, 0.22, 0.27, 0.21, 0.19, 0.26, 0.24, 0.23, 0.28]
    ids = [
        store_experiment(db, [x + bump for x in low], shots=k, limit=12, label=f"shots={k}")
        for k, bump in ((0, 0.0), (1, 0.1), (3, 0.1))
    ]
    assert invoke(db, "compare", *map(str, ids)) == 0
    out = capsys.readouterr().out
    assert f"#{ids[0]} shots=0: ROUGE-L 0.236 [" in out
    assert "paired over 12 examples; paired permutation, two-sided, exact" in out
    assert f"- #{ids[1]} shots=1 is better than #{ids[0]} shots=0 on ROUGE-L by 0.100" in out
    assert "Holm-adjusted over 2 comparisons" in out
    assert "shot-count curve (ROUGE-L): K=0: 0.236" in out
    assert "More than 1 shot does not help reliably" in out
    assert invoke(db, "compare", str(ids[0])) == 1
    assert "Give two or more experiment ids" in capsys.readouterr().err
    assert invoke(db, "compare", *map(str, ids), "--baseline", "99") == 1
    assert "The baseline 99 is not among" in capsys.readouterr().err
