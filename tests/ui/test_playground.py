"""The Playground page in Streamlit's AppTest, on the real embedded model and a real SQLite file."""

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.datasets.data import Dataset, Example
from core.models import registry as models
from core.runs import playground
from storage import queries
from storage.db import session_scope
from tests.ui.shown import unescaped

pytestmark = pytest.mark.slow
APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def app(db):
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert not at.exception
    at.number_input(key="keep.playground.max_new_tokens").set_value(12).run()
    yield at
    models.unload()


def html_of(at) -> str:
    return "".join(node.proto.body for node in at.get("html"))


def stored_runs(db):
    with session_scope(db) as session:
        return [
            (r, queries.results_of(session=session, experiment_id=r.id))
            for r in queries.list_experiments(session=session)
        ]


def test_one_shot_prompt_is_shown_by_part_run_streamed_scored_and_stored(app, db):
    app.number_input(key="keep.playground.shots").set_value(1).run()
    shown = html_of(app)
    assert 'title="shot d001' in shown and 'title="instruction' in shown
    assert "Summarize the following conversation." in shown
    assert "room for the answer" in shown and "chat template" in shown
    assert app.code[0].value.startswith("<|im_start|>system")
    (tokens,) = [unescaped(c.value) for c in app.caption if " tokens (" in c.value]
    counted = re.fullmatch(
        r"(\d+) tokens \(instruction (\d+), shot (\d+), input (\d+), template (\d+)\); "
        r"(\d+) fit beside 12 new tokens in embedded:smollm2-135m-instruct's window\.",
        tokens,
    )
    assert counted, tokens
    total, *parts, budget = (int(n) for n in counted.groups())
    assert total == sum(parts) and all(parts) and budget == 8192 - 12
    next(b for b in app.button if b.label == "Run").click().run()
    assert not app.exception and not app.error
    captions = " ".join(c.value for c in app.caption)
    assert "finished by" in captions and "stored as experiment 1" in captions
    assert {m.label for m in app.metric} == {"rouge1", "rouge2", "rougeL", "rougeLsum"}
    ((record, results),) = stored_runs(db)
    assert record.label == "playground" and record.status == "completed"
    assert record.design["shots"] == 1 and results[0].shots == ["d001"]
    assert results[0].output.strip() and results[0].output in [t.value for t in app.text]
    assert results[0].rougeL == pytest.approx(
        float(next(m.value for m in app.metric if m.label == "rougeL")), abs=1e-4
    )


def test_shots_as_turns_are_shown_as_chat_turns_counted_by_part_and_run(app, db):
    app.number_input(key="keep.playground.shots").set_value(2).run()
    app.selectbox(key="keep.playground.shot_format").set_value("turns").run()
    assert not app.exception and not app.error
    sent = app.code[0].value
    assert sent.count("<|im_start|>user") == 3 and sent.count("<|im_start|>assistant") == 3
    assert sent.count("Summarize the following conversation.") == 3  # in each user turn
    shown = html_of(app)
    assert 'title="shot d001' in shown and 'title="shot d002' in shown
    (tokens,) = [unescaped(c.value) for c in app.caption if " tokens (" in c.value]
    counted = re.fullmatch(
        r"(\d+) tokens \(instruction (\d+), shot (\d+), input (\d+), template (\d+)\);.*",
        tokens,
    )
    assert counted, tokens
    total, *parts = (int(n) for n in counted.groups())
    assert total == sum(parts)
    app.selectbox(key="keep.playground.instruction_role").set_value("system").run()
    assert app.code[0].value.count("Summarize the following conversation.") == 1
    next(b for b in app.button if b.label == "Run").click().run()
    assert not app.exception and not app.error
    ((record, results),) = stored_runs(db)
    assert record.design["shot_format"] == "turns" and record.design["instruction_role"] == "system"
    assert results[0].prompt.rstrip("\n") == app.code[0].value  # st.code drops the final newline


def test_typed_input_is_escaped_in_the_preview_and_its_run_is_stored(app, db):
    app.radio(key="keep.playground.source").set_value("typed here").run()
    assert "Type an input" in unescaped(
        app.error[0].value
    )  # nothing typed yet: a message, no traceback
    app.text_area(key="keep.playground.typed_input").set_value(
        "#Person1#: <script>alert(1)</script> **bold** $x$"
    ).run()
    shown = html_of(app)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; **bold** $x$" in shown
    assert "<script>" not in shown
    next(b for b in app.button if b.label == "Run").click().run()
    assert not app.exception and not app.error
    assert "No reference to score against." in [c.value for c in app.caption]
    ((record, results),) = stored_runs(db)
    assert record.dataset_name == playground.TYPED_DATASET and results[0].rougeL is None
    assert "<script>alert(1)</script>" in results[0].prompt


def test_a_template_without_input_placeholder_shows_a_message_not_a_traceback(app):
    app.text_area(key="keep.playground.example_format").set_value("No placeholder").run()
    assert not app.exception
    assert "{input}" in unescaped(app.error[0].value)
    assert app.text_area(key="keep.playground.instruction").value  # the form is still there


def test_sampling_controls_are_disabled_under_greedy_and_beams_under_sampling(app):
    sidebar_sliders = app.sidebar.slider
    assert all(s.disabled for s in sidebar_sliders)
    assert app.number_input(key="keep.playground.seed").disabled
    assert not app.number_input(key="keep.playground.num_beams").disabled
    app.sidebar.toggle[0].set_value(True).run()
    assert not any(s.disabled for s in app.sidebar.slider)
    assert app.number_input(key="keep.playground.num_beams").disabled
    app.selectbox(key="keep.playground.settings_preset").set_value(
        "Focused sampling (T 0.7, top-p 0.9)"
    ).run()
    assert app.slider(key="keep.playground.temperature").value == pytest.approx(0.7)
    assert app.slider(key="keep.playground.top_p").value == pytest.approx(0.9)


def test_the_prompt_being_composed_survives_a_visit_to_another_page(app):
    app.text_area(key="keep.playground.instruction").set_value("Sum it up in five words.").run()
    app.number_input(key="keep.playground.shots").set_value(2).run()
    app.switch_page("pages/compare.py").run()
    assert not app.exception
    app.switch_page("pages/playground.py").run()
    assert app.text_area(key="keep.playground.instruction").value == "Sum it up in five words."
    assert app.number_input(key="keep.playground.shots").value == 2
    assert "Sum it up in five words." in html_of(app)


def test_tokens_confidence_and_the_sampling_inspector_after_a_run(app, db):
    shown = html_of(app)
    assert 'data-testid="prompt-tokens"' in shown and "id 1" in shown  # ids on hover
    next(b for b in app.button if b.label == "Run").click().run()
    app.toggle(key="keep.playground.confidence").set_value(True).run()
    assert not app.exception and not app.error
    assert 'data-testid="answer-confidence"' in html_of(app)
    assert any("mean probability" in c.value for c in app.caption)
    ((record, (result,)),) = stored_runs(db)
    stored = result.token_confidence
    assert "".join(stored["text"]) == result.output and all(0 < p <= 1 for p in stored["p"])
    app.slider(key="keep.playground.step").set_value(1).run()
    next(b for b in app.button if b.label == "Inspect this step").click().run()
    assert not app.exception and not app.error
    stages = [c.value for c in app.caption if "tokens left" in c.value]
    assert stages[0].startswith("model (raw softmax): 49152 tokens left")
    assert stages[1].startswith("after top_k=50 (not applied: greedy): 50 tokens left")


def test_a_dash_and_a_trailing_backslash_in_the_separator_are_sent_as_typed(app):
    separator = app.text_input(key="keep.playground.separator")
    separator.set_value(" — ").run()
    assert not app.exception and not app.error
    assert "conversation. — " in app.code[0].value and "â" not in app.code[0].value
    app.text_input(key="keep.playground.separator").set_value("\\n--\\").run()
    assert not app.exception and not app.error
    assert "conversation.\n--\\" in app.code[0].value


SPLITS_CSV = (
    b"id,dialogue,summary,split\n"
    b"t1,#Person1#: Hi there. #Person2#: Hello.,They greet.,train\n"
    b"t2,#Person1#: Bye. #Person2#: See you.,They part.,train\n"
    b"v1,#Person1#: Thanks. #Person2#: Welcome.,One thanks.,validation\n"
    b"e1,#Person1#: Lunch? #Person2#: Yes please.,They plan lunch.,test\n"
)


def test_a_dataset_imported_with_train_validation_test_splits_runs_in_the_playground(app, db):
    app.switch_page("pages/datasets.py").run()
    app.file_uploader[0].set_value(("splits.csv", SPLITS_CSV, "text/csv")).run()
    next(b for b in app.button if b.label == "Import").click().run()
    assert not app.exception and not app.error
    app.switch_page("pages/playground.py").run()
    app.selectbox(key="keep.playground.dataset").set_value("splits").run()
    app.number_input(key="keep.playground.shots").set_value(1).run()
    assert not app.exception and not app.error
    assert app.selectbox(key="keep.playground.example").value.id == "e1"
    assert 'title="shot t1' in html_of(app)
    next(b for b in app.button if b.label == "Run").click().run()
    assert not app.exception and not app.error
    ((record, results),) = stored_runs(db)
    assert record.dataset_name == "splits" and results[0].shots == ["t1"]


def test_a_stored_dataset_with_no_pool_or_eval_split_shows_messages_not_an_error(app, db):
    examples = (Example("a", "#Person1#: Hi.", "A greeting.", "train"),)
    with session_scope(db) as session:  # as imports stored train/test before roles were given
        queries.save_dataset(session=session, dataset=Dataset("legacy", examples))
    app.run()
    app.selectbox(key="keep.playground.dataset").set_value("legacy").run()
    assert not app.exception
    assert "no examples to evaluate" in unescaped(app.warning[0].value)
    app.radio(key="keep.playground.source").set_value("typed here").run()
    app.text_area(key="keep.playground.typed_input").set_value("#Person1#: Hello.").run()
    assert not app.exception and not app.error
    assert app.number_input(key="keep.playground.shots").max == 0
    assert any("no pool split" in c.value for c in app.caption)
    assert "#Person1#: Hello." in app.code[0].value  # a zero-shot prompt for the typed input


def sidebar_captions(at) -> str:
    return " ".join(unescaped(c.value) for c in at.sidebar.caption)


def test_a_typed_model_is_loaded_only_when_load_is_pressed(app, tiny_causal_dir):
    before = models.current_model()
    assert before.model_id == models.EMBEDDED
    assert "is not loaded yet" not in sidebar_captions(app)
    app.text_input(key="keep.playground.model").set_value(str(tiny_causal_dir)).run()
    assert not app.exception
    assert models.current_model() is before  # typing evicted nothing and loaded nothing
    assert f"Loaded: {models.EMBEDDED}" in sidebar_captions(app)
    assert f"'{tiny_causal_dir}' is not loaded yet: press Load." in sidebar_captions(app)
    assert "<|im_start|>" in app.code[0].value  # still rendered for SmolLM2
    next(b for b in app.button if b.label == "Load").click().run()
    assert not app.exception
    assert models.current_model().model_id == str(tiny_causal_dir)
    assert f"Loaded: {tiny_causal_dir}" in sidebar_captions(app)
    assert "is not loaded yet" not in sidebar_captions(app)
    app.run()  # the next rerun keeps it
    assert models.current_model().model_id == str(tiny_causal_dir)


def test_a_model_that_does_not_load_is_a_message_and_the_loaded_one_stays(app, tmp_path):
    before = models.current_model()
    missing = tmp_path / "no-such-model"
    app.text_input(key="keep.playground.model").set_value(str(missing)).run()
    next(b for b in app.button if b.label == "Load").click().run()
    assert not app.exception and app.error
    assert models.current_model() is before
    app.run()
    assert not app.error and models.current_model() is before
    assert "is not loaded yet: press Load." in sidebar_captions(app)
