"""Experiments and saved prompt versions: a sweep over versions, the version each experiment
records (named when its design is exactly that version's, else its design's unnamed one), and
the summary export naming it. Runs are created, not generated: no model is needed."""

from dataclasses import replace

import pytest

from core.errors import PromptLabError
from core.evaluation import compare
from core.generation.settings import GenerationSettings
from core.library import versions
from core.prompting.design import PRESETS
from core.reporting import export
from core.runs import experiments, sweeps
from core.runs.experiments import RunSpec
from storage.db import session_scope
from storage.schema import ExperimentRecord, PromptVersionRecord

pytestmark = pytest.mark.both_databases

BASE = RunSpec(limit=2, design=PRESETS["instruction"])
ONE = PRESETS["instruction"]
TWO = ONE.with_(instruction="Summarize the dialogue in one sentence.", shots=1)


@pytest.fixture
def library(db):
    versions.save_version("summarise", ONE, message="the lab's instruction", db_url=db)
    versions.save_version(
        "summarise",
        TWO,
        GenerationSettings(max_new_tokens=40),
        message="one sentence, one shot",
        db_url=db,
    )
    versions.move_label("summarise@2", "best", db_url=db)
    return db


def recorded(db, experiment_id) -> PromptVersionRecord:
    with session_scope(db) as session:
        record = session.get(ExperimentRecord, experiment_id)
        version = session.get(PromptVersionRecord, record.prompt_version_id)
        session.expunge(version)
        return version


def test_a_sweep_over_versions_runs_each_versions_design_and_settings(library):
    sweep = sweeps.sweep_from_lists(
        BASE, [("prompt", "summarise@1, summarise@best")], db_url=library
    )
    first, second = sweep.expand()
    assert (first.design, first.prompt, first.label) == (ONE, "summarise@1", "prompt=summarise@1")
    assert (second.design, second.prompt) == (TWO, "summarise@2")  # the label, resolved
    assert second.settings == GenerationSettings(max_new_tokens=40)
    assert first.settings == BASE.settings  # version 1 saved no settings: the base's stay
    study_id, ids = sweeps.create_sweep(sweep, db_url=library)
    assert [recorded(library, i).version for i in ids] == [1, 2]
    with session_scope(library) as session:
        table = export.summary_table(session=session, experiment_ids=ids)
        variants = compare.load_variants(session=session, experiment_ids=ids)
    assert list(table["prompt"]) == ["summarise@1", "summarise@2"]
    assert [v.prompt_version for v in variants] == ["summarise@1", "summarise@2"]
    shown = compare.summary(variants)
    assert list(shown.columns[:3]) == ["id", "variant", "prompt version"]
    assert list(shown["prompt version"]) == ["summarise@1", "summarise@2"]


def test_other_dimensions_change_the_version_and_the_experiment_records_what_it_ran(library):
    sweep = sweeps.sweep_from_lists(
        BASE, [("shots", "0,1"), ("prompt", "summarise@2")], db_url=library
    )
    changed, same = sweep.expand()  # the prompt is applied first, then shots change it
    assert changed.design == TWO.with_(shots=0) and same.design == TWO
    _, (changed_id, same_id) = sweeps.create_sweep(sweep, db_url=library)
    unnamed = recorded(library, changed_id)
    assert (unnamed.prompt_id, unnamed.version) == (None, None)
    assert unnamed.design == TWO.with_(shots=0).to_dict()
    assert recorded(library, same_id).version == 2
    with session_scope(library) as session:
        table = export.summary_table(session=session, experiment_ids=[changed_id, same_id])
        variants = compare.load_variants(session=session, experiment_ids=[changed_id, same_id])
    assert list(table["prompt"]) == ["", "summarise@2"]
    assert list(compare.summary(variants)["prompt version"]) == ["", "summarise@2"]


def test_compare_shows_no_version_column_when_no_experiment_ran_a_named_one(library):
    ids = [experiments.create(BASE, db_url=library) for _ in range(2)]
    with session_scope(library) as session:
        variants = compare.load_variants(session=session, experiment_ids=ids)
    assert "prompt version" not in compare.summary(variants).columns


def test_a_run_typed_in_records_its_designs_unnamed_version_once(library):
    first = experiments.create(BASE, db_url=library)
    second = experiments.create(BASE, db_url=library)
    one, two = recorded(library, first), recorded(library, second)
    assert one.id == two.id and one.prompt_id is None


def test_unknown_and_repeated_versions_are_refused_with_a_sentence(library):
    with pytest.raises(PromptLabError, match="no version 7"):
        sweeps.sweep_from_lists(BASE, [("prompt", "summarise@7")], db_url=library)
    with pytest.raises(PromptLabError, match="No prompt named 'nope'"):
        sweeps.sweep_from_lists(BASE, [("prompt", "nope")], db_url=library)
    with pytest.raises(PromptLabError, match="lists a value twice"):
        sweeps.sweep_from_lists(BASE, [("prompt", "summarise@2,summarise@best")], db_url=library)


def test_the_designs_experiments_ran_unnamed_are_listed_newest_first(library):
    first = experiments.create(BASE, db_url=library)
    other = experiments.create(replace(BASE, design=ONE.with_(shots=2)), db_url=library)
    again = experiments.create(BASE, db_url=library)
    named = experiments.create(replace(BASE, prompt="summarise@1"), db_url=library)
    found = versions.unnamed_designs(db_url=library)
    assert [(u.design, u.experiment_ids) for u in found] == [
        (ONE, (again, first)),
        (ONE.with_(shots=2), (other,)),
    ]
    assert named not in {i for u in found for i in u.experiment_ids}
    assert found[0].last_used >= found[1].last_used
