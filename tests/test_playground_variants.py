"""Variants, as the Playground puts them side by side: whole designs with their settings as one
sweep dimension (applied before the others), stored as one small study flagged as the
Playground's, whether run on one input or tried on a few examples."""

from dataclasses import replace

import pytest

from core.datasets.data import load_builtin
from core.errors import PromptLabError
from core.generation.settings import GenerationSettings
from core.generation.streaming import TokenStream
from core.models.registry import ModelRequest, get_model
from core.prompting.design import PRESETS
from core.prompting.rendering import render_for_model
from core.runs import playground, sweeps
from core.runs.experiments import RunSpec
from core.runs.sweeps import VariantChoice
from storage import queries
from storage.db import session_scope
from storage.schema import StudyRecord

pytestmark = pytest.mark.both_databases

ZERO = VariantChoice("A", PRESETS["instruction"], GenerationSettings(max_new_tokens=4))
THREE = VariantChoice(
    "B: 3 shots as turns",
    PRESETS["instruction"].with_(shots=3, shot_format="turns"),
    GenerationSettings(max_new_tokens=6, seed=2),
)
BASE = RunSpec(limit=3)


def test_variants_sweep_as_whole_designs_with_their_settings_named_by_themselves():
    first, second = sweeps.Sweep(BASE, {"variant": (ZERO, THREE)}).expand()
    assert (first.design, first.settings, first.label) == (ZERO.design, ZERO.settings, "A")
    assert (second.design, second.settings) == (THREE.design, THREE.settings)
    assert second.label == "B: 3 shots as turns"
    # Other dimensions change a variant after it is set, whatever order they are given in.
    seeded = sweeps.Sweep(BASE, {"seed": (1, 2), "variant": (ZERO, THREE)}).expand()
    assert [(s.label, s.settings.seed, s.design.shots) for s in seeded] == [
        ("A, seed=1", 1, 0),
        ("A, seed=2", 2, 0),
        ("B: 3 shots as turns, seed=1", 1, 3),
        ("B: 3 shots as turns, seed=2", 2, 3),
    ]
    with pytest.raises(PromptLabError, match="lists a value twice"):
        sweeps.Sweep(BASE, {"variant": (ZERO, ZERO)})
    with pytest.raises(PromptLabError, match="needs its design and settings"):
        sweeps.Sweep(BASE, {"variant": ("A",)}).expand()


def test_variants_tried_on_a_few_examples_are_a_playground_study(db):
    sweep = sweeps.Sweep(BASE, {"variant": (ZERO, THREE)}, name="tried in the Playground")
    study_id, ids = sweeps.create_sweep(sweep, db_url=db, origin="playground")
    with session_scope(db) as session:
        study = session.get(StudyRecord, study_id)
        records = [queries.get_experiment(session=session, experiment_id=i) for i in ids]
        assert study.variations == {"variant": ["A", "B: 3 shots as turns"]}
        assert [r.origin for r in records] == ["playground", "playground"]
        assert [r.label for r in records] == ["A", "B: 3 shots as turns"]
        assert records[0].example_keys == records[1].example_keys
        assert len(records[0].example_keys) == 3


def test_variants_run_on_one_input_are_stored_as_one_small_study(db, tiny_causal_dir):
    model = ModelRequest(str(tiny_causal_dir))
    loaded = get_model(model)
    example = load_builtin().eval[0]
    pool = load_builtin().pool
    specs, runs = [], []
    for variant in (ZERO, replace(THREE, design=THREE.design.with_(shot_format="inline"))):
        spec = RunSpec(
            design=variant.design, settings=variant.settings, model=model, label=variant.name
        )
        prompt = render_for_model(loaded, spec.design, example, pool, max_new_tokens=6)
        stream = TokenStream(loaded, prompt, spec.settings)
        "".join(stream)
        specs.append(spec)
        runs.append((prompt, stream.result))
    study_id, ids = playground.store_variants(specs, example, runs, loaded, db_url=db)
    with session_scope(db) as session:
        records = [queries.get_experiment(session=session, experiment_id=i) for i in ids]
        results = [queries.results_of(session=session, experiment_id=i) for i in ids]
        assert session.get(StudyRecord, study_id).variations == {
            "variant": ["A", "B: 3 shots as turns"]
        }
    assert [r.study_id for r in records] == [study_id, study_id]
    assert [r.origin for r in records] == ["playground", "playground"]
    assert [r.status for r in records] == ["completed", "completed"]
    assert [len(r) for r in results] == [1, 1]
    assert [r[0].output for r in results] == [out.text for _, out in runs]
    three = runs[1][0]  # the tiny model's window holds fewer than three shots: some dropped
    assert results[1][0].shots == list(three.shot_ids)
    assert results[1][0].dropped_shots == list(three.dropped_shot_ids)
    assert len(three.shot_ids) + len(three.dropped_shot_ids) == 3
    with pytest.raises(PromptLabError, match="needs its answer"):
        playground.store_variants(specs, example, runs[:1], loaded, db_url=db)


def test_variants_become_typed_sweep_values_when_all_they_differ_in_can_be_typed():
    sampled = VariantChoice(
        "C", ZERO.design.with_(shots=1), ZERO.settings.with_(do_sample=True, temperature=0.7)
    )
    assert sweeps.as_typed_lists([ZERO, sampled]) == {"shots": "0, 1", "temperature": "0, 0.7"}
    assert sweeps.as_typed_lists([ZERO, THREE]) == {
        "shots": "0, 3",
        "shot_format": "inline, turns",
        "max_new_tokens": "4, 6",
        "seed": "0, 2",
    }
    worded = VariantChoice("D", ZERO.design.with_(instruction="Sum up, briefly."), ZERO.settings)
    with pytest.raises(PromptLabError, match="differ in instruction"):
        sweeps.as_typed_lists([ZERO, worded])  # a comma: not typeable as a list
    spaced = VariantChoice("E", ZERO.design.with_(separator="\n"), ZERO.settings)
    with pytest.raises(PromptLabError, match="differ in separator"):
        sweeps.as_typed_lists([ZERO, spaced])
