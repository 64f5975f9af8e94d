"""Experiments across real processes: a run killed with SIGKILL keeps what it finished and
resumes without duplicates; two processes write to one SQLite file at once without losing any."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import experiments
from core.experiments import RunSpec
from core.models import ModelRequest
from core.prompts import PRESETS
from core.settings import GenerationSettings
from storage import queries
from storage.db import session_scope

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent

RUNNER = """
import json, sys
from core import experiments
from core.experiments import RunSpec
spec = RunSpec.from_dict(json.loads(sys.argv[1]))
if len(sys.argv) > 3:
    experiments.execute(int(sys.argv[3]), db_url=sys.argv[2])
else:
    experiments.run(spec, db_url=sys.argv[2])
"""


def start(spec: RunSpec, db: str, experiment_id: int | None = None) -> subprocess.Popen:
    args = [sys.executable, "-c", RUNNER, json.dumps(spec.to_dict()), db]
    if experiment_id is not None:
        args.append(str(experiment_id))
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(condition, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.2)


def done_count(db: str, experiment_id: int) -> int:
    with session_scope(db) as session:
        return len(queries.finished_keys(session=session, experiment_id=experiment_id))


def test_killed_run_keeps_finished_examples_and_resumes_without_duplicates(tmp_path):
    db = f"sqlite:///{tmp_path}/store.sqlite"
    spec = RunSpec(
        model=ModelRequest(device="cpu"),  # the embedded model: batches take seconds
        design=PRESETS["instruction"],
        settings=GenerationSettings(max_new_tokens=24),
        limit=8,
        batch_size=2,
    )
    experiment_id = experiments.create(spec, db_url=db)
    process = start(spec, db, experiment_id)
    try:
        wait_for(lambda: done_count(db, experiment_id) >= 2 or process.poll() is not None)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    with session_scope(db) as session:
        kept = {
            r.example_key: r.id
            for r in queries.results_of(session=session, experiment_id=experiment_id)
        }
        assert 2 <= len(kept) < 8, "the kill came after the run finished"
        assert (
            queries.get_experiment(session=session, experiment_id=experiment_id).status == "running"
        )
        assert queries.mark_stale_runs(session=session) == [experiment_id]
    with session_scope(db) as session:
        assert (
            queries.get_experiment(session=session, experiment_id=experiment_id).status
            == "interrupted"
        )
    assert experiments.resume(experiment_id, db_url=db) == "completed"
    with session_scope(db) as session:
        results = queries.results_of(session=session, experiment_id=experiment_id)
        record = queries.get_experiment(session=session, experiment_id=experiment_id)
    assert len(results) == 8 == len({r.example_key for r in results}) == record.n_done
    assert {k: i for k, i in ((r.example_key, r.id) for r in results) if k in kept} == kept
    assert record.status == "completed" and record.aggregates["n_scored"] == 8


def test_two_processes_write_to_one_sqlite_file_at_once(tmp_path, tiny_causal_dir):
    db = f"sqlite:///{tmp_path}/shared.sqlite"
    spec = RunSpec(
        model=ModelRequest(str(tiny_causal_dir)),
        design=PRESETS["flan"],
        settings=GenerationSettings(max_new_tokens=4),
        limit=24,
        batch_size=1,  # a commit per example: as much contention as possible
    )
    processes = [start(spec, db) for _ in range(2)]
    outcomes = [p.communicate(timeout=300) for p in processes]
    for process, (_, err) in zip(processes, outcomes, strict=True):
        assert process.returncode == 0, err.decode()
        assert b"database is locked" not in err
    with session_scope(db) as session:
        records = queries.list_experiments(session=session)
        assert len(records) == 2
        for record in records:
            assert record.status == "completed"
            assert len(queries.results_of(session=session, experiment_id=record.id)) == 24
