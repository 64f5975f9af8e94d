"""llama.cpp (local): llama.cpp's server from the xllamacpp wheel, started by Prompt Lab for the
embedded GGUF in a process of its own; a run on it is recorded as backend llama.cpp with the
GGUF's hash, the engine's version and its slots; what it cannot do is refused by name; one
engine at a time, stopped on a switch, on stop() and when its parent dies."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from core import cli
from core.errors import PromptLabError
from core.generation.settings import GenerationSettings
from core.models.loading import ModelRequest
from core.models.locating import embedded_gguf_path
from core.runs import experiments, served
from core.runs.experiments import RunSpec
from core.served import llama_engine
from storage import queries
from storage.db import session_scope

pytestmark = pytest.mark.slow
ONE_SLOT = RunSpec(
    limit=3, settings=GenerationSettings(max_new_tokens=24), engine="llama.cpp", slots=1
)


@pytest.fixture(autouse=True)
def no_engine_left():
    yield
    llama_engine.stop()


def run(db: str, spec: RunSpec) -> int:
    experiment_id = experiments.create(spec, db_url=db)
    assert experiments.execute(experiment_id, db_url=db) == "completed"
    return experiment_id


def outputs(db: str, experiment_id: int) -> list[str]:
    with session_scope(db) as session:
        return [r.output for r in queries.results_of(session=session, experiment_id=experiment_id)]


def test_a_run_on_llama_cpp_is_recorded_with_its_engine_and_repeats_with_one_slot(db):
    first = run(db, ONE_SLOT)
    again = run(db, ONE_SLOT)
    with session_scope(db) as session:
        record = queries.get_experiment(session=session, experiment_id=first)
        results = queries.results_of(session=session, experiment_id=first)
    assert record.backend == "llama.cpp" and record.status == "completed"
    assert record.endpoint == "llama.cpp (local), 1 slot(s), SmolLM2-135M-Instruct.Q4_1.gguf"
    digest = hashlib.sha256(embedded_gguf_path().read_bytes()).hexdigest()
    versions = record.library_versions
    assert versions["gguf_sha256"] == digest and versions["llama_cpp_slots"] == "1"
    assert versions["xllamacpp"] == llama_engine.engine_version() != "unknown"
    assert record.spec["engine"] == "llama.cpp" and record.spec["slots"] == 1
    assert all(r.output.strip() and r.new_tokens > 0 and r.rougeL is not None for r in results)
    assert outputs(db, again) == outputs(db, first)  # one slot: greedy text repeats exactly
    assert record.aggregates["rougeL"]["mean"] > 0


def test_the_engine_is_reused_for_its_config_replaced_for_another_and_stopped(db):
    one = llama_engine.config_for(embedded_gguf_path(), slots=1, threads=1)
    engine = llama_engine.acquire(one)
    pid = engine._process.pid
    assert llama_engine.acquire(one) is engine
    other = llama_engine.acquire(replace(one, slots=2))
    assert other is not engine and not engine.alive and other._process.pid != pid
    llama_engine.stop()
    assert not other.alive and llama_engine.running() is None


def test_the_engine_is_neither_stopped_nor_replaced_under_a_run():
    one = llama_engine.config_for(embedded_gguf_path(), slots=1, threads=1)
    with llama_engine.hold(one) as engine:
        with pytest.raises(PromptLabError, match="A run is generating on llama.cpp"):
            llama_engine.stop()
        with pytest.raises(PromptLabError, match="cannot start another"):
            llama_engine.acquire(replace(one, slots=2))
        assert engine.alive and llama_engine.acquire(one) is engine
    llama_engine.stop()
    assert not engine.alive


def test_the_engine_exits_when_the_process_that_started_it_dies(tmp_path):
    script = (
        "from core.served import llama_engine\n"
        "from core.models.locating import embedded_gguf_path as gguf\n"
        "engine = llama_engine.acquire(llama_engine.config_for(gguf(), slots=1, threads=1))\n"
        "print(engine._process.pid, flush=True)\n"
        "import time; time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)  # no atexit, no cleanup: only the closed pipe is left
    parent.wait()
    deadline = time.monotonic() + 60  # guards against a hang only; it exits at once
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.2)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie has exited; its parent reaps it
        return stat.read().split()[2] != "Z"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"settings": GenerationSettings(num_beams=2)}, "do not run beam search"),
        ({"token_confidence": True}, "Per-token confidence needs the model's probabilities"),
    ],
)
def test_what_the_engine_cannot_do_is_refused_by_name_before_it_starts(db, change, message):
    experiment_id = experiments.create(replace(ONE_SLOT, **change), db_url=db)
    with pytest.raises(PromptLabError, match=message) as refused:
        experiments.execute(experiment_id, db_url=db)
    assert str(refused.value).startswith("llama.cpp (local) cannot run these settings as asked")
    assert llama_engine.running() is None


def test_a_spec_for_the_engine_is_checked_when_made():
    with pytest.raises(PromptLabError, match="llama.cpp \\(local\\) or on a served endpoint"):
        from core.served.endpoint import Endpoint

        replace(ONE_SLOT, endpoint=Endpoint(base_url="http://127.0.0.1:1/v1", model="m"))
    with pytest.raises(PromptLabError, match="slots .* need that engine"):
        RunSpec(slots=2)
    with pytest.raises(PromptLabError, match="engine must be one of transformers, llama.cpp"):
        RunSpec(engine="vllm")
    hub_model = replace(ONE_SLOT, model=ModelRequest("HuggingFaceTB/SmolLM2-135M-Instruct"))
    with pytest.raises(PromptLabError, match="runs GGUF models only"):
        served.engine_config(hub_model)
    with pytest.raises(PromptLabError, match="slots must be a whole number from 1 to 64"):
        llama_engine.config_for(embedded_gguf_path(), slots=0)


def test_the_cli_runs_on_the_engine_and_refuses_a_model_it_cannot_take(db, capsys, tiny_causal_dir):
    argv = ["--db", db, "run", "--engine", "llama.cpp", "--slots", "1", "--limit", "2"]
    assert cli.main([*argv, "--max-new-tokens", "16"]) == 0
    assert "(2 examples" in capsys.readouterr().out
    assert cli.main([*argv, "--model", str(tiny_causal_dir)]) == 1  # a transformers folder
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "runs GGUF models only" in err
    with session_scope(db) as session:
        assert len(queries.list_experiments(session=session)) == 1  # the refused one not stored
