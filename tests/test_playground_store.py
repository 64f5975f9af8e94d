"""Playground runs are stored as one-example experiments, typed inputs included, and can be
re-run from the record like any other experiment."""

import pytest

from core.datasets.data import Dataset, Example, load_builtin
from core.errors import PromptLabError
from core.generation.settings import GenerationSettings
from core.generation.streaming import TokenStream
from core.models.registry import ModelRequest, get_model
from core.prompting.design import PRESETS
from core.prompting.rendering import render_for_model
from core.runs import experiments, playground
from core.runs.experiments import RunSpec
from storage import queries
from storage.db import session_scope

pytestmark = pytest.mark.both_databases


def stream_and_store(spec, example, db):
    loaded = get_model(spec.model)
    pool = experiments.pool_of(spec, experiments.get_dataset("dialogues", db_url=db), db_url=db)
    prompt = render_for_model(loaded, spec.design, example, pool, max_new_tokens=4)
    stream = TokenStream(loaded, prompt, spec.settings)
    text = "".join(stream)
    return playground.store_run(spec, example, prompt, stream.result, loaded, db_url=db), text


def test_typed_input_is_stored_with_its_run_and_the_run_reruns(db, tiny_causal_dir):
    example = playground.typed_example("hello what was going on ?", "a person asks")
    spec = RunSpec(
        dataset=playground.TYPED_DATASET,
        pool_dataset="dialogues",
        model=ModelRequest(str(tiny_causal_dir)),
        design=PRESETS["flan"].with_(shots=1),
        settings=GenerationSettings(max_new_tokens=4),
        label=playground.LABEL,
    )
    experiment_id, text = stream_and_store(spec, example, db)
    with session_scope(db) as session:
        record = queries.get_experiment(session=session, experiment_id=experiment_id)
        (result,) = queries.results_of(session=session, experiment_id=experiment_id)
        typed = queries.load_dataset(session=session, name=playground.TYPED_DATASET)
        assert record.status == "completed" and record.label == "playground"
        assert record.example_keys == [example.id]
        assert result.output == text and result.reference == "a person asks"
        assert result.rougeL is not None and result.shots == ["d001"]
        assert record.aggregates["n_scored"] == 1
    assert [ex.input for ex in typed.examples] == ["hello what was going on ?"]
    again = experiments.rerun(experiment_id, db_url=db)
    with session_scope(db) as session:
        (redo,) = queries.results_of(session=session, experiment_id=again)
    assert redo.output == text and redo.shots == ["d001"]


def test_retyping_an_input_reuses_its_stored_example(db, tiny_causal_dir):
    spec = RunSpec(
        dataset=playground.TYPED_DATASET,
        pool_dataset="dialogues",
        model=ModelRequest(str(tiny_causal_dir)),
        settings=GenerationSettings(max_new_tokens=2),
    )
    first = playground.typed_example("hi bye")
    assert playground.typed_example("hi bye") == first
    assert playground.typed_example("hi bye", "ref").id != first.id
    stream_and_store(spec, first, db)
    stream_and_store(spec, first, db)
    with session_scope(db) as session:
        typed = queries.load_dataset(session=session, name=playground.TYPED_DATASET)
    assert len(typed.examples) == 1


def test_a_dataset_example_run_is_stored_against_its_dataset(db, tiny_causal_dir):
    example = load_builtin().by_id("d020")
    spec = RunSpec(model=ModelRequest(str(tiny_causal_dir)), settings=GenerationSettings(2))
    experiment_id, _ = stream_and_store(spec, example, db)
    with session_scope(db) as session:
        record = queries.get_experiment(session=session, experiment_id=experiment_id)
        names = queries.list_dataset_names(session=session)
    assert record.dataset_name == "dialogues" and record.example_keys == ["d020"]
    assert playground.TYPED_DATASET not in names


def test_an_empty_typed_input_is_refused():
    with pytest.raises(PromptLabError, match="Type an input"):
        playground.typed_example("  \n")


def test_typed_inputs_never_mix_with_a_users_dataset_named_playground(db, tiny_causal_dir):
    mine = Dataset("playground", (Example("p1", "#Person1#: hi", "a greeting"),), "mine.csv")
    with session_scope(db) as session:
        queries.save_dataset(session=session, dataset=mine)
    example = playground.typed_example("hello what was going on ?")
    spec = RunSpec(
        dataset=playground.TYPED_DATASET,
        pool_dataset="dialogues",
        split=None,
        model=ModelRequest(str(tiny_causal_dir)),
        settings=GenerationSettings(max_new_tokens=2),
        label=playground.LABEL,
    )
    experiment_id, _ = stream_and_store(spec, example, db)
    with session_scope(db) as session:
        theirs = queries.load_dataset(session=session, name="playground")
        typed = queries.load_dataset(session=session, name=playground.TYPED_DATASET)
        record = queries.get_experiment(session=session, experiment_id=experiment_id)
        assert record.origin == "playground" and record.label == "playground"
        assert record.dataset_name == playground.TYPED_DATASET
    assert theirs == mine
    assert [ex.id for ex in typed.examples] == [example.id]
