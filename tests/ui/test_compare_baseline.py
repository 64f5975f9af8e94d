"""The Compare page on any metric, with a pinned baseline, in Streamlit's AppTest on experiments
stored without a model (a real SQLite file): every metric offered, the difference from the
baseline, "what got worse" by a margin, and each output rated by whoever is signed in."""

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.runs import rescoring
from storage import queries
from storage.db import session_scope
from tests.test_compare import store_experiment
from tests.ui.shown import unescaped
from ui.state import key

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def db_url(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'compare-baseline.sqlite'}"
    monkeypatch.setenv("PROMPT_LAB_DB", url)
    return url


@pytest.fixture
def app(db_url):
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/compare.py")
    return at


@pytest.fixture
def pair(db_url) -> tuple[int, int, list[str]]:
    """A baseline that repeats the references, and a variant that does but for one answer."""
    first = store_experiment(db_url, [0.5] * 3, label="first")
    with session_scope(db_url) as session:
        results = queries.results_of(session=session, experiment_id=first)
    references = [r.reference for r in results]
    base = store_experiment(db_url, [0.9, 0.9, 0.9], outputs=references, label="base")
    other = store_experiment(
        db_url, [0.9, 0.2, 0.85], outputs=[references[0], "x", references[2]], label="other"
    )
    for experiment_id in (base, other):
        rescoring.rescore(experiment_id, ["chrf"], db_url=db_url)
    return base, other, [r.example_key for r in results]


def test_every_metric_is_offered_charted_and_tested(app, pair):
    base, other, _ = pair
    app.session_state["compare.ids"] = [base, other]
    app.run()
    assert not app.exception and not app.error
    tested = app.selectbox(key=key("compare", "tested"))
    assert tested.options == ["ROUGE-1", "ROUGE-2", "ROUGE-L", "ROUGE-Lsum", "chrF"]
    tested.set_value("chrf").run()
    assert not app.exception
    assert any("on chrF" in unescaped(m.value) for m in [*app.success, *app.info])
    app.selectbox(key=key("compare", "chart")).set_value("chrf").run()
    assert len(app.get("plotly_chart")) == 1
    summary = app.dataframe[0].value
    assert {"chrf", "chrf ci_low", "chrf ci_high", "chrf corpus"} <= set(summary.columns)


def test_the_baseline_shows_differences_and_what_got_worse(app, pair):
    base, other, keys = pair
    app.session_state["compare.ids"] = [base, other]
    app.run()
    app.selectbox(key=key("compare", "baseline")).set_value(base).run()
    assert not app.exception and not app.error
    differences = next(d.value for d in app.dataframe if "Δ rougeL" in d.value.columns)
    assert differences["id"].tolist() == [other]
    assert differences["Δ rougeL"].tolist() == pytest.approx([(0.9 + 0.2 + 0.85) / 3 - 0.9])
    app.selectbox(key=key("compare", "metric")).set_value("rougeL").run()
    app.toggle(key=key("compare", "worse")).set_value(True).run()
    app.number_input(key=key("compare", "margin.rougeL")).set_value(0.1).run()
    worse = app.dataframe[-1].value
    assert worse["example_key"].tolist() == [keys[1]]
    assert worse["worse by"].tolist() == pytest.approx([0.7])
    assert "1 of 3 examples where a variant scores lower than the baseline" in " ".join(
        unescaped(c.value) for c in app.caption
    )
    assert "worse than the baseline by 0.700" in "\n".join(t.value for t in app.text)
    app.number_input(key=key("compare", "margin.rougeL")).set_value(0.8).run()
    assert any("No variant does worse" in i.value for i in app.info)


def test_an_output_rated_on_the_page_is_stored_for_the_local_user(app, pair, db_url):
    base, other, _ = pair
    app.session_state["compare.ids"] = [base, other]
    app.run()
    app.number_input(key=key("compare", "count")).set_value(1).run()
    shown_key = app.dataframe[-1].value["example_key"].iloc[0]
    widget = f"rate.examples.e{other}.{shown_key}"
    # A form: its values go with the click that submits it.
    app.button_group(key=f"{widget}.good_bad").set_value(0)
    app.text_input(key=f"{widget}.note").input("answers with one letter")
    app.button(key=f"{widget}.save").click().run()
    assert not app.exception
    with session_scope(db_url) as session:
        (rating,) = queries.ratings_of(session=session, experiment_ids=[other])
    assert (rating.example_key, rating.value, rating.note) == (
        shown_key,
        0,
        "answers with one letter",
    )
