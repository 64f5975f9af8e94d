"""The Models page in Streamlit's AppTest: loading (the real embedded model in the slow tier),
what is shown about it, the chat-template preview, unloading, and errors shown as messages."""

import weakref
from pathlib import Path

import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

from core.models import registry as models
from tests.ui.shown import unescaped

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPT_LAB_DB", f"sqlite:///{tmp_path}/store.sqlite")
    st.cache_resource.clear()
    models.unload()
    at = AppTest.from_file(APP, default_timeout=180)  # the first load may convert the GGUF file
    at.switch_page("pages/models.py").run()
    assert not at.exception
    yield at
    models.unload()


def load(at: AppTest, model_id: str | None = None, *, device: str = "cpu") -> AppTest:
    if model_id is not None:
        at.text_input(key="keep.models.model_id").set_value(model_id)
    at.selectbox(key="keep.models.device").set_value(device)
    next(b for b in at.button if b.label == "Load").click().run()
    assert not at.exception
    return at


def facts(at: AppTest) -> dict[str, str]:
    frame = at.dataframe[0].value
    return dict(zip(frame["fact"], frame["value"], strict=True))


def test_nothing_loaded_is_said_plainly(app):
    assert "No model is loaded" in app.info[0].value
    assert app.text_input(key="keep.models.model_id").value == models.EMBEDDED


def test_a_missing_local_folder_is_a_message_not_a_traceback(app):
    load(app, "/tmp/no-such-model-folder")
    message = unescaped(app.error[0].value)
    assert message == (
        "'/tmp/no-such-model-folder' is not a model folder or GGUF file that Prompt Lab may "
        "open: local models are opened only from the folders the operator lists in "
        "PROMPT_LAB_MODEL_ROOTS."
    )
    assert models.current_model() is None
    app.switch_page("pages/datasets.py").run()
    app.switch_page("pages/models.py").run()
    assert not app.error  # the error was for that submit only; the choices are kept
    assert app.text_input(key="keep.models.model_id").value == "/tmp/no-such-model-folder"
    assert app.selectbox(key="keep.models.device").value == "cpu"


def test_a_model_missing_offline_is_a_message(app, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    load(app, "someone-unknown/no-such-model")
    assert "Hub cannot be reached" in unescaped(app.error[0].value)
    assert models.current_model() is None


def test_trust_remote_code_warns_where_the_operator_allows_it(app, monkeypatch):
    monkeypatch.setenv("PROMPT_LAB_ALLOW_REMOTE_CODE", "1")
    app.run()
    app.checkbox(key="keep.models.trust_remote_code").set_value(True)
    load(app, "/tmp/no-such-model-folder")
    assert "trust_remote_code runs the model repository's own Python code" in app.warning[0].value


def test_cuda_without_a_gpu_is_a_message(app, monkeypatch):
    # Stands in for a machine without CUDA, so that the test means the same on a GPU machine.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    load(app, device="cuda")
    assert "has no CUDA GPU" in unescaped(app.error[0].value)


@pytest.mark.slow
def test_embedded_model_is_loaded_described_and_its_template_previewed(app):
    load(app)
    assert "loaded in" in app.success[0].value
    shown = facts(app)
    assert shown["model"] == models.EMBEDDED
    assert shown["device"] == "cpu" and shown["dtype"] == "float32"
    assert shown["context window"] == "8192 tokens"
    assert shown["chat template"] == "present"
    assert shown["kind"] == "causal (decoder-only)"
    assert int(shown["parameters"].replace(",", "")) > 100_000_000
    template, preview, escaped = (c.value for c in app.code)
    assert template == models.current_model().tokenizer.chat_template.strip()
    assert "<|im_start|>user\nSummarize the following conversation." in preview
    assert escaped.endswith('<|im_start|>assistant\\n"')  # the newline st.code trims
    assert app.caption[-1].value.endswith(" tokens")
    app.text_area(key="keep.models.user").set_value("Just this.").run()
    assert "<|im_start|>user\nJust this.<|im_end|>" in app.code[1].value


@pytest.mark.slow
def test_unload_frees_the_model_and_shows_memory_before_and_after(app):
    load(app)
    weights = weakref.ref(models.current_model().model)
    next(b for b in app.button if b.label == "Unload").click().run()
    assert not app.exception
    assert models.current_model() is None
    assert weights() is None  # nothing, the page included, still holds the torch model
    assert "unloaded" in app.success[0].value
    memory = app.dataframe[0].value
    assert list(memory.columns) == ["memory", "before", "after"]
    assert memory["memory"][0] == "process memory (RSS)"
    assert "No model is loaded" in app.info[0].value


def test_a_local_folder_is_loaded_and_a_held_model_is_not_unloaded(app, tiny_causal_dir):
    load(app, str(tiny_causal_dir))
    shown = facts(app)
    assert shown["context window"] == "256 tokens" and shown["revision"].startswith("none")
    assert app.code[1].value.startswith("<s>system: You are a concise assistant.</s><s>user: ")
    loaded = models.current_model()
    with models.hold(loaded.request):  # as a running generation does
        next(b for b in app.button if b.label == "Unload").click().run()
        assert not app.exception
        assert "Cannot unload the model now" in unescaped(app.error[0].value)
        assert models.current_model() is loaded
    next(b for b in app.button if b.label == "Unload").click().run()
    assert models.current_model() is None and not app.error
