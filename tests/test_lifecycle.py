"""Corners of an experiment's life on a real SQLite store and the tiny Llama: a start that
cannot begin ends failed with its reason, and a running experiment cannot be deleted."""

import pytest

from core import cli, experiments, jobs
from core.data import Dataset, Example
from core.experiments import RunSpec
from core.models import ModelRequest
from core.prompts import PRESETS
from core.settings import GenerationSettings
from storage import queries
from storage.db import session_scope

MINE = Dataset(
    "mine",
    tuple(Example(f"m{i}", f"#Person1#: hello {i}", "a summary", "eval") for i in range(3)),
)


@pytest.fixture
def spec(db, tiny_causal_dir) -> RunSpec:
    with session_scope(db) as session:
        queries.save_dataset(session=session, dataset=MINE)
    return RunSpec(
        dataset="mine",
        model=ModelRequest(str(tiny_causal_dir)),
        design=PRESETS["flan"],
        settings=GenerationSettings(max_new_tokens=4),
        batch_size=1,
    )


def record(db: str, experiment_id: int):
    with session_scope(db) as session:
        found = queries.get_experiment(session=session, experiment_id=experiment_id)
        session.expunge(found)
        return found


def pending_without_its_dataset(db: str, spec: RunSpec) -> int:
    """An experiment submitted while its dataset existed, whose dataset was deleted since."""
    experiment_id = experiments.create(spec, db_url=db)
    with session_scope(db) as session:
        queries.delete_dataset(session=session, name="mine")
    return experiment_id


def test_a_job_whose_dataset_was_deleted_before_it_started_ends_failed_with_the_reason(db, spec):
    experiment_id = pending_without_its_dataset(db, spec)
    job = jobs.start_resume([experiment_id], db_url=db)
    assert job.wait(timeout=120), "the job's thread did not end"
    assert job.finished and job.status == "failed"
    assert "There is no dataset 'mine'" in job.error
    stored = record(db, experiment_id)
    assert stored.status == "failed"
    assert stored.error == job.error and "Traceback" not in stored.error
    assert stored.finished_at is not None and stored.n_done == 0
    assert job not in jobs.active()


def test_the_cli_fails_such_an_experiment_alike_and_says_why(db, spec, capsys):
    experiment_id = pending_without_its_dataset(db, spec)
    assert cli.main(["--db", db, "resume", str(experiment_id)]) == 1
    err = capsys.readouterr().err
    assert "There is no dataset 'mine'" in err and "Traceback" not in err
    stored = record(db, experiment_id)
    assert stored.status == "failed" and "There is no dataset 'mine'" in stored.error


def test_an_unexpected_failure_is_stored_as_a_sentence_without_its_paths(db, spec, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("[Errno 28] No space left on device: '/home/alice/.cache/secret'")
        yield

    # A bug or a full disk cannot be produced on demand here: generation is made to raise.
    monkeypatch.setattr(experiments, "generate_batches", broken)
    job = jobs.start_run(spec, db_url=db)
    assert job.wait(timeout=120), "the job's thread did not end"
    assert job.status == "failed" and "/home/alice" not in job.error
    stored = record(db, job.experiment_ids[0])
    assert stored.status == "failed"
    assert stored.error.startswith("Something went wrong inside Prompt Lab (OSError)")
    assert "/home/alice" not in stored.error
