"""Reuse within a study, on a tiny real model, a scripted HTTP endpoint and a real SQLite file:
an example whose exact prompt another experiment of the study already sent to the same
generator is copied (attempts 0) instead of generated, scored on its own metrics, and counted
in no throughput; anything else that differs is generated again."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.generation.settings import GenerationSettings
from core.models.registry import ModelRequest
from core.prompting.design import PRESETS
from core.reporting import export
from core.runs import experiments
from core.runs.experiments import RunSpec
from core.served.endpoint import Endpoint
from devtools.served_stub import StubServer
from storage import queries
from storage.db import session_scope
from tests.test_experiments import stored

GIVEN = PRESETS["flan"].with_(shots=1)  # with one shot, its order changes nothing sent
REVERSED = GIVEN.with_(shot_order="reversed")
KEYS = ["d017", "d018", "d019"]


@pytest.fixture
def spec(tiny_causal_dir):
    return RunSpec(
        model=ModelRequest(str(tiny_causal_dir), device="cpu"),
        design=GIVEN,
        settings=GenerationSettings(max_new_tokens=6),
        batch_size=2,
    )


@pytest.fixture
def sent(monkeypatch) -> list[str]:
    """A counting spy around the real generate_batches (the model still generates): the example
    ids of every prompt handed to the local generator."""
    ids: list[str] = []
    real = experiments.generate_batches

    def counting(loaded, prompts, settings, **kwargs):
        ids.extend(p.example_id for p in prompts)
        return real(loaded, prompts, settings, **kwargs)

    monkeypatch.setattr(experiments, "generate_batches", counting)
    return ids


def study(db: str, name: str = "search") -> int:
    with session_scope(db) as session:
        return queries.create_study(session=session, name=name, base_spec={}, variations={})


def run(db: str, spec: RunSpec, study_id: int | None, keys=KEYS, **kwargs) -> int:
    experiment_id = experiments.create(spec, db_url=db, study_id=study_id, example_keys=keys)
    assert experiments.execute(experiment_id, db_url=db, **kwargs) == "completed"
    return experiment_id


def test_a_design_that_sends_the_same_prompts_copies_every_answer_and_scores_it_itself(
    db, spec, sent
):
    study_id = study(db)
    first = run(db, spec, study_id, reuse=True)  # nothing to copy yet: all generated
    assert sent == KEYS
    sent.clear()
    second_spec = replace(spec, design=REVERSED, metrics=("rouge", "length"))
    second = run(db, second_spec, study_id, reuse=True)
    assert sent == []  # nothing reached the model
    (a, theirs), (b, ours) = stored(db, first), stored(db, second)
    assert [r.prompt for r in ours] == [r.prompt for r in theirs]
    for mine, original in zip(ours, theirs, strict=True):
        assert (mine.attempts, mine.latency_s) == (0, 0.0)
        copied = ("output", "prompt_tokens", "new_tokens", "finish_reason", "stop_string")
        copied += ("shots", "dropped_shots", "truncated_input_tokens", *queries.ROUGE_COLUMNS)
        assert {f: getattr(mine, f) for f in copied} == {f: getattr(original, f) for f in copied}
    assert a.aggregates["new_tokens"] > 0 and "n_copied" not in a.aggregates
    assert (b.aggregates["n_copied"], b.aggregates["new_tokens"]) == (3, 0)
    assert b.aggregates["rougeL"] == a.aggregates["rougeL"]
    assert b.aggregates["mean_new_tokens"] == a.aggregates["mean_new_tokens"]
    assert "mean_latency_s" not in b.aggregates  # no answer of its own was timed
    with session_scope(db) as session:  # its own metrics, computed the usual way
        assert queries.metrics_stored(session=session, experiment_ids=[second]) == [
            "length_ratio",
            "words",
        ]
        assert queries.metrics_stored(session=session, experiment_ids=[first]) == []
        summary = export.summary_table(session=session, experiment_ids=[first, second])
        rows = export.per_example_table(session=session, experiment_ids=[second])
    assert summary["new_tokens"].tolist() == [a.aggregates["new_tokens"], 0]
    assert summary["tokens_per_s"].iloc[0] > 0 and summary["tokens_per_s"].isna().iloc[1]
    assert rows["attempts"].tolist() == [0, 0, 0]  # what a reader of the export sees


def test_without_reuse_the_same_prompts_are_generated_again(db, spec, sent):
    study_id = study(db)
    run(db, spec, study_id)
    again = run(db, replace(spec, design=REVERSED), study_id)  # reuse defaults to False
    assert sent == KEYS + KEYS
    assert all(r.attempts == 1 and r.latency_s > 0 for r in stored(db, again)[1])


def test_another_study_or_other_settings_are_never_copied(db, spec, sent):
    study_id = study(db)
    run(db, spec, study_id)
    elsewhere = run(db, spec, study(db, "another"), reuse=True)
    more_tokens = spec.settings.with_(max_new_tokens=7)
    longer = run(db, replace(spec, settings=more_tokens), study_id, reuse=True)
    no_study = run(db, spec, None, reuse=True)
    sampling = spec.settings.with_(do_sample=True, seed=1)
    sampled = run(db, replace(spec, settings=sampling), study_id, reuse=True)
    assert sent == KEYS * 5
    for experiment_id in (elsewhere, longer, no_study, sampled):
        record, results = stored(db, experiment_id)
        assert all(r.attempts == 1 for r in results) and "n_copied" not in record.aggregates


def test_only_the_examples_with_identical_prompts_are_copied_and_a_resume_keeps_them(
    db, spec, sent
):
    study_id = study(db)
    first = run(db, spec, study_id, keys=KEYS[:2])
    sent.clear()
    keys = [*KEYS[:2], "d020", "d021", "d022"]
    one_at_a_time = replace(spec, design=REVERSED, batch_size=1)
    partial = experiments.create(one_at_a_time, db_url=db, study_id=study_id, example_keys=keys)
    status = experiments.execute(partial, db_url=db, should_stop=lambda: True, reuse=True)
    assert status == "interrupted" and sorted(sent) == keys[2:]  # the copied 2 never were
    kept = stored(db, partial)[1]
    assert sorted(r.attempts for r in kept) == [0, 0, 1]  # stopped after one batch of one
    assert experiments.resume(partial, db_url=db, reuse=True) == "completed"
    assert sorted(sent[3:]) == sorted(set(keys[2:]) - {r.example_key for r in kept})
    record, results = stored(db, partial)
    assert [r.example_key for r in results] == keys  # one row each: no duplicates
    assert [r.attempts for r in results] == [0, 0, 1, 1, 1]
    assert [r.output for r in results[:2]] == [r.output for r in stored(db, first)[1]]
    assert record.aggregates["n_copied"] == 2
    assert record.aggregates["new_tokens"] == sum(r.new_tokens for r in results[2:])


def test_a_served_run_copies_only_from_the_same_endpoint(db, spec):
    requests: list[str] = []

    def answer(body):
        requests.append(body["prompt"])
        return ("ok", "a person asks about a ticket")

    study_id = study(db)
    with StubServer(default=answer) as server, StubServer(default=answer) as other:
        served = replace(spec, batch_size=None, endpoint=endpoint(server.base_url))
        first = run(db, served, study_id, reuse=True)
        assert len(requests) == 3
        second = run(db, replace(served, design=REVERSED), study_id, reuse=True)
        assert len(requests) == 3  # nothing sent
        elsewhere = replace(served, endpoint=endpoint(other.base_url))
        run(db, elsewhere, study_id, reuse=True)
        assert len(requests) == 6
    theirs, ours = stored(db, first)[1], stored(db, second)[1]
    assert [r.attempts for r in ours] == [0, 0, 0]
    assert [(r.output, r.prompt, r.rougeL) for r in ours] == [
        (r.output, r.prompt, r.rougeL) for r in theirs
    ]


def endpoint(base_url: str) -> Endpoint:
    return Endpoint(base_url=base_url, model="smol", backoff_s=0.01, timeout_s=60.0)
