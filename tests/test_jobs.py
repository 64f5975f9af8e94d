"""Background runs on a tiny real model and a real SQLite file: progress that a page can read,
a cancel that keeps finished results, sweeps run one experiment after another."""

import threading

import pytest

from core.errors import PromptLabError
from core.generation.settings import GenerationSettings
from core.models.registry import ModelRequest
from core.prompting.design import PRESETS
from core.runs import experiments, jobs
from core.runs.experiments import RunSpec
from core.runs.sweeps import Sweep
from storage import queries
from storage.db import session_scope


@pytest.fixture
def spec(tiny_causal_dir):
    return RunSpec(
        model=ModelRequest(str(tiny_causal_dir)),
        design=PRESETS["flan"],
        settings=GenerationSettings(max_new_tokens=4),
        limit=4,
        batch_size=1,
    )


def wait(job: jobs.Job, timeout: float = 300) -> jobs.Job:
    """Join the job's thread (the timeout only guards against a hang)."""
    for worker in threading.enumerate():
        if worker.name == f"job-{job.id}":
            worker.join(timeout)
    assert job.finished, f"job still {job.status} after {timeout} s"
    return job


def statuses(db, ids):
    with session_scope(db) as session:
        return [queries.get_experiment(session=session, experiment_id=i).status for i in ids]


def test_a_run_reports_progress_and_completes(db, spec):
    job = wait(jobs.start_run(spec, db_url=db))
    assert job.status == "completed" and job.error is None
    assert (job.done, job.total) == (4, 4)
    assert job.remaining_s() is None and job.elapsed_s() > 0
    assert statuses(db, job.experiment_ids) == ["completed"]
    assert job not in jobs.active()


def test_a_sweep_runs_its_experiments_in_turn_and_counts_all_examples(db, spec):
    job = wait(jobs.start_sweep(Sweep(spec, {"shots": (0, 1)}), db_url=db))
    assert job.status == "completed" and job.study_id is not None
    assert (job.done, job.total) == (8, 8)
    assert statuses(db, job.experiment_ids) == ["completed", "completed"]


def test_cancel_stops_after_the_batch_in_progress_and_keeps_it(db, spec, monkeypatch):
    # The cancel lands while the first batch is being stored: the job's thread reports that
    # batch, then waits until the test has cancelled (order by events, not by timing).
    first_batch, cancelled = threading.Event(), threading.Event()
    real_execute = experiments.execute

    def execute(experiment_id, *, on_progress, **kwargs):  # the real one, watched
        def progress(done: int, total: int) -> None:
            on_progress(done, total)
            if done and not first_batch.is_set():
                first_batch.set()
                assert cancelled.wait(300)

        return real_execute(experiment_id, on_progress=progress, **kwargs)

    monkeypatch.setattr(experiments, "execute", execute)
    job = jobs.start_sweep(Sweep(spec, {"shots": (0, 1)}), db_url=db)
    assert first_batch.wait(300)
    job.cancel()
    cancelled.set()
    wait(job)
    monkeypatch.undo()
    assert job.status == "cancelled"
    assert statuses(db, job.experiment_ids) == ["interrupted", "pending"]
    with session_scope(db) as session:
        kept = queries.results_of(session=session, experiment_id=job.experiment_ids[0])
    assert len(kept) == job.done == 1  # batch_size 1: the batch in progress, kept
    resumed = wait(jobs.start_resume(job.experiment_ids, db_url=db))
    assert resumed.done_at_start == len(kept)
    assert resumed.status == "completed" and resumed.done == resumed.total == 8


def test_a_bad_spec_is_refused_before_anything_runs(db, spec):
    with pytest.raises(PromptLabError, match="no 'nope' split"):
        jobs.start_run(RunSpec(split="nope", model=spec.model), db_url=db)


def test_a_model_that_fails_to_load_fails_the_job_with_its_message(db, spec, tmp_path):
    bad = RunSpec(model=ModelRequest(str(tmp_path / "no-model-here")), limit=1)
    job = wait(jobs.start_run(bad, db_url=db))
    assert job.status == "failed" and "no-model-here" in job.error
    assert statuses(db, job.experiment_ids) == ["failed"]


def test_rerun_and_resume_refusals(db, spec):
    job = wait(jobs.start_run(spec, db_url=db))
    with pytest.raises(PromptLabError, match="completed; nothing to resume"):
        jobs.start_resume(job.experiment_ids, db_url=db)
    again = wait(jobs.start_rerun(job.experiment_ids[0], db_url=db))
    assert again.status == "completed" and again.experiment_ids[0] != job.experiment_ids[0]


def test_only_the_one_who_started_a_run_or_an_admin_may_cancel_it(monkeypatch):
    from core.policy import Actor, signed_in_actor

    monkeypatch.setenv("PROMPT_LAB_ADMINS", "carol@example.org")
    job = jobs.Job(10_001, "sweep", [], 3, owner="alice@example.org")
    with pytest.raises(PromptLabError) as refused:
        job.cancel(signed_in_actor("bob@example.org"))
    assert str(refused.value).startswith(
        "You can cancel only the runs you started: sweep was started by alice@example.org."
    )
    assert not job.cancelling
    job.cancel(signed_in_actor("carol@example.org"))  # an admin
    assert job.cancelling
    theirs = jobs.Job(10_002, "run", [], 1, owner="alice@example.org")
    theirs.cancel(signed_in_actor("alice@example.org"))
    assert theirs.cancelling
    local = jobs.Job(10_003, "run", [], 1, owner="alice@example.org")
    local.cancel(Actor("someone"))  # no sign-in: the one local user may do everything
    assert local.cancelling
