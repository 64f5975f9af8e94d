"""Model facts, memory readings, the chat-template preview and unloading, on tiny real models."""

import pytest

from core.models import info as model_info
from core.models import registry as models
from core.models.info import (
    MemorySnapshot,
    chat_template_source,
    describe,
    facts_rows,
    format_bytes,
    memory_snapshot,
    preview_prompt,
    process_rss_bytes,
    unload_model,
)
from core.models.registry import ModelRequest, get_model
from tests.conftest import CHAT_TEMPLATE, build_tokenizer


@pytest.fixture
def tiny(tiny_causal_dir):
    yield get_model(ModelRequest(str(tiny_causal_dir), device="cpu"))
    models.unload()


def test_facts_of_a_loaded_model(tiny):
    facts = describe(tiny)
    assert facts.kind == "causal" and facts.device == "cpu" and facts.dtype == "float32"
    assert facts.parameters == sum(p.numel() for p in tiny.model.parameters()) > 0
    assert facts.weight_bytes == facts.parameters * 4  # float32
    assert facts.context_window == 256
    assert facts.chat_template == CHAT_TEMPLATE


def test_facts_rows_are_text_and_show_cuda_only_when_present(tiny):
    facts = describe(tiny)
    rows = dict(facts_rows(facts, MemorySnapshot(2 * 1024**3, None, None)))
    assert rows["context window"] == "256 tokens"
    assert rows["process memory (RSS)"] == "2.0 GiB"
    assert rows["chat template"] == "present"
    assert rows["kind"] == "causal (decoder-only)"
    assert "CUDA memory allocated" not in rows
    with_cuda = dict(facts_rows(facts, MemorySnapshot(1, 3 * 1024**2, 4 * 1024**2)))
    assert with_cuda["CUDA memory allocated"] == "3.0 MiB"


def test_preview_goes_through_the_chat_template_and_counts_its_tokens(tiny):
    preview = preview_prompt(tiny, "hello", "summarize")
    assert preview.templated
    assert preview.text == "<s>system: summarize</s><s>user: hello</s><s>assistant: "
    expected = tiny.tokenizer(preview.text, add_special_tokens=False)["input_ids"]
    assert preview.tokens == len(expected)


def test_preview_without_a_system_message_has_no_system_turn(tiny):
    assert preview_prompt(tiny, "hello", "").text == "<s>user: hello</s><s>assistant: "


def test_preview_without_a_template_is_the_text_as_written(tiny_t5_dir):
    loaded = get_model(ModelRequest(str(tiny_t5_dir), device="cpu"))
    try:
        preview = preview_prompt(loaded, "hello there", "ignored")
    finally:
        models.unload()
    assert not preview.templated and preview.text == "hello there"
    assert preview.tokens == len(loaded.tokenizer("hello there")["input_ids"])


def test_named_chat_templates_are_all_shown():
    tokenizer = build_tokenizer()
    assert chat_template_source(tokenizer) is None
    tokenizer.chat_template = {"default": "A", "tool_use": "B"}
    assert chat_template_source(tokenizer) == "{# default #}\nA\n\n{# tool_use #}\nB"


def test_rss_is_read_and_cuda_is_none_without_a_gpu(monkeypatch):
    assert process_rss_bytes() > 10 * 1024**2
    monkeypatch.setattr(model_info.torch.cuda, "is_available", lambda: False)
    snapshot = memory_snapshot()
    assert snapshot.cuda_allocated is None and snapshot.cuda_reserved is None


def test_unload_frees_the_model_and_reports_memory_before_and_after(tiny):
    before, after = unload_model()
    assert models.current_model() is None
    assert before.rss_bytes and after.rss_bytes
    assert unload_model()[0].rss_bytes  # nothing loaded: still a reading, no error


@pytest.mark.parametrize(
    ("count", "text"),
    [(None, "unknown"), (0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 * 1024**3, "5.0 GiB")],
)
def test_format_bytes(count, text):
    assert format_bytes(count) == text
