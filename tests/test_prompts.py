"""Prompt designs: validation, shot selection and the text they render to."""

import pytest

from core.datasets.data import Example
from core.errors import PromptLabError
from core.prompting.design import PRESETS, PromptDesign, build_parts, render_example, select_shots
from core.prompting.rendering import render_prompt

POOL = tuple(Example(f"p{i}", f"dialogue {i}", f"summary {i}") for i in range(1, 7))
TARGET = Example("t1", "#Person1#: Hi.\n#Person2#: Hello.", "They greet.")


def test_format_without_input_placeholder_is_refused():
    with pytest.raises(PromptLabError, match=r"\{input\}"):
        PromptDesign(example_format="Dialogue: {output}")


def test_output_placeholder_before_input_is_refused():
    with pytest.raises(PromptLabError, match="must come after"):
        PromptDesign(example_format="{output} then {input}")


def test_shots_need_an_output_placeholder():
    PromptDesign(example_format="Q: {input}", shots=0)  # zero-shot needs no answer slot
    with pytest.raises(PromptLabError, match="cannot show their answers"):
        PromptDesign(example_format="Q: {input}", shots=2)


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"shots": -1}, "shots"),
        ({"selection": "best"}, "selection"),
        ({"fit_policy": "squeeze"}, "fit_policy"),
        ({"selection": "ids", "shots": 2, "shot_ids": ("p1",)}, "names 1 example"),
    ],
)
def test_invalid_design_names_the_problem(changes, field):
    with pytest.raises(PromptLabError, match=field):
        PromptDesign(example_format="{input} {output}", **changes)


def test_braces_in_dialogue_do_not_break_rendering():
    text = 'The JSON was {"a": 1} and {input} and {output} and {0} {'
    rendered = render_example("In: {input}\nOut: {output}", text, "ok {x}")
    assert rendered == f"In: {text}\nOut: ok {{x}}"


def test_query_stops_where_the_answer_starts():
    assert render_example("D: {input}\nS: {output}\n---", "x") == "D: x\nS: "


def test_first_k_takes_pool_order_and_never_the_target_itself():
    target = POOL[0]
    shots = select_shots(PromptDesign(example_format="{input}{output}", shots=3), POOL, target)
    assert [s.id for s in shots] == ["p2", "p3", "p4"]


def test_shot_is_never_its_own_example_even_under_another_id():
    twin = Example("copy", POOL[1].input, "other")
    design = PromptDesign(example_format="{input}{output}", shots=5)
    assert all(s.input != twin.input for s in select_shots(design, POOL, twin))


def test_seeded_random_selection_is_reproducible_and_seed_dependent():
    design = PromptDesign(example_format="{input}{output}", shots=3, selection="random")
    first = [s.id for s in select_shots(design, POOL, TARGET)]
    again = [s.id for s in select_shots(design, POOL, TARGET)]
    others = {
        tuple(s.id for s in select_shots(design.with_(selection_seed=k), POOL, TARGET))
        for k in range(1, 8)
    }
    assert first == again
    assert len(others | {tuple(first)}) > 1


def test_chosen_ids_keep_their_order_and_skip_the_target():
    design = PromptDesign(
        example_format="{input}{output}", shots=3, selection="ids", shot_ids=("p5", "p2", "p1")
    )
    assert [s.id for s in select_shots(design, POOL, TARGET)] == ["p5", "p2", "p1"]
    assert [s.id for s in select_shots(design, POOL, POOL[1])] == ["p5", "p1"]


def test_unknown_chosen_id_is_refused():
    design = PromptDesign(
        example_format="{input}{output}", shots=1, selection="ids", shot_ids=("zz",)
    )
    with pytest.raises(PromptLabError, match="zz"):
        select_shots(design, POOL, TARGET)


def test_asking_for_more_shots_than_the_pool_holds_is_refused():
    design = PromptDesign(example_format="{input}{output}", shots=7)
    with pytest.raises(PromptLabError, match="only 6"):
        select_shots(design, POOL, TARGET)


def test_parts_join_to_the_prompt_text():
    design = PromptDesign(
        instruction="Do it.", example_format="In: {input}\nOut: {output}", shots=2
    )
    parts = build_parts(design, POOL[:2], TARGET.input)
    assert [p.kind for p in parts] == ["instruction", "shot", "shot", "input"]
    assert "".join(p.text for p in parts) == (
        "Do it.\n\nIn: dialogue 1\nOut: summary 1\n\nIn: dialogue 2\nOut: summary 2\n\n"
        f"In: {TARGET.input}\nOut: "
    )


def test_instruction_preset_reproduces_the_lab_zero_shot_prompt():
    rendered = render_prompt(PRESETS["instruction"], TARGET)
    assert rendered.text == f"Summarize the following conversation.\n\n{TARGET.input}\n\nSummary:\n"
    assert rendered.sent_text == rendered.text  # no tokenizer, so no chat template


def test_flan_preset_separates_shots_by_blank_lines():
    rendered = render_prompt(PRESETS["flan"].with_(shots=1), TARGET, POOL)
    assert rendered.text == (
        "Dialogue:\n\ndialogue 1\n\nWhat was going on?\nsummary 1\n\n\n"
        f"Dialogue:\n\n{TARGET.input}\n\nWhat was going on?\n"
    )
    assert rendered.shot_ids == ("p1",)


def test_target_inside_the_pool_is_reported_when_it_costs_a_shot():
    design = PromptDesign(
        example_format="{input}{output}", shots=2, selection="ids", shot_ids=("p1", "p2")
    )
    rendered = render_prompt(design, POOL[0], POOL)
    assert rendered.shot_ids == ("p2",)
    assert any("not used as a shot for itself" in n for n in rendered.notes)
