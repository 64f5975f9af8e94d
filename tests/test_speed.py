"""How fast and on what experiments generated, on a tiny real model, a scripted endpoint and a
real SQLite file: a background run counts its new tokens as answers are stored and names its
engine; the summary table keeps each experiment's engine and throughput."""

from __future__ import annotations

import io
import threading
from dataclasses import replace
from datetime import datetime, timedelta

import pandas as pd
import pytest

from core.generation.settings import GenerationSettings
from core.models import registry as models
from core.models.registry import ModelRequest
from core.prompting.design import PRESETS
from core.reporting import export, speed
from core.runs import experiments, jobs
from core.runs.experiments import RunSpec
from core.served.endpoint import Endpoint
from devtools.served_stub import StubServer
from storage import queries
from storage.db import session_scope


@pytest.fixture
def spec(tiny_causal_dir):
    yield RunSpec(
        model=ModelRequest(str(tiny_causal_dir)),
        design=PRESETS["flan"],
        settings=GenerationSettings(max_new_tokens=4),
        limit=4,
        batch_size=1,
    )
    models.unload()  # the tests after these find no model of theirs loaded


def wait(job: jobs.Job, timeout: float = 300) -> jobs.Job:
    """Join the job's thread (the timeout only guards against a hang)."""
    for worker in threading.enumerate():
        if worker.name == f"job-{job.id}":
            worker.join(timeout)
    assert job.finished, f"job still {job.status} after {timeout} s"
    return job


def results_of(db: str, experiment_id: int):
    with session_scope(db) as session:
        return queries.results_of(session=session, experiment_id=experiment_id)


def watched(monkeypatch) -> list[tuple[int, int]]:
    """(examples done, the job's new tokens) at each progress report of the job's run."""
    seen: list[tuple[int, int]] = []
    real_execute = experiments.execute

    def execute(experiment_id, *, on_progress, **kwargs):  # the real one, watched
        job = next(j for j in jobs.active() if experiment_id in j.experiment_ids)

        def progress(done: int, total: int) -> None:
            on_progress(done, total)
            seen.append((done, job.new_tokens))

        return real_execute(experiment_id, on_progress=progress, **kwargs)

    monkeypatch.setattr(experiments, "execute", execute)
    return seen


def test_a_job_counts_new_tokens_as_answers_are_stored_and_names_its_engine(db, spec, monkeypatch):
    seen = watched(monkeypatch)
    job = wait(jobs.start_run(spec, db_url=db))
    results = results_of(db, job.experiment_ids[0])
    running_total = 0
    expected = [(0, 0)]
    for r in sorted(results, key=lambda r: r.id):  # batch size 1: one answer a report
        running_total += r.new_tokens
        expected.append((len(expected), running_total))
    assert seen == expected and running_total > 0  # counted during the run, batch by batch
    assert job.new_tokens == running_total
    assert job.tokens_per_s() == pytest.approx(job.new_tokens / job.elapsed_s())
    assert job.engine == "transformers (cpu)"


def test_a_job_on_an_endpoint_counts_the_served_answers_tokens(db, spec, monkeypatch):
    seen = watched(monkeypatch)
    with StubServer(default=("ok", "a person asks about a ticket")) as server:
        endpoint = Endpoint(base_url=server.base_url, model="smol", concurrency=1)
        job = wait(jobs.start_run(replace(spec, batch_size=None, endpoint=endpoint), db_url=db))
    results = results_of(db, job.experiment_ids[0])
    assert job.status == "completed" and len(results) == 4
    assert job.new_tokens == sum(r.new_tokens for r in results) > 0
    assert seen[-1] == (4, job.new_tokens)
    assert job.engine == f"served: {server.base_url} (smol)"


def test_the_summary_keeps_each_experiments_engine_and_throughput(db, spec):
    experiment_id = experiments.run(spec, db_url=db)
    pending = experiments.create(spec, db_url=db)
    with session_scope(db) as session:
        record = queries.get_experiment(session=session, experiment_id=experiment_id)
        frame = export.summary_table(session=session).set_index("id")
    results = results_of(db, experiment_id)
    row = frame.loc[experiment_id]
    seconds = (record.finished_at - record.started_at).total_seconds()
    assert row["engine"] == "transformers (cpu)" and row["backend"] == "local"
    assert row["new_tokens"] == sum(r.new_tokens for r in results) > 0
    assert row["generation_s"] == pytest.approx(seconds)
    assert row["tokens_per_s"] == pytest.approx(row["new_tokens"] / seconds)
    assert frame.loc[pending, ["new_tokens", "tokens_per_s"]].isna().all()  # not run yet
    back = pd.read_csv(io.BytesIO(export.to_csv_bytes(frame.reset_index()))).set_index("id")
    assert back.loc[experiment_id, "engine"] == "transformers (cpu)"  # the summary CSV has them
    assert back.loc[experiment_id, "tokens_per_s"] == pytest.approx(row["tokens_per_s"])


@pytest.mark.parametrize(
    ("backend", "device", "endpoint", "label"),
    [
        ("local", "cuda", None, "transformers (cuda)"),
        ("served", "server", "http://vllm:8000/v1 (qwen)", "served: http://vllm:8000/v1 (qwen)"),
        ("llama.cpp", "cpu", "llama.cpp (local), 4 slot(s), m.gguf", None),
    ],
)
def test_the_engine_is_named_as_its_record_says(backend, device, endpoint, label):
    assert speed.engine_label(backend, device, endpoint) == (label or endpoint)


def test_a_summary_of_a_record_from_before_the_token_total_uses_the_mean():
    started = datetime(2026, 1, 1, 12, 0, 0)
    aggregates = {"n": 5, "n_failed": 1, "mean_new_tokens": 12.5}
    values = export._throughput(aggregates, started, started + timedelta(seconds=10))
    assert values == {"new_tokens": 50, "generation_s": 10.0, "tokens_per_s": 5.0}
