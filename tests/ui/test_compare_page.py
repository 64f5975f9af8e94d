"""The Compare page in Streamlit's AppTest, on experiments stored without a model."""

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.evaluation import compare, stats
from core.reporting import export
from storage import queries
from storage.db import session_scope
from tests.test_compare import HOSTILE, store_experiment, store_study
from tests.ui.counted import add_result, counted, deferred_downloads
from tests.ui.shown import unescaped
from ui.state import key

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def db_url(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'compare-page.sqlite'}"
    monkeypatch.setenv("PROMPT_LAB_DB", url)
    return url


@pytest.fixture
def app(db_url):
    st.cache_resource.clear()  # cached resources leak between AppTest instances
    st.cache_data.clear()  # so does cached data: each test counts its own builds
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/compare.py")  # straight there: the Playground would load the model
    return at


def texts(at: AppTest) -> str:
    return "\n".join(element.value for element in at.text)


def test_nothing_selected_shows_a_message_not_a_traceback(app):
    app.run()
    assert not app.exception and not app.error
    assert "Pick two or more experiments" in app.info[0].value


def test_one_experiment_is_not_enough(app, db_url):
    only = store_experiment(db_url, [0.5] * 3)
    app.session_state["compare.ids"] = [only]
    app.run()
    assert not app.exception and not app.error
    assert "two or more experiments with results" in app.info[0].value


def test_sent_experiments_show_differing_settings_rouge_and_downloads(app, db_url):
    steady = store_experiment(db_url, [0.5] * 3, outputs=[HOSTILE, "b", "c"], label="steady")
    jumpy = store_experiment(db_url, [0.5, 0.1, 0.4], shots=1, label="jumpy")
    app.session_state["compare.ids"] = [steady, jumpy]
    app.run()
    assert not app.exception and not app.error
    summary = app.dataframe[0].value
    assert list(summary["design.shots"]) == [0, 1]
    assert list(summary["rougeL"]) == pytest.approx([0.5, 1 / 3])
    assert len(app.get("plotly_chart")) == 2  # ROUGE by experiment, and against shots
    labels = [button.label for button in app.get("download_button")]
    assert labels == [
        "Download summary CSV",
        "Download per-example CSV",
        "Download side-by-side CSV",
    ]
    assert app.session_state[key("compare", "ids")] == [steady, jumpy]


def test_word_diff_is_escaped_text(app, db_url):
    steady = store_experiment(db_url, [0.5] * 3, outputs=[HOSTILE, "b", "c"])
    jumpy = store_experiment(db_url, [0.5, 0.1, 0.4], shots=1)
    app.session_state["compare.ids"] = [steady, jumpy]
    app.run()
    app.number_input(key=key("compare", "count")).set_value(3).run()
    shown = "\n".join(element.value for element in app.html)
    assert len(app.html) == 6
    assert "&lt;script&gt;alert(1)&lt;/script&gt; **bold** $x$" in shown
    assert "<script>" not in shown


def test_largest_disagreement_comes_first(app, db_url):
    steady = store_experiment(db_url, [0.5, 0.5, 0.5])
    jumpy = store_experiment(db_url, [0.5, 0.1, 0.4], shots=1)
    app.session_state["compare.ids"] = [steady, jumpy]
    app.run()
    examples = app.dataframe[-1].value
    assert examples["spread"].tolist() == pytest.approx([0.4, 0.1, 0.0])
    assert "rougeL spread 0.400" in texts(app)


def test_a_study_draws_the_shots_curve(app, db_url):
    store_study(db_url, shots=(0, 1, 3))
    app.run()
    app.radio(key=key("compare", "mode")).set_value("A study").run()
    assert not app.exception and not app.error
    assert len(app.get("plotly_chart")) == 2  # by variant, and the shot-count curve
    assert "How many shots are enough?" in " ".join(m.value for m in app.markdown)


def test_different_examples_warn_but_keep_the_summary(app, db_url):
    first = store_experiment(db_url, [0.5] * 3)
    later = store_experiment(db_url, [0.5] * 3, offset=3)
    app.session_state["compare.ids"] = [first, later]
    app.run()
    assert not app.exception and not app.error
    assert "evaluated on different examples" in app.warning[0].value
    assert list(app.dataframe[0].value["offset"]) == [0, 3]


def test_ids_that_no_longer_exist_are_left_out_with_a_warning(app, db_url):
    ids = [store_experiment(db_url, [0.5] * 3, shots=k) for k in (0, 1)]
    app.session_state["compare.ids"] = [*ids, 999]
    app.run()
    assert not app.exception and not app.error
    assert "999 no longer exist" in app.warning[0].value
    assert len(app.dataframe[0].value) == 2


def test_experiments_without_results_are_left_out_by_name(app, db_url):
    from core.runs import experiments
    from core.runs.experiments import RunSpec

    ids = [store_experiment(db_url, [0.5] * 3, shots=k) for k in (0, 1)]
    pending = experiments.create(RunSpec(limit=3), db_url=db_url)
    app.session_state["compare.ids"] = [*ids, pending]
    app.run()
    assert not app.exception and not app.error
    assert f"experiment {pending} (pending, 0/3 done)" in app.warning[0].value
    assert len(app.dataframe[0].value) == 2


def test_the_selection_survives_a_visit_to_another_page(app, db_url):
    first = store_experiment(db_url, [0.5] * 3, label="first")
    second = store_experiment(db_url, [0.4] * 3, shots=1, label="second")
    app.run()
    app.multiselect(key=key("compare", "ids")).set_value([first, second]).run()
    app.selectbox(key=key("compare", "metric")).set_value("rouge1").run()
    app.switch_page("pages/datasets.py").run()
    app.switch_page("pages/compare.py").run()
    assert not app.exception
    assert app.multiselect(key=key("compare", "ids")).value == [first, second]
    assert app.selectbox(key=key("compare", "metric")).value == "rouge1"


def test_verdicts_say_whether_a_difference_is_real(app, db_url):
    low = [0.20, 0.25, 0.18, 0.30, 0.22, 0.27, 0.21, 0.19, 0.26, 0.24, 0.23, 0.28]
    zero = store_experiment(db_url, low, limit=12, label="zero")
    one = store_experiment(db_url, [x + 0.1 for x in low], shots=1, limit=12, label="one")
    same = store_experiment(db_url, low, shots=3, limit=12, label="three")
    app.session_state["compare.ids"] = [zero, one, same]
    app.run()
    assert not app.exception and not app.error
    assert any(f"#{one} one is better than #{zero} zero" in unescaped(s.value) for s in app.success)
    assert any("No difference" in unescaped(i.value) for i in app.info)
    captions = " ".join(c.value for c in app.caption)
    assert "2 comparisons were made, so p is Holm-adjusted" in captions
    assert "10,000 resamples, seed 0" in captions
    assert "How many shots are enough?" in " ".join(m.value for m in app.markdown)
    assert any("shot" in t.value and "p" in t.value for t in app.text)


def test_a_rerun_reads_no_results_and_resamples_nothing_again(app, db_url, monkeypatch):
    ids = store_study(db_url, shots=(0, 1, 3))
    reads = counted(monkeypatch, export, "_results_frame")
    resampled = counted(monkeypatch, stats, "paired_bootstrap_ci")
    written = counted(monkeypatch, export, "to_csv_bytes")
    app.session_state["compare.ids"] = ids
    app.run()
    first = (len(reads), len(resampled))
    assert first[0] >= 1 and first[1] >= 1
    assert not written  # no CSV until one is downloaded
    app.run()
    assert not app.exception and not app.error
    assert (len(reads), len(resampled), len(written)) == (*first, 0)
    app.selectbox(key=key("compare", "tested")).set_value("rouge1").run()
    assert len(resampled) > first[1]  # another score tested: computed for it


def test_results_stored_since_the_last_rerun_are_shown(app, db_url):
    done = store_experiment(db_url, [0.5] * 3, label="done")
    running = store_experiment(db_url, [0.2, 0.3], shots=1, finish=False, label="running")
    app.session_state["compare.ids"] = [done, running]
    app.run()
    assert app.dataframe[0].value["done"].tolist() == ["3/3", "2/3"]
    add_result(db_url, running, position=2, score=0.9, output="a late answer")
    app.run()
    assert not app.exception and not app.error
    summary = app.dataframe[0].value
    assert summary["done"].tolist() == ["3/3", "3/3"]
    assert summary["rougeL"].tolist()[1] == pytest.approx((0.2 + 0.3 + 0.9) / 3)
    assert "a late answer" in app.dataframe[-1].value[f"e{running} output"].tolist()


def test_a_deleted_experiment_leaves_and_a_new_one_under_its_id_is_shown(app, db_url):
    ids = [store_experiment(db_url, [0.5] * 3, shots=k, label=f"k{k}") for k in (0, 1, 3)]
    app.session_state["compare.ids"] = ids
    app.run()
    assert len(app.dataframe[0].value) == 3
    with session_scope(db_url) as session:
        queries.delete_experiments(session=session, experiment_ids=[ids[2]])
    app.run()
    assert f"{ids[2]} no longer exist" in app.warning[0].value
    assert app.dataframe[0].value["variant"].tolist() == [f"#{ids[0]} k0", f"#{ids[1]} k1"]
    newer = store_experiment(db_url, [0.1] * 3, shots=5, label="newer")
    assert newer == ids[2]  # SQLite hands the freed id out again
    app.session_state["compare.ids"] = ids  # sent again, as from the Experiments page
    app.run()
    summary = app.dataframe[0].value
    assert summary["variant"].tolist()[2] == f"#{newer} newer"
    assert summary["rougeL"].tolist() == pytest.approx([0.5, 0.5, 0.1])


def test_downloads_are_written_on_click_with_the_export_bytes(app, db_url, monkeypatch):
    files = deferred_downloads(monkeypatch)
    ids = store_study(db_url, shots=(0, 1))
    app.session_state["compare.ids"] = ids
    app.run()
    with session_scope(db_url) as session:
        tables = {
            "summary": export.summary_table(session=session, experiment_ids=ids),
            "per-example": export.per_example_table(session=session, experiment_ids=ids),
            "side-by-side": export.wide_table(session=session, experiment_ids=ids),
        }
    expected = {compare.csv_name(ids, n): export.to_csv_bytes(t) for n, t in tables.items()}
    assert {name: write() for name, write in files.items()} == expected
    add_result(db_url, ids[0], position=0, score=0.9, output="stored after the page was drawn")
    per_example = files[compare.csv_name(ids, "per-example")]()
    assert "stored after the page was drawn" in per_example.decode()  # as of the click
