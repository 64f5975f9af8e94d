"""The Prompts page in Streamlit's AppTest: prompts saved through core.library listed with their
versions, the word-level diff of two versions, labels and tags (and their refusals), prompt
files in and out, unnamed versions named; and the forms the Playground and Experiments embed."""

from pathlib import Path

import pytest
import streamlit as st
import yaml
from streamlit.testing.v1 import AppTest

from core.generation.settings import GenerationSettings
from core.library import versions as library
from core.policy import local_user
from core.prompting.design import PRESETS, PromptDesign
from core.runs import experiments
from core.runs.experiments import RunSpec
from tests.ui.browser import VIEWPORT, explained, open_page, screenshots_dir, serve_app
from tests.ui.counted import deferred_downloads
from tests.ui.shown import unescaped
from ui.state import key

APP = str(Path(__file__).resolve().parents[2] / "app.py")
FORMAT = "Dialogue:\n{input}\nSummary: {output}"
ONE = PromptDesign(instruction="Summarise the dialogue in one sentence.", example_format=FORMAT)
TWO = ONE.with_(instruction="Summarise the whole dialogue in two short sentences.", shots=2)
AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "not-a-secret-only-a-test",
    "client_id": "prompt-lab",
    "client_secret": "test",
    "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
}


@pytest.fixture
def app(db):
    st.cache_resource.clear()  # resources cached by another AppTest must not leak in
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/prompts.py")  # straight there: the Playground would load the model
    return at


@pytest.fixture
def two_versions(db) -> str:
    library.save_version("summarise", ONE, GenerationSettings(), "first try", db_url=db)
    settings = GenerationSettings(max_new_tokens=64)
    library.save_version("summarise", TWO, settings, "two sentences, two shots", db_url=db)
    return db


def ran(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception
    return at


def click(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click()
    return ran(at)


def diff_html(at: AppTest) -> str:
    return "\n".join(h.value for h in at.html if "version-diff" in h.value)


def messages(at: AppTest, kind: str) -> list[str]:
    return [unescaped(m.value) for m in at.get(kind)]


def test_the_page_lists_prompts_saved_through_the_library(app, two_versions):
    library.save_version(
        "classify", PRESETS["instruction"], message="only one", db_url=two_versions
    )
    library.move_label("summarise@1", "production", db_url=two_versions)
    ran(app)
    prompts = app.dataframe[0].value
    assert list(prompts["name"]) == ["classify", "summarise"]
    assert list(prompts["versions"]) == [1, 2]
    assert list(prompts["labels"]) == ["", "production → 1"]
    assert list(prompts["latest message"]) == ["only one", "two sentences, two shots"]
    assert list(prompts["by"]) == [local_user()] * 2
    app.selectbox(key=key("prompts", "chosen")).set_value("summarise")
    ran(app)
    versions = app.dataframe[1].value
    assert list(versions["version"]) == [2, 1]  # newest first
    assert list(versions["message"]) == ["two sentences, two shots", "first try"]
    assert list(versions["labels"]) == ["", "production"]


def test_the_diff_shows_changed_fields_with_word_marks_by_default_latest_against_previous(
    app, two_versions
):
    ran(app)
    assert app.selectbox(key=key("prompts", "diff.old.summarise")).value == "summarise@1"
    assert app.selectbox(key=key("prompts", "diff.new.summarise")).value == "summarise@2"
    shown = diff_html(app)
    assert "design.instruction" in shown and "design.shots" in shown
    assert "settings.max_new_tokens" in shown
    assert "design.example_format" not in shown  # unchanged: hidden until asked for
    # the old side strikes the words it lost, the new side marks the words it gained
    row = next(r for r in shown.split("<tr>") if "design.instruction" in r)
    old, new = row.split("</td>")[1:3]
    assert ">one sentence.</del>" in old and "<ins" not in old
    assert ">whole </ins>" in new and ">two short sentences.</ins>" in new and "<del" not in new
    assert "3 field(s) differ between summarise@1 and summarise@2." in messages(app, "caption")
    app.toggle(key=key("prompts", "diff.unchanged")).set_value(True)
    ran(app)
    assert "design.example_format" in diff_html(app)


def test_the_diff_escapes_every_text_and_says_when_versions_are_identical(app, db):
    hostile = ONE.with_(instruction="Summarise <b>this</b> & <script>alert(1)</script>.")
    library.save_version("summarise", ONE, db_url=db)
    library.save_version("summarise", hostile, db_url=db)
    ran(app)
    shown = diff_html(app)
    assert "&lt;script&gt;" in shown and "<script>" not in shown and "<b>" not in shown
    app.selectbox(key=key("prompts", "diff.old.summarise")).set_value("summarise@2")
    ran(app)
    assert messages(app, "info") == [
        "summarise@2 and summarise@2 are identical: same design, same settings."
    ]
    assert not diff_html(app)


def test_versions_of_two_prompts_can_be_compared(app, two_versions):
    library.save_version("other", TWO.with_(separator="\n---\n"), db_url=two_versions)
    app.session_state[key("prompts", "chosen")] = "summarise"
    ran(app)
    app.selectbox(key=key("prompts", "diff.new.summarise")).set_value("other@1")
    ran(app)
    shown = diff_html(app)
    assert "summarise@1" in shown and "other@1" in shown
    assert "design.separator" in shown and r"\n---\n" in shown  # whitespace made visible


def test_a_label_is_moved_and_a_bad_label_refused_with_the_library_sentence(app, two_versions):
    ran(app)
    app.selectbox(key=key("prompts", "version.summarise")).set_value(1)
    ran(app)
    app.text_input(key="prompts.label").set_value("best")
    click(app, "Move label to summarise@1")
    assert messages(app, "success") == ["best now points at summarise@1."]
    assert library.get_version("summarise@best", db_url=two_versions).number == 1
    assert list(app.dataframe[0].value["labels"]) == ["best → 1"]
    app.text_input(key="prompts.label").set_value("Best!")
    click(app, "Move label to summarise@1")
    assert messages(app, "error") == [
        "A label uses lowercase letters, digits, '-' and '_'; got 'Best!'."
    ]
    app.text_input(key="prompts.label").set_value("best")
    click(app, "Remove label")
    assert messages(app, "success") == ["Removed the label best from summarise."]
    assert list(app.dataframe[0].value["labels"]) == [""]


def test_someone_else_may_not_move_the_labels_of_a_prompt(app, db, monkeypatch):
    monkeypatch.delenv("PROMPT_LAB_ALLOWED_USERS", raising=False)
    library.save_version("summarise", ONE, db_url=db)  # created by the local user
    app.secrets["auth"] = AUTH
    app.user = {"is_logged_in": True, "email": "bob@example.org", "name": "Bob"}
    ran(app)
    app.text_input(key="prompts.label").set_value("best")
    click(app, "Move label to summarise@1")
    [refusal] = messages(app, "error")
    assert refusal.startswith("Only the creator of prompt 'summarise'")
    assert library.list_prompts(db_url=db)[0].labels == {}


def test_a_tag_is_added_and_taken_off(app, two_versions):
    ran(app)
    app.text_input(key="prompts.tag").set_value("reviewed")
    click(app, "Add tag")
    assert messages(app, "success") == ["Tagged summarise@2 reviewed."]
    assert list(app.dataframe[1].value["tags"]) == ["reviewed", ""]
    click(app, "Remove tag")
    assert messages(app, "success") == ["Took the tag reviewed off summarise@2."]
    click(app, "Remove tag")
    assert messages(app, "error") == ["summarise@2 has no tag 'reviewed'."]


def test_a_version_and_a_whole_prompt_are_exported_as_yaml_or_json(app, two_versions, monkeypatch):
    downloads = deferred_downloads(monkeypatch)
    ran(app)
    assert {"summarise@2.yaml", "summarise.yaml"} <= set(downloads)
    whole = yaml.safe_load(downloads["summarise.yaml"]())
    assert [v["version"] for v in whole["versions"]] == [1, 2]
    one = yaml.safe_load(downloads["summarise@2.yaml"]())
    assert [v["message"] for v in one["versions"]] == ["two sentences, two shots"]
    app.radio(key=key("prompts", "format")).set_value("json")
    ran(app)
    assert downloads["summarise.json"]().startswith(b"{")


PROMPT_FILE = """\
format: 1
name: summarise
labels: {best: 2}
versions:
  - version: 1
    message: from git
    design: {instruction: Summarise the dialogue in one sentence., example_format: "{input}"}
  - version: 2
    message: shorter
    tags: [reviewed]
    design: {instruction: Summarise briefly., example_format: "{input}"}
"""


def test_a_yaml_file_is_imported_and_its_versions_listed(app, db):
    ran(app)
    app.file_uploader[0].set_value(("summarise.yaml", PROMPT_FILE.encode(), "application/yaml"))
    ran(app)
    assert "summarise: 2 version(s); labels best → 2" in messages(app, "caption")
    click(app, "Import")
    assert messages(app, "success") == [
        "Imported summarise (a new prompt). Added file version(s) 1 as summarise@1, "
        "2 as summarise@2. Labels: best → 2."
    ]
    assert [v.message for v in library.history("summarise", db_url=db)] == ["from git", "shorter"]
    assert list(app.dataframe[1].value["tags"]) == ["reviewed", ""]
    click(app, "Import")  # the same file again adds nothing
    assert "Skipped file version(s) 1 (identical to summarise@1), 2" in messages(app, "success")[0]
    assert len(library.history("summarise", db_url=db)) == 2


def test_a_malformed_prompt_file_is_refused_by_name(app, db):
    ran(app)
    bad = PROMPT_FILE.replace("version: 2", "version: two")
    app.file_uploader[0].set_value(("broken.yaml", bad.encode(), "application/yaml"))
    ran(app)
    [refusal] = messages(app, "error")
    assert refusal.startswith("broken.yaml: version two: version must be a whole number")
    assert library.list_prompts(db_url=db) == []


def test_a_design_experiments_ran_unnamed_is_saved_as_a_version(app, db):
    design = PRESETS["instruction"].with_(shots=1)
    first = experiments.create(RunSpec(limit=2, design=design), db_url=db)
    second = experiments.create(RunSpec(limit=3, design=design), db_url=db)
    ran(app)
    unnamed = app.dataframe[-1].value
    assert list(unnamed["experiments"]) == [f"{second}, {first}"]
    app.text_input(key="prompts.unnamed.new").set_value("from-experiments")
    app.text_input(key="prompts.unnamed.message").set_value("what the sweep ran")
    click(app, "Save as a version")
    assert messages(app, "success") == ["Saved from-experiments@1."]
    saved = library.get_version("from-experiments", db_url=db)
    assert saved.design == design and saved.settings is None


def embedding_page():
    """A page that embeds the two forms, as the Playground and the Experiments form do."""
    import streamlit as st

    from core.datasets.data import BUILTIN_NAME
    from core.runs import experiments
    from ui import prompt_forms, widgets

    started = prompt_forms.start_from_version("test")
    design = widgets.design_inputs("test", experiments.get_dataset(BUILTIN_NAME).pool)
    settings = widgets.settings_inputs("test")
    st.text(f"started from {started.ref if started else None}")
    prompt_forms.save_version_form("test", design, settings)


@pytest.fixture
def embedded(db):
    return AppTest.from_function(embedding_page, default_timeout=60)


def test_the_save_form_saves_a_version_and_refuses_an_identical_one(embedded, db):
    ran(embedded)
    embedded.text_input(key="prompts.test.save.new").set_value("summarise")
    embedded.text_input(key="prompts.test.save.message").set_value("from the Playground")
    click(embedded, "Save version")
    assert messages(embedded, "success") == ["Saved summarise@1"]
    saved = library.get_version("summarise", db_url=db)
    assert saved.message == "from the Playground" and saved.settings is not None
    click(embedded, "Save version")  # the form now picks the prompt it saved to
    assert messages(embedded, "error") == [
        "This version is identical to summarise@1; nothing saved."
    ]
    embedded.checkbox(key="prompts.test.save.settings").uncheck()
    click(embedded, "Save version")  # without settings it differs: a design-only version
    assert messages(embedded, "success") == ["Saved summarise@2"]
    assert library.get_version("summarise@2", db_url=db).settings is None


def test_start_from_version_fills_the_design_and_settings_and_remembers_it(embedded, two_versions):
    library.move_label("summarise@1", "best", db_url=two_versions)
    ran(embedded)
    choice = embedded.selectbox(key=key("test", "start_from"))
    assert choice.options == ["summarise@2", "summarise@1 (best)"]
    choice.set_value("summarise@1")
    click(embedded, "Use this version")
    assert embedded.session_state[key("test", "instruction")] == ONE.instruction
    assert embedded.session_state[key("test", "shots")] == 0
    assert "started from summarise@1" in [t.value for t in embedded.text]
    assert "Filled in from summarise@1." in messages(embedded, "caption")
    choice = embedded.selectbox(key=key("test", "start_from")).set_value("summarise@2")
    click(embedded, "Use this version")
    assert embedded.session_state[key("test", "shots")] == 2
    assert embedded.session_state[key("test", "max_new_tokens")] == 64


@pytest.mark.slow
def test_the_diff_in_a_real_browser(browser, tmp_path):
    """Two saved versions, the Prompts page opened by its link: the diff is drawn, marked word
    by word. Its screenshot, prompts-diff.png, goes where the other pages' go (`make
    screenshots` copies them to docs/screenshots/)."""
    with serve_app(tmp_path) as server:
        first = PromptDesign(
            instruction="Summarise the dialogue in one sentence.",
            example_format="Dialogue:\n{input}\nSummary: {output}",
        )
        second = first.with_(
            instruction="Summarise the whole dialogue in two short sentences: who wants what, "
            "and what they agree on.",
            example_format="Dialogue:\n{input}\nTwo-sentence summary: {output}",
            shots=2,
        )
        library.save_version(
            "summarise", first, GenerationSettings(), "first try", db_url=server.db_url
        )
        library.save_version(
            "summarise",
            second,
            GenerationSettings(max_new_tokens=64),
            "two sentences, two shots",
            db_url=server.db_url,
        )
        library.move_label("summarise@1", "production", db_url=server.db_url)
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        try:
            with explained(server, page, "prompts-diff"):
                open_page(page, server, "/prompts")
                table = page.locator('[data-testid="version-diff"]')
                table.wait_for(state="visible")
                text = table.inner_text()
                assert "design.instruction" in text and "settings.max_new_tokens" in text, text
                assert table.locator("del").first.inner_text().strip() == "one sentence."
                assert "whole" in table.locator("ins").first.inner_text()
                shoot(page, screenshots_dir() / "prompts-diff.png", table)
        finally:
            context.close()


def shoot(page, path: Path, table) -> None:
    """The versions table down to the end of the diff, from a viewport as tall as the page
    (Streamlit scrolls inside its main block, not the document)."""
    page.set_viewport_size({"width": VIEWPORT["width"], "height": 2400})
    try:
        page.wait_for_timeout(300)  # relayout
        main = page.locator('[data-testid="stMainBlockContainer"]').bounding_box()
        top = page.get_by_role("heading", name="Versions of summarise").bounding_box()
        bottom = table.bounding_box()
        clip = {
            "x": main["x"],
            "y": top["y"] - 16,
            "width": main["width"],
            "height": bottom["y"] + bottom["height"] - top["y"] + 32,
        }
        page.screenshot(path=path, clip=clip, animations="disabled")
    finally:
        page.set_viewport_size(VIEWPORT)
