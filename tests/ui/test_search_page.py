"""The Search page in Streamlit's AppTest, on a real SQLite file and the embedded model: what an
empty library says, a refused search's sentence with the form kept, and a real search on a tiny
slice run in the background to its result: the curve, the candidates (no test-set column), the
verdict, and the study opened in Compare."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.generation.settings import GenerationSettings
from core.library import versions
from core.models import registry as models
from core.prompting.design import PromptDesign
from core.runs import jobs
from core.search import search
from tests.ui.shown import unescaped
from tests.ui.test_experiments_page import button, wait_for_jobs

pytestmark = pytest.mark.slow  # the page's real search runs the embedded model
APP = str(Path(__file__).resolve().parents[2] / "app.py")
K = "keep.search."


@pytest.fixture
def app(db):
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("pages/search.py").run()
    assert not at.exception
    yield at
    for job in jobs.active():
        job.cancel()
    wait_for_jobs()
    models.unload()


@pytest.fixture
def saved(db) -> str:
    design = PromptDesign(instruction="Summarise the dialogue in one sentence.")
    return versions.save_version("summary", design, GenerationSettings(max_new_tokens=8)).ref


def texts(elements) -> list[str]:
    return [unescaped(e.value) for e in elements]


def test_an_empty_library_says_how_to_save_a_version(app):
    assert not app.exception and not app.error
    info = " ".join(texts(app.info))
    assert "the library has none yet" in info and "Prompts page" in info
    assert not app.get("form")  # nothing to start from: no form
    assert "No searches yet: start one above." in texts(app.caption)


@pytest.mark.parametrize(
    ("values", "sentence"),
    [
        (
            {"budget": 0, "minutes": 0.0},
            "A search needs a budget: a number of designs, or minutes.",
        ),
        ({"limit": 3}, "limit must be at least 4 (two to select on, two to test); got 3."),
        ({"save_as": "bad name!"}, "A prompt name uses letters, digits"),
    ],
)
def test_a_refused_search_shows_its_sentence_and_keeps_the_form(app, saved, db, values, sentence):
    app.run()
    for name, value in values.items():
        widget = app.text_input if name == "save_as" else app.number_input
        widget(key=K + name).set_value(value)
    app.text_area(key=K + "instructions").set_value("Say what they agreed.")
    app.button(key="search.start").click().run()
    assert not app.exception
    assert any(sentence in text for text in texts(app.error)), texts(app.error)
    for name, value in values.items():  # nothing typed is lost
        widget = app.text_input if name == "save_as" else app.number_input
        assert widget(key=K + name).value == value
    assert app.text_area(key=K + "instructions").value == "Say what they agreed."
    assert app.selectbox(key=K + "prompt").value == saved
    assert search.list_searches(db_url=db) == []


def test_a_search_runs_in_the_background_to_its_honest_result(app, db):
    # A base that asks for a useless answer, and a variant that asks for the summary: greedy
    # decoding makes the variant the likely winner, so the saved version is shown too.
    base = PromptDesign(instruction="Reply with the single word: banana.")
    versions.save_version("summary", base, GenerationSettings(max_new_tokens=8))
    app.run()
    app.number_input(key=K + "limit").set_value(6)
    app.number_input(key=K + "budget").set_value(3)
    app.text_area(key=K + "instructions").set_value("Summarise the dialogue in one sentence.")
    app.text_input(key=K + "save_as").set_value("summary-searched")
    app.button(key="search.start").click().run()
    assert not app.exception and not app.error, texts(app.error)
    assert any("of 3 designs tried" in p.proto.text for p in app.get("progress"))
    wait_for_jobs()
    app.run()
    assert not app.exception and not app.error, texts(app.error)
    (state,) = search.list_searches(db_url=db)
    assert state.status == "completed" and len(state.candidates) == 3
    assert app.selectbox(key=K + "chosen").value == state.id
    listed = next(d.value for d in app.dataframe if "status" in d.value.columns)
    assert listed["status"].tolist() == ["completed"]
    assert not [c for c in listed.columns if "test" in c.lower()]
    assert any(text.startswith("Completed: 3 of 3 designs tried") for text in texts(app.success))
    assert len(app.get("plotly_chart")) == 1  # the best-so-far curve
    table = next(d.value for d in app.dataframe if "how" in d.value.columns)
    assert table["#"].tolist() == [1, 2, 3]
    assert table["how"].tolist()[:2] == ["the base design", "instruction variant 1"]
    assert not [c for c in table.columns if "test" in c.lower()]  # never a test-set score
    assert table["best so far"].tolist() == [best for _, best in state.curve()]
    assert table["chrF (selection)"].tolist() == [c.score for c in state.candidates]
    summary = " ".join(texts(app.info))
    assert state.result["sentence"] in summary
    design = next(d.value for d in app.dataframe if "winner" in d.value.columns)
    assert design["base"].iloc[-1] == base.instruction  # the instruction, field by field
    if state.result["winner"] != 1:
        assert state.result["version"] == "summary-searched@1"
        assert "Saved in the library as summary-searched@1." in texts(app.success)
        assert "the optimism of selecting is" in summary
    button(app, "Open the study in Compare").click().run()
    assert not app.exception
    assert app.session_state["keep.compare.mode"] == "A study"
    assert app.session_state["keep.compare.study"] == state.study_id


def test_cancel_keeps_the_candidates_and_resume_finishes_the_search(app, saved, db):
    app.run()
    app.number_input(key=K + "limit").set_value(4)
    app.number_input(key=K + "budget").set_value(2)
    app.button(key="search.start").click().run()
    button(app, "Cancel").click().run()
    wait_for_jobs()
    app.run()
    assert not app.exception and not app.error, texts(app.error)
    (state,) = search.list_searches(db_url=db)
    assert state.status == "interrupted"
    assert any(t.startswith("Interrupted:") for t in texts(app.warning)), texts(app.warning)
    button(app, "Resume").click().run()
    assert not app.exception and not app.error, texts(app.error)
    wait_for_jobs()
    app.run()
    assert search.get_search(state.id, db_url=db).status == "completed"
    assert any(text.startswith("Completed: 2 of 2 designs tried") for text in texts(app.success))
    assert not [b for b in app.button if b.label in ("Resume", "Cancel")]
