"""Shots as chat turns: each shot a user turn and an assistant turn, the input the last user
turn; rendered exactly as the model's chat template renders those messages, counted per part,
fitted by dropping whole turns, and refused where it cannot apply."""

import pytest

from core.datasets.data import Example
from core.errors import PromptLabError
from core.models.registry import ModelRequest, prompt_tokenizer
from core.prompting import token_view
from core.prompting.design import PromptDesign
from core.prompting.prompt_view import segments
from core.prompting.rendering import render_prompt
from tests.conftest import CHAT_TEMPLATE, build_tokenizer

POOL = tuple(
    Example(f"p{i}", "#Person1#: hello . #Person2#: hi . " * i, f"one person asks {i}")
    for i in range(1, 5)
)
TARGET = Example("t", "#Person1#: book a train ticket for tomorrow ? #Person2#: yes .", "book")
TURNS = PromptDesign(
    instruction="Summarize the following conversation.",
    example_format="Dialogue:\n{input}\n\nSummary:\n{output}",
    separator="\n\n",
    shots=3,
    shot_format="turns",
)


@pytest.fixture(scope="module")
def smol():
    """The embedded SmolLM2's own tokenizer and chat template (no weights)."""
    return prompt_tokenizer(ModelRequest()).tokenizer


def expected_messages(design: PromptDesign, shots, target) -> list[dict[str, str]]:
    """The turns written out by hand, as the issue defines them."""

    def user(text: str) -> dict[str, str]:
        head = "" if design.instruction_role == "system" else design.instruction + "\n\n"
        return {"role": "user", "content": head + f"Dialogue:\n{text}\n\nSummary:"}

    messages = []
    if design.system_prompt or design.instruction_role == "system":
        system = [design.system_prompt or "", design.instruction]
        if design.instruction_role != "system":
            system = system[:1]
        messages.append({"role": "system", "content": "\n\n".join(s for s in system if s)})
    for shot in shots:
        messages += [user(shot.input), {"role": "assistant", "content": shot.reference}]
    return [*messages, user(target.input)]


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"instruction_role": "system"},
        {"system_prompt": "Be brief."},
        {"instruction_role": "system", "system_prompt": "Be brief."},
        {"shots": 0},
    ],
    ids=["instruction-each-turn", "instruction-as-system", "system-prompt", "both", "zero-shot"],
)
def test_turns_render_exactly_what_the_template_makes_of_the_messages(smol, changes):
    design = TURNS.with_(**changes)
    rendered = render_prompt(design, TARGET, POOL, tokenizer=smol)
    messages = expected_messages(design, POOL[: design.shots], TARGET)
    assert rendered.messages == messages
    assert rendered.sent_text == smol.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    roles = [m["role"] for m in rendered.messages if m["role"] != "system"]
    assert roles == ["user", "assistant"] * design.shots + ["user"]


@pytest.mark.parametrize("role", ["user", "system"])
def test_part_token_counts_add_up_to_the_exact_token_count(smol, role):
    rendered = render_prompt(TURNS.with_(instruction_role=role), TARGET, POOL, tokenizer=smol)
    total = len(smol(rendered.sent_text, add_special_tokens=False)["input_ids"])
    assert rendered.prompt_tokens == total
    assert sum(p.tokens for p in rendered.parts) == total
    by_kind = rendered.tokens_by_kind()
    assert set(by_kind) == {"instruction", "shot", "input", "template"}
    alone = len(smol(TURNS.instruction, add_special_tokens=False)["input_ids"])
    # Said in each of the 4 user turns (with its separator), or once as the system turn.
    assert by_kind["instruction"] >= (4 * alone if role == "user" else alone)
    if role == "system":
        assert by_kind["instruction"] == alone
    # Every part was found in the text sent, and the tokenizer view agrees with the counts.
    assert None not in rendered.spans
    pieces = token_view.prompt_tokens(smol, rendered)
    assert token_view.counts_by_kind(pieces) == by_kind
    assert "".join(s.text for s in segments(rendered)) == rendered.sent_text
    shot_labels = {p.label for p in pieces if p.kind == "shot"}
    assert shot_labels == {"shot p1", "shot p2", "shot p3"}


def test_fitting_drops_a_shots_user_and_assistant_turns_together(smol):
    full = render_prompt(TURNS, TARGET, POOL, tokenizer=smol)
    last_two = TURNS.with_(shots=2, selection="ids", shot_ids=("p2", "p3"))
    two = render_prompt(last_two, TARGET, POOL, tokenizer=smol)
    window = two.prompt_tokens + 8  # room for two shots, not three, and 8 new tokens
    assert full.prompt_tokens > window - 8
    rendered = render_prompt(
        TURNS, TARGET, POOL, tokenizer=smol, context_window=window, max_new_tokens=8
    )
    assert rendered.dropped_shot_ids == ("p1",)  # the farthest from the input goes first
    assert rendered.messages == two.messages
    assert rendered.prompt_tokens == two.prompt_tokens


def test_similarity_picks_drop_the_least_similar_shots_turns_first(smol):
    def embed(texts):
        import numpy as np

        # p4 is the most like the input, then p3, p2, p1 (by how many times "hello" repeats).
        return np.array([[1.0, 0.0]] + [[t.count("hello") / 4, 1.0] for t in texts[1:]])

    design = TURNS.with_(selection="similar", shots=2)
    full = render_prompt(design, TARGET, POOL, tokenizer=smol, embed=_unit(embed))
    assert full.shot_ids == ("p4", "p3")
    one = render_prompt(design.with_(shots=1), TARGET, POOL, tokenizer=smol, embed=_unit(embed))
    rendered = render_prompt(
        design,
        TARGET,
        POOL,
        tokenizer=smol,
        context_window=one.prompt_tokens + 4,
        max_new_tokens=4,
        embed=_unit(embed),
    )
    assert rendered.dropped_shot_ids == ("p3",)
    assert rendered.shot_ids == ("p4",)


def _unit(embed):
    import numpy as np

    def unit(texts):
        vectors = embed(texts)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    return unit


def test_turns_are_refused_without_a_chat_template():
    with pytest.raises(PromptLabError, match="need the model's chat template: this model has none"):
        render_prompt(TURNS, TARGET, POOL, tokenizer=build_tokenizer())
    with pytest.raises(PromptLabError, match="it is switched off"):
        render_prompt(
            TURNS.with_(use_chat_template=False),
            TARGET,
            POOL,
            tokenizer=build_tokenizer(CHAT_TEMPLATE),
        )


def test_turns_are_refused_for_an_encoder_decoder_model():
    with pytest.raises(PromptLabError, match="encoder-decoder"):
        render_prompt(
            TURNS, TARGET, POOL, tokenizer=build_tokenizer(CHAT_TEMPLATE), encoder_decoder=True
        )


def test_inline_stays_one_user_message(smol):
    inline = render_prompt(TURNS.with_(shot_format="inline"), TARGET, POOL, tokenizer=smol)
    assert inline.messages == [{"role": "user", "content": inline.text}]
    assert inline.sent_text == smol.apply_chat_template(
        inline.messages, tokenize=False, add_generation_prompt=True
    )


def test_bad_shot_format_and_instruction_role_are_refused_by_name():
    with pytest.raises(PromptLabError, match="shot_format must be inline or turns"):
        TURNS.with_(shot_format="chat")
    with pytest.raises(PromptLabError, match="instruction_role must be user or system"):
        TURNS.with_(instruction_role="assistant")


def test_a_design_round_trips_through_its_stored_form_and_old_forms_take_defaults():
    assert PromptDesign.from_dict(TURNS.to_dict()) == TURNS
    old = TURNS.to_dict()
    del old["shot_format"], old["instruction_role"]
    assert PromptDesign.from_dict(old).shot_format == "inline"
    with pytest.raises(PromptLabError, match="Unknown design field.*shot_fromat"):
        PromptDesign.from_dict({**TURNS.to_dict(), "shot_fromat": "turns"})
