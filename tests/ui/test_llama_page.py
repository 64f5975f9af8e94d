"""llama.cpp (local) as the third choice of "Generate with", in Streamlit's AppTest on a real
SQLite file and the embedded GGUF: on the Experiments page what it cannot do is refused by name
before Start, a run goes to the engine and is recorded with it (engine and throughput in the
stored list), duplicate-as-new brings the choice back; on the Playground an answer streams from
it and is stored as a llama.cpp run."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.models import registry as models
from core.reporting import export
from core.runs import jobs
from core.served import llama_engine
from storage import queries
from storage.db import session_scope
from tests.ui.shown import unescaped
from tests.ui.test_experiments_page import button, wait_for_jobs

pytestmark = pytest.mark.slow  # the engine and the page's prompts use the embedded model
APP = str(Path(__file__).resolve().parents[2] / "app.py")
K = "keep.experiments."
P = "keep.playground."
LLAMA = "llama.cpp (local)"


@pytest.fixture(autouse=True)
def no_engine_left():
    yield
    for job in jobs.active():
        job.cancel()
    wait_for_jobs()
    llama_engine.stop(force=True)  # no child process outlives the test
    models.unload()


@pytest.fixture
def app(db):
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("pages/experiments.py").run()
    at.number_input(key=K + "limit").set_value(3).run()
    at.number_input(key=K + "max_new_tokens").set_value(8).run()
    at.radio(key=K + "backend").set_value(LLAMA).run()
    assert not at.exception
    return at


def texts(elements) -> list[str]:
    return [unescaped(e.value) for e in elements]


def test_the_choice_says_what_it_uses_and_how_its_text_differs(app):
    captions = " ".join(texts(app.caption))
    assert "greedy text can differ from transformers'" in captions
    assert "1 slot reproduces exactly" in captions
    assert "only transformers computes here" in captions  # confidence and inspector stay there
    app.number_input(key=K + "llama.slots").set_value(2).run()
    assert "will use 2 parallel slot(s) (as asked), 8192 tokens of context per slot" in " ".join(
        texts(app.caption)
    )
    assert not app.error and not button(app, "Start").disabled


def test_beam_search_and_confidence_are_refused_by_name_and_block_the_start(app):
    app.number_input(key=K + "num_beams").set_value(2).run()
    errors = texts(app.error)
    assert any("num_beams=2" in e and "beam search" in e for e in errors), errors
    assert button(app, "Start").disabled
    app.number_input(key=K + "num_beams").set_value(1).run()
    app.checkbox(key=K + "token_confidence").check().run()
    assert any(
        "Per-token confidence needs the model's probabilities" in e for e in texts(app.error)
    )
    assert button(app, "Start").disabled
    assert llama_engine.running() is None  # nothing was started to find out


def test_a_model_that_is_no_gguf_file_is_refused(app):
    app.text_input(key=K + "model").set_value("HuggingFaceTB/SmolLM2-135M-Instruct").run()
    errors = texts(app.error)
    assert any("runs GGUF models only" in e and "HuggingFaceTB/SmolLM2" in e for e in errors)
    assert button(app, "Start").disabled


def test_start_runs_on_the_engine_records_it_and_duplicate_brings_it_back(app, db):
    app.number_input(key=K + "llama.slots").set_value(1).run()
    button(app, "Start").click().run()
    assert not app.exception and not app.error
    wait_for_jobs()
    app.run()
    with session_scope(db) as session:
        (record,) = queries.list_experiments(session=session)
        results = queries.results_of(session=session, experiment_id=record.id)
        summary = export.summary_table(session=session).set_index("id").loc[record.id]
    assert (record.backend, record.status) == ("llama.cpp", "completed")
    engine = "llama.cpp (local), 1 slot(s), SmolLM2-135M-Instruct.Q4_1.gguf"
    assert record.endpoint == engine and record.spec["slots"] == 1
    assert len(results) == 3 and all(r.output.strip() and r.new_tokens > 0 for r in results)
    seconds = (record.finished_at - record.started_at).total_seconds()
    assert summary["engine"] == engine
    assert summary["new_tokens"] == sum(r.new_tokens for r in results)
    assert summary["tokens_per_s"] == pytest.approx(summary["new_tokens"] / seconds)
    captions = " ".join(texts(app.caption))
    assert f"tok/s ({summary['new_tokens']} new tokens in" in captions and engine in captions
    table = app.dataframe[0].value
    assert table["engine"].tolist() == [engine] and table["tokens_per_s"].iloc[0] > 0
    app.radio(key=K + "backend").set_value("Local model").run()
    app.multiselect(key=K + "selected").set_value([record.id]).run()
    button(app, "Duplicate as new").click().run()
    assert app.radio(key=K + "backend").value == LLAMA
    assert app.number_input(key=K + "llama.slots").value == 1


# --- the Playground ---------------------------------------------------------------------------


def test_the_playground_streams_from_the_engine_and_stores_a_llama_cpp_run(db):
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.number_input(key=P + "max_new_tokens").set_value(12).run()
    at.radio(key=P + "backend").set_value(LLAMA).run()
    at.number_input(key=P + "llama.slots").set_value(1).run()
    assert not at.exception and not at.error
    assert "greedy text can differ from transformers'" in " ".join(texts(at.caption))
    button(at, "Run").click().run()
    assert not at.exception and not at.error
    with session_scope(db) as session:
        (record,) = queries.list_experiments(session=session)
        (result,) = queries.results_of(session=session, experiment_id=record.id)
    assert (record.backend, record.origin, record.status) == (
        "llama.cpp",
        "playground",
        "completed",
    )
    assert record.endpoint == "llama.cpp (local), 1 slot(s), SmolLM2-135M-Instruct.Q4_1.gguf"
    assert record.spec["engine"] == "llama.cpp" and record.spec["slots"] == 1
    assert record.library_versions["llama_cpp_slots"] == "1"
    assert len(record.library_versions["gguf_sha256"]) == 64
    assert result.output.strip() and result.output in [t.value for t in at.text]
    captions = " ".join(texts(at.caption))
    assert f"stored as experiment {record.id}" in captions
    assert "only transformers computes here" in captions
    assert "Per-token confidence" not in [t.label for t in at.toggle]
    # Its start is when the answer began: its throughput is the answer's own.
    seconds = (record.finished_at - record.started_at).total_seconds()
    assert result.latency_s <= seconds < result.latency_s + 30
