"""The Datasets page in Streamlit's AppTest: listing, preview, import with row problems, delete."""

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from storage import queries
from storage.db import session_scope
from tests.ui.shown import unescaped

APP = str(Path(__file__).resolve().parents[2] / "app.py")
GOOD = b"id,dialogue,summary\nx1,Hello there,A greeting\nx2,Goodbye now,A farewell\n"
BAD = b"id,dialogue,summary\nx1,Hello there,A greeting\nx2,Goodbye now,\nx3,,No input\n"


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPT_LAB_DB", f"sqlite:///{tmp_path}/store.sqlite")
    st.cache_resource.clear()  # resources cached by another AppTest must not leak in
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/datasets.py").run()
    assert not at.exception
    return at


def stored_names() -> list[str]:
    with session_scope() as session:
        return queries.list_dataset_names(session=session)


def upload(at: AppTest, filename: str, content: bytes) -> AppTest:
    at.file_uploader[0].set_value((filename, content, "text/csv")).run()
    assert not at.exception
    return at


def click(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click().run()
    assert not at.exception
    return at


def test_builtin_dataset_is_listed_previewed_and_searchable(app):
    assert list(app.dataframe[0].value["name"]) == ["dialogues"]
    assert app.selectbox(key="keep.datasets.chosen").value == "dialogues"
    examples = app.dataframe[1].value
    assert list(examples.columns) == ["id", "split", "input", "reference"]
    assert len(examples) == 64
    assert {b.label for b in app.get("download_button")} == {"Download as CSV"}
    app.text_input(key="keep.datasets.search").set_value("d001").run()
    assert list(app.dataframe[1].value["id"]) == ["d001"]
    assert "1 of 64 examples" in app.caption[0].value


def test_good_csv_is_previewed_imported_and_listed(app):
    upload(app, "greetings.csv", GOOD)
    assert list(app.dataframe[-1].value.columns) == ["file line", "id", "dialogue", "summary"]
    mapping = {s.label: s.value for s in app.selectbox if s.label.endswith("column")}
    assert mapping == {
        "input column": "dialogue",
        "reference column": "summary",
        "id column": "id",
        "split column": "(none)",
    }
    click(app, "Import")
    assert not app.error
    assert "Imported 2 examples as 'greetings'" in app.success[0].value
    assert "greetings" in list(app.dataframe[0].value["name"])
    assert app.selectbox(key="keep.datasets.chosen").value == "greetings"
    assert list(app.dataframe[1].value["input"]) == ["Hello there", "Goodbye now"]
    assert stored_names() == ["dialogues", "greetings"]


def test_rows_with_problems_are_listed_by_line_and_nothing_is_stored(app):
    upload(app, "broken.csv", BAD)
    click(app, "Import")
    assert unescaped(app.error[0].value) == "'broken.csv' was not imported: 2 row(s) have problems."
    problems = app.text[-1].value.splitlines()
    assert problems == ["line 3: empty or missing summary", "line 4: empty or missing dialogue"]
    assert stored_names() == ["dialogues"]


def test_one_column_for_two_roles_is_refused_with_a_message(app):
    upload(app, "greetings.csv", GOOD)
    next(s for s in app.selectbox if s.label == "reference column").set_value("dialogue").run()
    click(app, "Import")
    assert "both as the input and as the reference" in app.error[0].value
    assert stored_names() == ["dialogues"]


def test_unreadable_jsonl_lines_are_shown_in_the_preview(app):
    content = b'{"input": "a", "reference": "b"}\nnot json\n{"input": "c", "reference": "d"}\n'
    upload(app, "mixed.jsonl", content)
    assert "cannot be read" in app.error[0].value
    assert app.text[-1].value.startswith("line 2: not valid JSON")


def test_a_taken_name_is_refused(app):
    upload(app, "dialogues.csv", GOOD)
    click(app, "Import")
    assert "'dialogues' exists already" in app.error[0].value
    assert len(app.dataframe[1].value) == 64  # the built-in set is untouched


def test_delete_asks_for_confirmation_first(app):
    upload(app, "greetings.csv", GOOD)
    click(app, "Import")
    click(app, "Delete this dataset…")
    assert "Delete the dataset 'greetings'" in app.warning[0].value
    assert "greetings" in stored_names()
    click(app, "Cancel")
    assert "greetings" in stored_names() and not app.warning
    click(app, "Delete this dataset…")
    click(app, "Yes, delete")
    assert "Deleted the dataset 'greetings'" in app.success[0].value
    assert stored_names() == ["dialogues"]
    assert app.selectbox(key="keep.datasets.chosen").value == "dialogues"


def test_deleting_the_builtin_set_says_it_comes_back(app):
    click(app, "Delete this dataset…")
    assert "stored again, as shipped" in app.warning[0].value
    click(app, "Yes, delete")
    assert stored_names() == ["dialogues"]  # this page used it again at once
    assert len(app.dataframe[1].value) == 64


def test_names_are_shown_as_written_not_as_markdown(app):
    upload(app, "my_data_v2.csv", GOOD)
    click(app, "Import")
    assert r"'my\_data\_v2'" in app.success[0].value  # no italics from the underscores
    assert app.selectbox(key="keep.datasets.chosen").value == "my_data_v2"


def test_the_chosen_dataset_and_search_survive_a_page_switch(app):
    upload(app, "greetings.csv", GOOD)
    click(app, "Import")
    app.text_input(key="keep.datasets.search").set_value("bye").run()
    app.switch_page("pages/models.py").run()
    app.switch_page("pages/datasets.py").run()
    assert app.selectbox(key="keep.datasets.chosen").value == "greetings"
    assert list(app.dataframe[1].value["id"]) == ["x2"]


SPLITS = (
    b"id,dialogue,summary,split\n"
    b"t1,Hello there,A greeting,train\nt2,Goodbye now,A farewell,train\n"
    b"v1,See you,A promise,validation\ne1,Thanks a lot,Gratitude,test\n"
)


def multiselect(at: AppTest, label: str):
    return next(m for m in at.multiselect if m.label.startswith(label))


def test_train_and_test_splits_give_the_shots_and_the_evaluated_examples(app):
    upload(app, "splits.csv", SPLITS)
    assert next(s.value for s in app.selectbox if s.label == "split column") == "split"
    assert multiselect(app, "Shots come from").value == ["train"]
    assert multiselect(app, "Evaluated").value == ["test"]
    assert multiselect(app, "Evaluated").options == ["train", "validation", "test"]
    click(app, "Import")
    assert not app.error
    with session_scope() as session:
        dataset = queries.load_dataset(session=session, name="splits")
    assert [ex.id for ex in dataset.pool] == ["t1", "t2"]
    assert [ex.id for ex in dataset.eval] == ["e1"]
    assert "train → pool, test → eval" in dataset.source


def test_unknown_split_values_are_asked_for_and_nothing_evaluated_is_refused(app):
    upload(app, "odd.csv", SPLITS.replace(b",test", b",holdout"))
    assert "Say which values of 'split'" in unescaped(app.info[0].value)
    assert multiselect(app, "Evaluated").value == []
    assert multiselect(app, "Evaluated").options == ["train", "validation", "holdout"]
    click(app, "Import")
    assert "whose examples are evaluated" in unescaped(app.error[0].value)
    assert stored_names() == ["dialogues"]
    multiselect(app, "Shots come from").set_value(["train"]).run()
    multiselect(app, "Evaluated").set_value(["holdout"]).run()
    click(app, "Import")
    assert not app.error and stored_names() == ["dialogues", "odd"]
