"""Experiments across real processes: a run killed with SIGKILL keeps what it finished and
resumes without duplicates; two processes write to one SQLite file at once without losing any."""

import json
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core.generation.settings import GenerationSettings
from core.models.registry import ModelRequest
from core.prompting.design import PRESETS
from core.runs import experiments
from core.runs.experiments import RunSpec
from storage import queries
from storage.db import session_scope

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent

RUNNER = """
import json, signal, sys
from core.runs import experiments
from core.runs.experiments import RunSpec
spec = RunSpec.from_dict(json.loads(sys.argv[1]))

def pause_after(n):  # says so once n examples are stored, then waits to be killed
    def on_progress(done, total):
        if done >= n:
            print("stored", done, flush=True)
            signal.pause()
    return on_progress

if len(sys.argv) > 3:
    pause = pause_after(int(sys.argv[4])) if len(sys.argv) > 4 else None
    experiments.execute(int(sys.argv[3]), db_url=sys.argv[2], on_progress=pause)
else:
    experiments.run(spec, db_url=sys.argv[2])
"""


def start(
    spec: RunSpec, db: str, experiment_id: int | None = None, pause_after: int | None = None
) -> subprocess.Popen:
    args = [sys.executable, "-c", RUNNER, json.dumps(spec.to_dict()), db]
    if experiment_id is not None:
        args.append(str(experiment_id))
    if pause_after is not None:
        args.append(str(pause_after))
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def read_line(process: subprocess.Popen, timeout: float = 300.0) -> str:
    """The child's next line of output; the timeout only guards against a hang."""
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, f"no word from the run in {timeout:g} s"
    return process.stdout.readline().decode()


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
    process = start(spec, db, experiment_id, pause_after=2)  # killed once a batch is stored
    try:
        said = read_line(process)
    finally:
        process.kill()  # SIGKILL
        process.wait(timeout=60)
    assert said == "stored 2\n", process.stderr.read().decode()
    assert process.returncode == -signal.SIGKILL
    with session_scope(db) as session:
        kept = {
            r.example_key: r.id
            for r in queries.results_of(session=session, experiment_id=experiment_id)
        }
        assert len(kept) == 2  # the first batch; the kill came before the second was stored
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
