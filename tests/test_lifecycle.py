"""Corners of an experiment's life on a real SQLite store and the tiny Llama: a start that
cannot begin ends failed with its reason, and a running experiment cannot be deleted (one whose
process died can)."""

import os
import socket
import threading
from datetime import timedelta

import pytest

from core import cli
from core.datasets.data import Dataset, Example
from core.errors import PromptLabError
from core.generation.settings import GenerationSettings
from core.models.registry import ModelRequest
from core.prompting.design import PRESETS
from core.runs import experiments, jobs
from core.runs.experiments import RunSpec
from core.runs.sweeps import Sweep
from storage import queries
from storage.db import session_scope
from storage.schema import utcnow

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


# Deleting ----------------------------------------------------------------------------------------


def held_generation(monkeypatch) -> tuple[threading.Event, threading.Event]:
    """(started, release): the first generation of a run waits for `release` once it has
    `started`, so that a test acts while the experiment is surely running; then it is real."""
    started, release = threading.Event(), threading.Event()
    real = experiments.generate_batches

    def held(*args, **kwargs):
        started.set()
        assert release.wait(timeout=120), "the test never released the run"
        yield from real(*args, **kwargs)

    monkeypatch.setattr(experiments, "generate_batches", held)
    return started, release


def test_running_experiments_and_those_waiting_in_a_run_cannot_be_deleted(db, spec, monkeypatch):
    started, release = held_generation(monkeypatch)
    job = jobs.start_sweep(Sweep(spec, {"max_new_tokens": (3, 4)}), db_url=db)
    first, second = job.experiment_ids
    try:
        assert started.wait(timeout=120), "the run did not start"
        assert record(db, first).status == "running"
        with pytest.raises(PromptLabError, match=rf"^Experiment {first} is running; cancel it"):
            jobs.delete_experiments([first], db_url=db)
        with pytest.raises(PromptLabError, match=rf"^Experiment {second} is part of a run in"):
            jobs.delete_experiments([second], db_url=db)
        with pytest.raises(PromptLabError, match="cancel them first"):
            jobs.delete_experiments([first, second], db_url=db)
    finally:
        release.set()
    assert job.wait(timeout=120), "the job's thread did not end"
    assert job.status == "completed" and job.error is None and job.done == 6
    assert [record(db, i).status for i in (first, second)] == ["completed", "completed"]
    assert [record(db, i).n_done for i in (first, second)] == [3, 3]
    assert jobs.delete_experiments([first, second], db_url=db) == 2


def test_a_run_whose_process_died_can_be_deleted_once_found_stale(db, spec):
    here = socket.gethostname()
    alive, dead, silent = (experiments.create(spec, db_url=db) for _ in range(3))
    with session_scope(db) as session:
        for experiment_id, fields in (
            (alive, dict(pid=os.getpid(), host=here)),
            (dead, dict(pid=2**22 + 12345, host=here)),  # above any pid this machine hands out
            (silent, dict(host="elsewhere", heartbeat_at=utcnow() - timedelta(hours=1))),
        ):
            queries.update_experiment(
                session=session, experiment_id=experiment_id, status="running", **fields
            )
    with pytest.raises(PromptLabError, match=rf"^Experiment {alive} is running"):
        experiments.delete([alive, dead], db_url=db)
    assert record(db, dead).status == "running"  # a refusal changes nothing
    assert experiments.delete([dead, silent], db_url=db) == 2
    assert record(db, alive).status == "running"


def test_the_cli_refuses_to_delete_a_running_experiment_and_keeps_it(db, spec, capsys):
    experiment_id = experiments.create(spec, db_url=db)
    mark_running_here(db, experiment_id)
    assert cli.main(["--db", db, "delete", "--yes", str(experiment_id)]) == 1
    err = capsys.readouterr().err
    assert err == f"error: Experiment {experiment_id} is running; cancel it first.\n"
    assert record(db, experiment_id).status == "running"


def mark_running_here(db: str, experiment_id: int) -> None:
    """Mark an experiment running in a live process (this one), as a run started elsewhere is."""
    with session_scope(db) as session:
        queries.update_experiment(
            session=session,
            experiment_id=experiment_id,
            status="running",
            pid=os.getpid(),
            host=socket.gethostname(),
        )
