"""The Playground's view of a prompt: parts that rebuild the exact text sent, and a context
window split into its uses."""

from core.prompting.prompt_view import context_usage, segments
from core.prompting.rendering import render_prompt
from tests.conftest import CHAT_TEMPLATE, build_tokenizer
from tests.test_rendering import DESIGN, POOL, TARGET


def test_segments_rebuild_the_exact_text_sent_and_name_each_shot():
    prompt = render_prompt(DESIGN, TARGET, POOL, tokenizer=build_tokenizer(CHAT_TEMPLATE))
    parts = segments(prompt)
    assert "".join(s.text for s in parts) == prompt.sent_text
    assert [s.kind for s in parts] == [
        "template",
        "instruction",
        "shot",
        "shot",
        "shot",
        "input",
        "template",
    ]
    assert [s.label for s in parts if s.kind == "shot"] == ["shot p1", "shot p2", "shot p3"]
    assert (
        sum(s.tokens or 0 for s in parts)
        == prompt.prompt_tokens - prompt.tokens_by_kind()["template"]
    )


def test_without_a_template_there_is_no_template_segment():
    prompt = render_prompt(
        DESIGN.with_(use_chat_template=False), TARGET, POOL, tokenizer=build_tokenizer()
    )
    parts = segments(prompt)
    assert "".join(s.text for s in parts) == prompt.sent_text
    assert "template" not in {s.kind for s in parts}


def test_context_usage_splits_the_whole_window():
    prompt = render_prompt(
        DESIGN,
        TARGET,
        POOL,
        tokenizer=build_tokenizer(CHAT_TEMPLATE),
        context_window=200,
        max_new_tokens=30,
    )
    usage = dict(context_usage(prompt, 30))
    assert sum(usage.values()) == 200
    assert usage["answer"] == 30
    assert usage["free"] == 200 - 30 - prompt.prompt_tokens
    assert context_usage(render_prompt(DESIGN, TARGET, POOL, tokenizer=build_tokenizer()), 30) == []
