"""Shots picked by similarity to the input (most similar K, or MMR: similar but diverse) and
their order, on the real embedding model; never an example as its own shot, whatever the rule."""

import json

import numpy as np
import pytest

from core.datasets.data import Example, load_builtin
from core.errors import PromptLabError
from core.generation.settings import GenerationSettings
from core.models.registry import ModelRequest
from core.prompting.design import PRESETS, PromptDesign, mmr, select_shots
from core.prompting.embeddings import get_embedder
from core.prompting.rendering import render_prompt
from core.runs import experiments
from core.runs.experiments import RunSpec
from core.runs.sweeps import DIMENSIONS, Sweep, run_sweep, sweep_from_lists
from storage import queries
from storage.db import session_scope
from tests.conftest import build_tokenizer

DATA = load_builtin()
POOL, EVAL = DATA.pool, DATA.eval
FLAN = PRESETS["flan"]
TRAIN = {
    "a": "#Person1#: I need two train tickets to Boston for Friday morning.\n"
    "#Person2#: Return or one way?\n#Person1#: Return, please.",
    # A near-duplicate of "a": similarity alone would show the model the same dialogue twice.
    "a2": "#Person1#: I need two train tickets to Boston for Friday morning, please.\n"
    "#Person2#: Return or one way?\n#Person1#: Return.",
    "b": "#Person1#: When does the next train to Leeds leave, and how much is a ticket?\n"
    "#Person2#: In ten minutes, from platform four. It is twelve pounds.",
    "c": "#Person1#: Doctor, I have had a headache for three days.\n"
    "#Person2#: Let me check your blood pressure. Are you sleeping well?",
    "d": "#Person1#: This soup is cold.\n#Person2#: I'm so sorry, I will bring a fresh bowl.",
}
TRAIN_POOL = tuple(Example(key, text, f"summary {key}") for key, text in TRAIN.items())
TRAIN_TARGET = Example(
    "t", "#Person1#: Can I buy a train ticket to Boston here?\n#Person2#: Single or return?", "x"
)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPT_LAB_CACHE", str(tmp_path))


def ids(shots):
    return [s.id for s in shots]


def cosine_to(target, examples):
    vectors = get_embedder().embed([target.input, *(ex.input for ex in examples)])
    return vectors[1:] @ vectors[0]


def test_similar_takes_the_k_most_similar_by_cosine_most_similar_first():
    target = EVAL[0]
    shots = select_shots(FLAN.with_(shots=4, selection="similar"), POOL, target)
    similarity = cosine_to(target, POOL)
    expected = [POOL[i].id for i in np.argsort(-similarity, kind="stable")[:4]]
    assert ids(shots) == expected
    assert list(cosine_to(target, shots)) == sorted(cosine_to(target, shots), reverse=True)


@pytest.mark.parametrize("selection", ["first", "random", "similar", "mmr"])
@pytest.mark.parametrize("order", ["given", "reversed", "similar_last"])
def test_shot_is_never_its_own_example_under_any_rule(selection, order):
    design = FLAN.with_(shots=15, selection=selection, shot_order=order)
    for target in (POOL[3], Example("copy", POOL[7].input, "another id, the same dialogue")):
        shots = select_shots(design, POOL, target)
        assert len(shots) == 15 and len(set(ids(shots))) == 15
        assert all(s.input != target.input for s in shots)


def test_too_few_usable_examples_is_refused_for_similar_too():
    with pytest.raises(PromptLabError, match="only 15 usable"):
        select_shots(FLAN.with_(shots=16, selection="similar"), POOL, POOL[0])


def test_mmr_with_lambda_one_is_similar():
    for target in EVAL[:5]:
        similar = select_shots(FLAN.with_(shots=5, selection="similar"), POOL, target)
        mmr_one = select_shots(FLAN.with_(shots=5, selection="mmr", mmr_lambda=1), POOL, target)
        assert ids(mmr_one) == ids(similar)


def test_mmr_skips_a_near_duplicate_that_similarity_takes():
    similar = select_shots(FLAN.with_(shots=2, selection="similar"), TRAIN_POOL, TRAIN_TARGET)
    assert set(ids(similar)) == {"a", "a2"}
    diverse = select_shots(FLAN.with_(shots=2, selection="mmr"), TRAIN_POOL, TRAIN_TARGET)
    assert diverse[0] == similar[0] and diverse[1].id not in {"a", "a2"}


def test_mmr_greedy_steps_by_hand():
    # Unit vectors: q is the input; 0 and 1 are twins close to it; 2 is further but different.
    q = np.array([1.0, 0.0, 0.0])
    c = np.array([[0.9, 0.436, 0.0], [0.9, 0.436, 0.0], [0.6, -0.2, 0.775]])
    assert mmr(q, c, 2, 1.0) == [0, 1]  # ties go to the earlier candidate
    assert mmr(q, c, 2, 0.5) == [0, 2]  # 0.5·0.9 − 0.5·1 < 0.5·0.6 − 0.5·0.44
    assert mmr(q, c, 5, 0.5) == [0, 2, 1]  # never more than there are


def test_reversed_turns_the_given_order_around():
    target = EVAL[1]
    for selection in ("first", "random", "similar", "mmr"):
        design = FLAN.with_(shots=4, selection=selection, selection_seed=3)
        given = ids(select_shots(design, POOL, target))
        assert ids(select_shots(design.with_(shot_order="reversed"), POOL, target)) == given[::-1]


@pytest.mark.parametrize("selection", ["first", "random", "similar", "mmr"])
def test_similar_last_puts_the_most_similar_shot_next_to_the_input(selection):
    target = EVAL[2]
    design = FLAN.with_(shots=5, selection=selection, selection_seed=1)
    given = select_shots(design, POOL, target)
    last = select_shots(design.with_(shot_order="similar_last"), POOL, target)
    assert set(ids(last)) == set(ids(given))  # the same shots, only moved
    similarity = list(cosine_to(target, last))
    assert similarity == sorted(similarity)
    if selection == "similar":
        assert ids(last) == ids(given)[::-1]


def test_chosen_ids_keep_their_order_unless_asked_otherwise():
    design = FLAN.with_(selection="ids", shots=3, shot_ids=("d003", "d001", "d009"))
    assert ids(select_shots(design, POOL, EVAL[0])) == ["d003", "d001", "d009"]
    reordered = select_shots(design.with_(shot_order="similar_last"), POOL, EVAL[0])
    assert list(cosine_to(EVAL[0], reordered)) == sorted(cosine_to(EVAL[0], reordered))


def test_a_given_embed_function_is_what_selection_uses():
    calls = []

    def embed(texts):
        calls.append(len(texts))
        return get_embedder().embed_cached(texts)

    select_shots(FLAN.with_(shots=2, selection="mmr"), POOL, EVAL[0], embed=embed)
    assert calls == [1 + 16]  # the input and the pool, in one call
    select_shots(FLAN.with_(shots=2), POOL, EVAL[0], embed=embed)
    assert calls == [17]  # first-K in the given order compares nothing


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"mmr_lambda": 1.5}, "mmr_lambda must be a number in"),
        ({"mmr_lambda": -0.1}, "mmr_lambda must be a number in"),
        ({"mmr_lambda": "0.5"}, "mmr_lambda must be a number in"),
        ({"shot_order": "sideways"}, "shot_order must be given, reversed or similar_last"),
        ({"selection": "nearest"}, "similar or mmr"),
    ],
)
def test_invalid_similarity_settings_name_the_field(changes, message):
    with pytest.raises(PromptLabError, match=message):
        FLAN.with_(**changes)


def test_needs_embeddings_only_when_similarity_decides():
    assert not FLAN.with_(shots=0, selection="similar").needs_embeddings
    assert not FLAN.with_(shots=2, selection="random", shot_order="reversed").needs_embeddings
    assert FLAN.with_(shots=2, selection="mmr").needs_embeddings
    assert FLAN.with_(shots=2, shot_order="similar_last").needs_embeddings


def test_design_with_the_new_fields_survives_json():
    design = FLAN.with_(shots=3, selection="mmr", mmr_lambda=0.3, shot_order="similar_last")
    spec = RunSpec(design=design)
    assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert PromptDesign(mmr_lambda=1).mmr_lambda == 1.0 and PromptDesign(mmr_lambda=1) == (
        PromptDesign(mmr_lambda=1.0)
    )


def test_a_design_stored_before_these_fields_still_loads():
    stored = RunSpec(design=FLAN.with_(shots=2)).to_dict()
    del stored["design"]["mmr_lambda"], stored["design"]["shot_order"]
    spec = RunSpec.from_dict(json.loads(json.dumps(stored)))
    assert spec.design.mmr_lambda == 0.5 and spec.design.shot_order == "given"
    assert spec.design == FLAN.with_(shots=2)


def test_sweep_values_for_selection_order_and_lambda_are_typed():
    assert {"selection", "shot_order", "mmr_lambda"} <= set(DIMENSIONS)
    sweep = sweep_from_lists(
        RunSpec(design=FLAN.with_(shots=2)),
        [("shot_order", "given,similar_last"), ("mmr_lambda", "0.3,1")],
    )
    specs = sweep.expand()
    assert [(s.design.shot_order, s.design.mmr_lambda) for s in specs] == [
        ("given", 0.3),
        ("given", 1.0),
        ("similar_last", 0.3),
        ("similar_last", 1.0),
    ]
    with pytest.raises(PromptLabError, match="mmr_lambda takes float values"):
        sweep_from_lists(RunSpec(), [("mmr_lambda", "high")])
    with pytest.raises(PromptLabError, match="shot_order must be"):
        sweep_from_lists(RunSpec(), [("shot_order", "given,upside_down")]).expand()


def test_sweep_over_selection_strategies_expands_and_renders():
    sweep = sweep_from_lists(
        RunSpec(design=FLAN.with_(shots=3, selection_seed=2)),
        [("selection", "first,random,similar,mmr")],
    )
    specs = sweep.expand()
    assert [s.label for s in specs] == [
        "selection=first",
        "selection=random",
        "selection=similar",
        "selection=mmr",
    ]
    chosen = {}
    for spec in specs:
        prompts = [render_prompt(spec.design, ex, POOL) for ex in EVAL[:4]]
        assert all(len(p.shot_ids) == 3 and p.example_id not in p.shot_ids for p in prompts)
        chosen[spec.design.selection] = [p.shot_ids for p in prompts]
    assert chosen["first"] == [("d001", "d002", "d003")] * 4
    assert len(set(chosen["similar"])) > 1  # picked for each input, not once for all
    assert chosen["similar"] != chosen["first"]


@pytest.fixture
def tiny_spec(tiny_causal_dir):
    return RunSpec(
        model=ModelRequest(str(tiny_causal_dir)),
        design=FLAN.with_(shots=2),
        settings=GenerationSettings(max_new_tokens=2),
        limit=3,
        batch_size=3,
    )


def test_a_sweep_over_selection_runs_and_stores_the_shots_it_used(tmp_path, tiny_spec):
    db = f"sqlite:///{tmp_path}/store.sqlite"
    embedder = get_embedder()
    before = embedder.encoded
    variations = {"selection": ("first", "similar", "mmr"), "shot_order": ("similar_last",)}
    _, ids_ = run_sweep(Sweep(tiny_spec, variations), db_url=db)
    assert embedder.encoded - before <= 16 + 3  # the pool and each input once, at most
    for experiment_id, spec in zip(ids_, Sweep(tiny_spec, variations).expand(), strict=True):
        with session_scope(db) as session:
            record = queries.get_experiment(session=session, experiment_id=experiment_id)
            results = queries.results_of(session=session, experiment_id=experiment_id)
        assert record.status == "completed" and len(results) == 3
        for result in results:
            target = DATA.by_id(result.example_key)
            expected = ids(select_shots(spec.design, POOL, target))
            assert [*result.dropped_shots, *result.shots] == expected  # dropped: to fit
    assert experiments.stored_spec(ids_[2], db_url=db).design.selection == "mmr"


@pytest.mark.parametrize("order", ["given", "reversed", "similar_last"])
def test_a_prompt_that_must_shrink_drops_the_least_similar_shot_first(order):
    design = FLAN.with_(shots=3, selection="similar", shot_order=order, use_chat_template=False)
    tokenizer = build_tokenizer()
    full = render_prompt(design, TRAIN_TARGET, TRAIN_POOL, tokenizer=tokenizer)
    ranked = select_shots(design.with_(shot_order="given"), TRAIN_POOL, TRAIN_TARGET)
    least = ranked[-1]
    least_tokens = next(p.tokens for p in full.parts if p.example_id == least.id)
    window = full.prompt_tokens - least_tokens + 10  # room for all shots but one
    fitted = render_prompt(
        design,
        TRAIN_TARGET,
        TRAIN_POOL,
        tokenizer=tokenizer,
        context_window=window,
        max_new_tokens=10,
    )
    assert fitted.dropped_shot_ids == (least.id,)
    assert set(fitted.shot_ids) == {s.id for s in ranked[:-1]}
