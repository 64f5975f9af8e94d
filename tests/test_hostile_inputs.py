"""Hostile input against the operator's policy (core/policy.py), with real parts: a model folder
whose code would write a marker, paths outside the roots, an arbitrary variable named as the key
with a loopback server recording what arrives, a file over the upload limit, a run over the
example limit, an endpoint host off the allow-list."""

from __future__ import annotations

import json
import runpy
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from core import cli
from core.datasets import files as dataset_files
from core.datasets.data import import_file
from core.errors import PromptLabError
from core.generation.settings import GenerationSettings
from core.models import registry as models
from core.models.registry import ModelRequest, get_model, load_model, prompt_tokenizer
from core.prompting.design import PRESETS
from core.runs import experiments, sweeps
from core.runs.experiments import RunSpec
from core.served.client import Client
from core.served.endpoint import Endpoint, map_settings, probe
from storage import queries
from storage.db import session_scope
from storage.schema import ExperimentRecord, StudyRecord
from tests.ui.shown import unescaped

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
REMOTE_CODE = "PROMPT_LAB_ALLOW_REMOTE_CODE"
SECRET = "s3cr3t-value-9c1d"


def stored_counts(db: str) -> tuple[int, int]:
    """(experiments, studies) in the store: what a refused run must leave at zero."""
    with session_scope(db) as session:
        return (
            session.scalar(select(func.count(ExperimentRecord.id))),
            session.scalar(select(func.count(StudyRecord.id))),
        )


@pytest.fixture(autouse=True)
def plain_policy(monkeypatch):
    """The operator's defaults, whatever the shell running the tests has set."""
    for name in (
        REMOTE_CODE,
        "PROMPT_LAB_KEY_VARIABLES",
        "PROMPT_LAB_ENDPOINT_HOSTS",
        "PROMPT_LAB_MAX_UPLOAD_MB",
        "PROMPT_LAB_MAX_EXAMPLES_PER_RUN",
    ):
        monkeypatch.delenv(name, raising=False)


# a. a model folder that names its own code ----------------------------------------------------


@pytest.fixture
def code_folder(tmp_path) -> tuple[Path, Path]:
    """(a model folder whose config names its own Python, the marker that code would write)."""
    folder, marker = tmp_path / "model-with-code", tmp_path / "code-ran.marker"
    folder.mkdir()
    config = {
        "model_type": "hostile",
        "architectures": ["HostileModel"],
        "auto_map": {
            "AutoConfig": "configuration_hostile.HostileConfig",
            "AutoModelForCausalLM": "modeling_hostile.HostileModel",
            "AutoTokenizer": ["tokenization_hostile.HostileTokenizer", None],
        },
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer_config.json").write_text(json.dumps({"auto_map": config["auto_map"]}))
    code = f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
    for module in ("configuration_hostile", "modeling_hostile", "tokenization_hostile"):
        (folder / f"{module}.py").write_text(code)
    return folder, marker


def test_the_folders_code_writes_its_marker_when_it_runs(code_folder):
    folder, marker = code_folder  # the control: the marker is how running code would show
    runpy.run_path(str(folder / "configuration_hostile.py"))
    assert marker.read_text() == "ran"


def test_trust_remote_code_is_refused_naming_the_setting_and_the_code_never_runs(code_folder):
    folder, marker = code_folder
    request = ModelRequest(str(folder), device="cpu", trust_remote_code=True)
    before = models.current_model()  # whatever an earlier test left loaded stays loaded
    for load in (load_model, get_model, prompt_tokenizer):
        with pytest.raises(PromptLabError, match=f"{REMOTE_CODE}=1") as refused:
            load(request)
        assert "Traceback" not in str(refused.value)
    assert not marker.exists()
    assert models.current_model() is before


def test_trust_remote_code_from_the_real_cli_is_refused_and_stores_nothing(code_folder, tmp_path):
    folder, marker = code_folder
    db = f"sqlite:///{tmp_path}/cli.sqlite"
    done = subprocess.run(
        [sys.executable, "-m", "core", "--db", db, "run", "--model", str(folder)]
        + ["--trust-remote-code", "--limit", "1", "--max-new-tokens", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert f"{REMOTE_CODE}=1" in done.stderr and "Traceback" not in done.stderr
    assert not marker.exists()
    assert stored_counts(db) == (0, 0)


def test_a_stored_spec_with_trust_remote_code_is_refused_when_run_again(
    code_folder, db, monkeypatch
):
    folder, marker = code_folder
    spec = RunSpec(model=ModelRequest(str(folder), trust_remote_code=True), limit=2)
    monkeypatch.setenv(REMOTE_CODE, "1")  # stored while the operator allowed it ...
    experiment_id = experiments.create(spec, db_url=db)
    monkeypatch.delenv(REMOTE_CODE)  # ... and allowed no longer
    with pytest.raises(PromptLabError, match=f"{REMOTE_CODE}=1"):
        experiments.rerun(experiment_id, db_url=db)
    assert stored_counts(db) == (1, 0)  # the re-run stored no new experiment
    with pytest.raises(PromptLabError, match=f"{REMOTE_CODE}=1"):
        experiments.execute(experiment_id, db_url=db)  # resuming the pending one
    with session_scope(db) as session:
        record = queries.get_experiment(session=session, experiment_id=experiment_id)
    assert record.status == "failed" and REMOTE_CODE in record.error
    assert not marker.exists()


# b. local paths: the roots, and one message for every refusal ---------------------------------


@pytest.fixture
def roots(tmp_path, monkeypatch, tiny_causal_dir) -> Path:
    """A root of the test's own holding a real model, and beside it (outside) another."""
    root = tmp_path / "root"
    shutil.copytree(tiny_causal_dir, root / "model")
    shutil.copytree(tiny_causal_dir, tmp_path / "outside")
    (root / "empty").mkdir()
    (root / "notes.txt").write_text("not a model")
    monkeypatch.setenv("PROMPT_LAB_MODEL_ROOTS", str(root))
    return root


def refusal(model_id: str) -> str:
    """The refusal of `model_id` with the path as typed taken out."""
    with pytest.raises(PromptLabError) as refused:
        load_model(ModelRequest(model_id, device="cpu"))
    text = str(refused.value)
    assert text.startswith(f"'{model_id}' ")
    return text.replace(model_id, "<typed>", 1)


def test_a_model_under_a_root_loads(roots):
    assert load_model(ModelRequest(str(roots / "model"), device="cpu")).kind == "causal"


def test_outside_the_roots_and_missing_give_exactly_the_same_message(roots, tmp_path):
    outside = refusal(str(tmp_path / "outside"))  # a real model, outside every root
    assert "PROMPT_LAB_MODEL_ROOTS" in outside
    assert refusal(str(tmp_path / "missing")) == outside
    assert refusal(str(roots / "missing")) == outside  # missing inside a root too
    assert refusal(str(roots / "empty")) == outside  # a folder without config.json
    assert refusal(str(roots / "notes.txt")) == outside  # a file
    assert refusal(str(roots / "missing.gguf")) == outside
    assert refusal(str(tmp_path / "outside" / "model.safetensors")) == outside


def test_symlinks_and_dot_dot_cannot_leave_the_roots(roots, tmp_path):
    (roots / "link").symlink_to(tmp_path / "outside", target_is_directory=True)
    expected = refusal(str(tmp_path / "missing"))
    assert refusal(str(roots / "link")) == expected
    assert refusal(str(roots / ".." / "outside")) == expected
    assert refusal(str(roots / "model" / ".." / ".." / "outside")) == expected


def test_the_models_page_refuses_a_path_outside_the_roots_with_the_same_message(
    roots, tmp_path, monkeypatch
):
    monkeypatch.setenv("PROMPT_LAB_DB", f"sqlite:///{tmp_path}/store.sqlite")
    st.cache_resource.clear()
    models.unload()
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/models.py").run()
    typed = str(tmp_path / "outside")
    at.text_input(key="keep.models.model_id").set_value(typed)
    at.selectbox(key="keep.models.device").set_value("cpu")
    next(b for b in at.button if b.label == "Load").click().run()
    assert not at.exception
    assert unescaped(at.error[0].value).replace(typed, "<typed>", 1) == refusal(typed)
    assert models.current_model() is None


def test_the_models_page_disables_trust_remote_code_unless_the_operator_allows_it(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("PROMPT_LAB_DB", f"sqlite:///{tmp_path}/store.sqlite")
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/models.py").run()
    tick = at.checkbox(key="keep.models.trust_remote_code")
    assert tick.disabled
    assert any(REMOTE_CODE in c.value for c in at.caption)
    monkeypatch.setenv(REMOTE_CODE, "1")
    at.run()
    tick = at.checkbox(key="keep.models.trust_remote_code")
    assert not tick.disabled and not tick.value  # allowed, it is still the user's explicit tick
    assert not any(REMOTE_CODE in c.value for c in at.caption)


# c. and f. served endpoints: the key variable and the host -----------------------------------


class Recorder:
    """A loopback HTTP server that records every request that arrives, headers included."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _record(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length) if length else b""
                recorder.requests.append(
                    {"method": self.command, "path": self.path, "headers": dict(self.headers)}
                )
                reply = {"object": "list", "data": [{"id": "m"}]}
                if body:
                    reply = {"choices": [{"text": "ok", "finish_reason": "stop"}]}
                raw = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = _record  # noqa: N815 - http.server's names

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_port}/v1"

    def __enter__(self) -> Recorder:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder() as server:
        yield server


def served(recorder: Recorder, **changes) -> Endpoint:
    return Endpoint(base_url=recorder.base_url, model="m", timeout_s=30.0, **changes)


def refused_everywhere(endpoint: Endpoint, match: str) -> list[str]:
    """Probe, a client and a stored run are each refused; their messages."""
    messages = []
    with pytest.raises(PromptLabError, match=match) as refused:
        probe(endpoint)
    messages.append(str(refused.value))
    settings = GenerationSettings(max_new_tokens=4)
    with pytest.raises(PromptLabError, match=match) as refused:
        Client(endpoint, settings, map_settings(settings, endpoint))
    messages.append(str(refused.value))
    return messages


def test_an_arbitrary_variable_as_the_key_is_refused_and_nothing_is_sent(recorder, monkeypatch):
    monkeypatch.setenv("SECRET_FOR_TEST", SECRET)
    endpoint = served(recorder, api_key_env="SECRET_FOR_TEST")
    messages = refused_everywhere(endpoint, "PROMPT_LAB_KEY_")
    assert all("PROMPT_LAB_KEY_VARIABLES" in m and SECRET not in m for m in messages)
    assert recorder.requests == []  # not even a request without the key
    monkeypatch.delenv("SECRET_FOR_TEST")
    assert refused_everywhere(endpoint, "PROMPT_LAB_KEY_") == messages  # set or not: the same


def test_a_stored_served_run_with_an_arbitrary_key_variable_is_refused(
    recorder, monkeypatch, db, tiny_causal_dir
):
    monkeypatch.setenv("SECRET_FOR_TEST", SECRET)
    spec = RunSpec(
        model=ModelRequest(str(tiny_causal_dir)),
        limit=2,
        endpoint=served(recorder, api_key_env="SECRET_FOR_TEST"),
    )
    with pytest.raises(PromptLabError, match="PROMPT_LAB_KEY_VARIABLES"):
        experiments.run(spec, db_url=db)
    assert stored_counts(db) == (0, 0) and recorder.requests == []
    monkeypatch.setenv("PROMPT_LAB_KEY_VARIABLES", "SECRET_FOR_TEST")
    experiment_id = experiments.create(spec, db_url=db)  # stored while the operator listed it
    monkeypatch.delenv("PROMPT_LAB_KEY_VARIABLES")
    with pytest.raises(PromptLabError, match="PROMPT_LAB_KEY_VARIABLES") as refused:
        experiments.execute(experiment_id, db_url=db)
    assert SECRET not in str(refused.value) and recorder.requests == []


def test_a_prompt_lab_key_variable_is_accepted_and_its_bearer_header_arrives(recorder, monkeypatch):
    monkeypatch.setenv("PROMPT_LAB_KEY_TEST_HOSTILE", SECRET)
    assert probe(served(recorder, api_key_env="PROMPT_LAB_KEY_TEST_HOSTILE")) == ["m"]
    monkeypatch.setenv("SECRET_FOR_TEST", "listed-" + SECRET)
    monkeypatch.setenv("PROMPT_LAB_KEY_VARIABLES", "OTHER, SECRET_FOR_TEST")
    assert probe(served(recorder, api_key_env="SECRET_FOR_TEST")) == ["m"]  # listed
    sent = [r["headers"].get("Authorization") for r in recorder.requests]
    assert sent == [f"Bearer {SECRET}", f"Bearer listed-{SECRET}"]


def test_an_endpoint_host_off_the_allow_list_is_refused_and_nothing_arrives(
    recorder, monkeypatch, db, tiny_causal_dir
):
    monkeypatch.setenv("PROMPT_LAB_ENDPOINT_HOSTS", "gpu-node.internal, LOCALHOST")
    endpoint = served(recorder)
    messages = refused_everywhere(endpoint, "PROMPT_LAB_ENDPOINT_HOSTS")
    assert all("'127.0.0.1'" in m for m in messages)
    spec = RunSpec(model=ModelRequest(str(tiny_causal_dir)), limit=2, endpoint=endpoint)
    with pytest.raises(PromptLabError, match="PROMPT_LAB_ENDPOINT_HOSTS"):
        experiments.run(spec, db_url=db)
    assert stored_counts(db) == (0, 0) and recorder.requests == []
    monkeypatch.setenv("PROMPT_LAB_ENDPOINT_HOSTS", "gpu-node.internal,127.0.0.1")
    assert probe(endpoint) == ["m"] and len(recorder.requests) == 1  # the control


def test_the_cli_refuses_an_arbitrary_key_variable_before_anything(
    recorder, monkeypatch, db, capsys
):
    monkeypatch.setenv("SECRET_FOR_TEST", SECRET)
    argv = ["--db", db, "run", "--endpoint", recorder.base_url, "--served-model", "m"]
    assert cli.main([*argv, "--api-key-env", "SECRET_FOR_TEST", "--limit", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "PROMPT_LAB_KEY_" in err and SECRET not in err
    assert stored_counts(db) == (0, 0) and recorder.requests == []


# d. a file over the upload limit -----------------------------------------------------------


def big_csv() -> bytes:
    """Just over 1.1 MB of well-formed CSV."""
    row = "d{:06d},#Person1#: " + "hello " * 30 + ",a greeting\n"
    lines = ["id,dialogue,summary\n"]
    size, i = len(lines[0]), 0
    while size < 1_100_000:
        lines.append(row.format(i))
        size, i = size + len(lines[-1]), i + 1
    return "".join(lines).encode()


def test_an_upload_over_the_limit_is_refused_naming_the_limit_and_nothing_is_stored(
    monkeypatch, tmp_path, db, capsys
):
    monkeypatch.setenv("PROMPT_LAB_MAX_UPLOAD_MB", "1")
    raw = big_csv()
    mapping = dataset_files.ColumnMapping("dialogue", "summary", "id")
    for read in (
        lambda: dataset_files.preview_upload(raw, filename="big.csv"),
        lambda: dataset_files.import_upload(raw, filename="big.csv", name="big", mapping=mapping),
    ):
        with pytest.raises(PromptLabError, match=r"at most 1 MB .*PROMPT_LAB_MAX_UPLOAD_MB"):
            read()
    path = tmp_path / "big.csv"
    path.write_bytes(raw)
    with pytest.raises(PromptLabError, match="at most 1 MB"):
        import_file(path)
    assert cli.main(["--db", db, "datasets", "import", str(path), "--name", "big"]) == 1
    assert "at most 1 MB" in capsys.readouterr().err
    with session_scope(db) as session:
        assert "big" not in queries.list_dataset_names(session=session)
    monkeypatch.setenv("PROMPT_LAB_MAX_UPLOAD_MB", "2")  # the control: within the limit
    assert dataset_files.preview_upload(raw, filename="big.csv").total_rows > 1000


def test_the_datasets_page_refuses_an_upload_over_the_limit(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMPT_LAB_MAX_UPLOAD_MB", "1")
    monkeypatch.setenv("PROMPT_LAB_DB", f"sqlite:///{tmp_path}/store.sqlite")
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/datasets.py").run()
    at.file_uploader[0].set_value(("big.csv", big_csv(), "text/csv")).run()
    assert not at.exception
    errors = [unescaped(e.value) for e in at.error]
    assert any("at most 1 MB" in e and "PROMPT_LAB_MAX_UPLOAD_MB" in e for e in errors), errors
    assert not [b for b in at.button if b.label == "Import"]
    with session_scope(f"sqlite:///{tmp_path}/store.sqlite") as session:
        assert "big" not in queries.list_dataset_names(session=session)


# e. a run over the example limit -----------------------------------------------------------


def test_a_run_or_sweep_over_the_example_limit_is_refused_and_nothing_is_stored(
    monkeypatch, db, tiny_causal_dir, capsys
):
    monkeypatch.setenv("PROMPT_LAB_MAX_EXAMPLES_PER_RUN", "2")
    spec = RunSpec(
        model=ModelRequest(str(tiny_causal_dir), device="cpu"),
        design=PRESETS["instruction"],
        settings=GenerationSettings(max_new_tokens=2),
        limit=3,
    )
    limit = r"at most 2 examples .*PROMPT_LAB_MAX_EXAMPLES_PER_RUN.*has 3"
    with pytest.raises(PromptLabError, match=limit):
        experiments.run(spec, db_url=db)
    with pytest.raises(PromptLabError, match=limit):
        sweeps.create_sweep(sweeps.Sweep(spec, {"shots": (0, 1)}), db_url=db)
    assert cli.main(["--db", db, "run", "--model", str(tiny_causal_dir), "--limit", "3"]) == 1
    assert "at most 2 examples" in capsys.readouterr().err
    assert stored_counts(db) == (0, 0)
    experiments.run(replace(spec, limit=2), db_url=db)  # the control: within the limit
    assert stored_counts(db) == (1, 0)


def test_a_stored_run_over_todays_example_limit_is_refused_when_run_again(
    monkeypatch, db, tiny_causal_dir
):
    spec = RunSpec(
        model=ModelRequest(str(tiny_causal_dir), device="cpu"),
        settings=GenerationSettings(max_new_tokens=2),
        limit=3,
    )
    experiment_id = experiments.run(spec, db_url=db)
    monkeypatch.setenv("PROMPT_LAB_MAX_EXAMPLES_PER_RUN", "2")
    with pytest.raises(PromptLabError, match="at most 2 examples"):
        experiments.rerun(experiment_id, db_url=db)
    assert stored_counts(db) == (1, 0)


def test_with_hub_downloads_off_an_uncached_hub_id_is_refused_naming_the_setting(monkeypatch):
    monkeypatch.setenv("PROMPT_LAB_HUB_DOWNLOADS", "0")
    with pytest.raises(PromptLabError, match=r"PROMPT_LAB_HUB_DOWNLOADS=0") as refused:
        load_model(ModelRequest("no-such-owner/no-such-model", device="cpu"))
    assert "is not in the local Hugging Face cache" in str(refused.value)
