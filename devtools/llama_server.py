"""llama-cpp-python's OpenAI-compatible server, serving the embedded SmolLM2 GGUF on a loopback
port: the real engine behind the served-backend tests and bench/served.py.

It lives in a virtual environment of its own (.venv-llama, made by `make llama-server`, which
`make test` runs), so that its web stack never meets the app's."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PYTHON_ENV = "PROMPT_LAB_LLAMA_PYTHON"
SERVED_NAME = "smollm2-135m-instruct"  # the model's name on the server


def llama_python() -> Path:
    return Path(os.environ.get(PYTHON_ENV) or ROOT / ".venv-llama" / "bin" / "python")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def llama_server(
    *, api_key: str | None = None, n_ctx: int = 8192, threads: int | None = None
) -> Iterator[str]:
    """Start the server, wait until it lists its model, yield its base URL (…/v1), stop it."""
    from core.models import embedded_gguf_path

    python = llama_python()
    if not python.exists():
        raise RuntimeError(
            f"llama-cpp-python's server is not installed at {python}: run `make llama-server` "
            f"(make test does), or point {PYTHON_ENV} at a Python with llama-cpp-python[server]."
        )
    port = free_port()
    threads = threads or os.cpu_count() or 1
    command = [
        str(python), "-m", "llama_cpp.server",
        "--model", str(embedded_gguf_path()),
        "--model_alias", SERVED_NAME,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(n_ctx),
        "--n_threads", str(threads),
        "--n_threads_batch", str(threads),
        # Otherwise a new request may cut a streaming one short; runs here send several at once.
        "--interrupt_requests", "False",
    ]  # fmt: skip
    if api_key:
        command += ["--api_key", api_key]
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(process, base_url, api_key, log)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_ready(process: subprocess.Popen, base_url: str, api_key: str | None, log) -> None:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            tail = log.read().decode(errors="replace")[-3000:]
            raise RuntimeError(f"llama-cpp-python's server exited ({process.returncode}):\n{tail}")
        try:
            if httpx.get(f"{base_url}/models", headers=headers, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError("llama-cpp-python's server did not answer within 180 s")
