"""The Experiments page in Streamlit's AppTest, on the real embedded model and a real SQLite
file: a sweep with progress, cancel, the stored list, duplicate, re-run and delete."""

import threading
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.datasets.data import Dataset, Example
from core.models import registry as models
from core.reporting import export
from core.runs import experiments, jobs
from storage import queries
from storage.db import session_scope
from tests.test_compare import store_experiment, store_study
from tests.test_lifecycle import mark_running_here
from tests.ui.counted import add_result, counted, deferred_downloads
from tests.ui.shown import unescaped

pytestmark = pytest.mark.slow
APP = str(Path(__file__).resolve().parents[2] / "app.py")
K = "keep.experiments."


@pytest.fixture
def app(db):
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("pages/experiments.py").run()
    assert not at.exception
    at.number_input(key=K + "max_new_tokens").set_value(10).run()
    yield at
    for job in jobs.active():
        job.cancel()
    wait_for_jobs()
    models.unload()


def wait_for_jobs(timeout: float = 300) -> None:
    """Join the background runs' threads (the timeout only guards against a hang)."""
    names = {f"job-{job.id}" for job in jobs.active()}
    for worker in threading.enumerate():
        if worker.name in names:
            worker.join(timeout)
    assert not jobs.active(), "a background run did not finish"


def button(at, label):
    return next(b for b in at.button if b.label == label)


def stored(db):
    with session_scope(db) as session:
        return queries.list_experiments(session=session)


def progress_texts(at):
    return [p.proto.text for p in at.get("progress")]


def test_a_sweep_of_shots_runs_in_the_background_and_lands_in_the_list(app, db):
    app.number_input(key=K + "limit").set_value(3).run()
    app.multiselect(key=K + "vary").set_value(["shots"]).run()
    app.text_input(key=K + "values.shots").set_value("0, 1").run()
    assert "2 experiment(s) × 3 example(s) = 6 generations." in [c.value for c in app.caption]
    button(app, "Start").click().run()
    assert not app.exception and not app.error
    assert any("/ 6 examples" in text for text in progress_texts(app))
    wait_for_jobs()
    app.run()
    assert any("completed, 6 / 6 examples stored" in s.value for s in app.success)
    table = app.dataframe[0].value
    assert table["label"].tolist() == ["shots=1", "shots=0"]
    assert table["status"].tolist() == ["completed", "completed"]
    assert table["study_id"].nunique() == 1
    app.multiselect(key=K + "selected").set_value([1, 2]).run()
    per_example = app.dataframe[-1].value
    assert len(per_example) == 3 and per_example["output"].str.len().gt(0).all()
    assert len(app.get("download_button")) == 3
    button(app, "Open in Compare").click().run()
    assert not app.exception
    assert app.session_state["keep.compare.ids"] == [1, 2]  # the Compare page took them


def test_cancel_keeps_finished_examples_and_resume_finishes_the_rest(app, db):
    app.number_input(key=K + "limit").set_value(6).run()
    app.number_input(key=K + "batch_size").set_value(1).run()
    button(app, "Start").click().run()
    button(app, "Cancel").click().run()
    wait_for_jobs()
    app.run()
    (record,) = stored(db)
    assert record.status == "interrupted" and 1 <= record.n_done < 6
    assert any("Resume it from the list" in w.value for w in app.warning)
    app.multiselect(key=K + "selected").set_value([record.id]).run()
    button(app, "Resume").click().run()
    wait_for_jobs()
    app.run()
    (record,) = stored(db)
    assert record.status == "completed" and record.n_done == 6


def test_duplicate_as_new_fills_the_form_and_delete_asks_first(app, db):
    app.number_input(key=K + "limit").set_value(1).run()
    app.number_input(key=K + "shots").set_value(1).run()
    app.text_input(key=K + "label").set_value("one-shot baseline").run()
    button(app, "Start").click().run()
    wait_for_jobs()
    app.run()
    app.number_input(key=K + "shots").set_value(0).run()
    app.text_input(key=K + "label").set_value("").run()
    app.multiselect(key=K + "selected").set_value([1]).run()
    button(app, "Duplicate as new").click().run()
    assert app.number_input(key=K + "shots").value == 1
    assert app.text_input(key=K + "label").value == "one-shot baseline"
    assert any("filled in" in i.value for i in app.info)
    app.multiselect(key=K + "selected").set_value([1]).run()
    assert button(app, "Delete for good").disabled
    next(c for c in app.checkbox if c.label.startswith("Yes, delete")).check().run()
    button(app, "Delete for good").click().run()
    assert stored(db) == []
    assert any("Deleted 1 experiment(s)." in s.value for s in app.success)


def test_bad_sweep_values_show_a_message_and_start_nothing(app, db):
    app.multiselect(key=K + "vary").set_value(["temperature"]).run()
    app.text_input(key=K + "values.temperature").set_value("0, warm").run()
    assert not app.exception
    assert "temperature takes float values" in unescaped(app.error[0].value)
    assert not [b for b in app.button if b.label == "Start"]
    assert stored(db) == []


def test_playground_runs_are_hidden_from_the_list_unless_asked_for(app, db):
    app.switch_page("pages/playground.py").run()
    app.number_input(key="keep.playground.max_new_tokens").set_value(4).run()
    button(app, "Run").click().run()
    app.switch_page("pages/experiments.py").run()
    assert any("No stored experiments match" in i.value for i in app.info)
    app.toggle(key=K + "f.playground").set_value(True).run()
    assert app.dataframe[0].value["label"].tolist() == ["playground"]


def test_examples_without_references_are_flagged_before_a_run(app, db):
    unscored = Dataset("unscored", (Example("u1", "#Person1#: hi"), Example("u2", "hello")))
    with session_scope(db) as session:
        queries.save_dataset(session=session, dataset=unscored)
    app.run()
    app.selectbox(key=K + "dataset").set_value("unscored").run()
    assert not app.exception
    assert any("2 of these 2 examples have no reference" in w.value for w in app.warning)


def test_repeats_sweep_the_seed_and_only_apply_to_sampling(app, db):
    app.number_input(key=K + "limit").set_value(2).run()
    assert app.number_input(key=K + "repeats").disabled  # greedy: every seed gives the same
    app.toggle(key=K + "do_sample").set_value(True).run()
    app.number_input(key=K + "seed").set_value(7).run()
    app.number_input(key=K + "repeats").set_value(3).run()
    assert "3 experiment(s) × 2 example(s) = 6 generations." in [c.value for c in app.caption]
    app.multiselect(key=K + "vary").set_value(["seed"]).run()
    assert "take seed out of Vary" in unescaped(app.error[0].value)


def test_deleting_a_running_experiment_is_refused_with_a_message_and_loses_nothing(app, db):
    experiment_id = experiments.create(experiments.RunSpec(limit=1), db_url=db)
    mark_running_here(db, experiment_id)
    app.run()
    app.multiselect(key=K + "selected").set_value([experiment_id]).run()
    next(c for c in app.checkbox if c.label.startswith("Yes, delete")).check().run()
    button(app, "Delete for good").click().run()
    assert not app.exception
    assert f"Experiment {experiment_id} is running; cancel it first." in [
        unescaped(e.value) for e in app.error
    ]
    assert [r.id for r in stored(db)] == [experiment_id]
    assert app.multiselect(key=K + "selected").value == [experiment_id]
    assert not app.success


def test_a_users_dataset_named_playground_is_offered_in_the_form(app, db):
    mine = Dataset("playground", (Example("p1", "#Person1#: hi", "a greeting", "eval"),))
    with session_scope(db) as session:
        queries.save_dataset(session=session, dataset=mine)
    app.run()
    assert "playground" in app.selectbox(key=K + "dataset").options
    app.selectbox(key=K + "dataset").set_value("playground").run()
    assert not app.exception
    assert "1 experiment(s) × 1 example(s) = 1 generations." in [c.value for c in app.caption]


@pytest.fixture
def page(db):
    """The page opened straight away, without the Playground (and its model) first."""
    st.cache_data.clear()  # cached data outlives an AppTest: each test counts its own builds
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/experiments.py")
    return at


def test_a_rerun_of_open_experiments_reads_nothing_again_and_writes_no_csv(page, db, monkeypatch):
    ids = store_study(db, shots=(0, 1))
    results_read = counted(monkeypatch, export, "_results_frame")
    rows_listed = counted(monkeypatch, export, "_summary_row")
    datasets_read = counted(monkeypatch, queries, "load_dataset")
    written = counted(monkeypatch, export, "to_csv_bytes")
    page.session_state[K + "selected"] = ids
    page.run()
    assert len(page.get("download_button")) == 3
    first = (len(results_read), len(rows_listed), len(datasets_read))
    assert min(first) >= 1
    assert not written  # no CSV until one is downloaded
    page.run()
    assert not page.exception and not page.error
    assert (len(results_read), len(rows_listed), len(datasets_read), len(written)) == (*first, 0)


def test_a_dataset_stored_again_is_read_again(page, db):
    def store(size: int) -> None:
        examples = tuple(
            Example(f"m{i}", f"#Person1#: {i}", "a reply", "eval") for i in range(size)
        )
        with session_scope(db) as session:
            queries.save_dataset(session=session, dataset=Dataset("mine", examples), replace=True)

    store(2)
    page.run()
    page.selectbox(key=K + "dataset").set_value("mine").run()
    assert page.number_input(key=K + "limit").max == 2
    store(5)
    page.run()
    assert not page.exception and not page.error
    assert page.number_input(key=K + "limit").max == 5


def test_results_stored_since_the_last_rerun_are_shown(page, db):
    running = store_experiment(db, [0.2, 0.3], finish=False, label="running")
    page.session_state[K + "selected"] = [running]
    page.run()
    assert len(page.dataframe[-1].value) == 2
    add_result(db, running, position=2, score=0.9, output="a late answer")
    page.run()
    assert not page.exception and not page.error
    assert page.dataframe[0].value["n_done"].tolist() == [3]
    assert page.dataframe[-1].value["output"].tolist()[-1] == "a late answer"


def test_a_deleted_experiment_leaves_and_a_new_one_under_its_id_is_shown(page, db):
    kept_id = store_experiment(db, [0.5] * 3, label="kept")
    gone = store_experiment(db, [0.4] * 3, shots=1, outputs=["old"] * 3, label="gone")
    page.session_state[K + "selected"] = [kept_id, gone]
    page.run()
    assert page.dataframe[0].value["label"].tolist() == ["gone", "kept"]
    with session_scope(db) as session:
        queries.delete_experiments(session=session, experiment_ids=[gone])
    page.run()
    assert page.dataframe[0].value["label"].tolist() == ["kept"]
    assert page.multiselect(key=K + "selected").value == [kept_id]
    newer = store_experiment(db, [0.1] * 3, shots=3, outputs=["new a", "new b", "new c"])
    assert newer == gone  # SQLite hands the freed id out again
    page.run()
    page.multiselect(key=K + "selected").set_value([newer]).run()
    assert page.dataframe[-1].value["output"].tolist() == ["new a", "new b", "new c"]


def test_downloads_are_written_on_click_with_the_export_bytes(page, db, monkeypatch):
    files = deferred_downloads(monkeypatch)
    ids = store_study(db, shots=(0, 1))
    page.session_state[K + "selected"] = ids
    page.run()
    stem = "experiments-" + "-".join(map(str, ids))
    tables = {
        "summary": export.summary_table,
        "per-example": export.per_example_table,
        "wide": export.wide_table,
    }
    with session_scope(db) as session:
        expected = {
            f"{stem}-{name}.csv": export.to_csv_bytes(build(session=session, experiment_ids=ids))
            for name, build in tables.items()
        }
    assert {name: write() for name, write in files.items()} == expected
