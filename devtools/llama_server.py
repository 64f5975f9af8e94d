"""llama.cpp's own OpenAI-compatible server (the prebuilt PyPI wheel xllamacpp) serving the
embedded SmolLM2 GGUF on a loopback port: the real engine behind the served-backend tests and
bench/served.py. It runs in a process of its own, so that it can be killed cleanly and a crash
in its C++ code cannot take the caller down.

    python -m devtools.llama_server [--parallel 8]    # serve until interrupted
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SERVED_NAME = "smollm2-135m-instruct"  # the model's name on the server
KEY_ENV = "PROMPT_LAB_LLAMA_SERVER_KEY"  # the key reaches the child here, not on its command line
READY_S = 180  # only guards against a hang: the model loads in about 2 s


@contextmanager
def llama_server(
    *,
    api_key: str | None = None,
    n_parallel: int = 1,
    n_ctx: int = 8192,
    threads: int = 1,
) -> Iterator[str]:
    """Start the server, wait until it lists its model, yield its base URL (…/v1), stop it.

    n_parallel is the number of slots (requests decoded together); greedy text depends on it,
    so tests that compare exact text keep one. n_ctx is each slot's context. One thread: on
    a machine whose cores are shared, threads that wait for each other at every step made a
    request 5-10x slower (2 threads on 2 busy cores: 12-36 s for 32 tokens; 1 thread: 2.5 s)."""
    command = [
        sys.executable, "-m", "devtools.llama_server",
        "--parallel", str(n_parallel), "--n-ctx", str(n_ctx),
        "--threads", str(threads),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    if api_key:
        env[KEY_ENV] = api_key
    log = tempfile.TemporaryFile()
    # The child's stdin is a pipe that only this process holds: if this process dies, however it
    # dies, the pipe closes and the server exits instead of being left behind.
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        base_url = _wait_ready(process, api_key, log)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdin.close()
        process.stdout.close()
        log.close()


def _wait_ready(process: subprocess.Popen, api_key: str | None, log) -> str:
    """The child prints its address once it listens; then the model list must answer."""
    address: list[str] = []
    reader = threading.Thread(target=lambda: address.append(process.stdout.readline()))
    reader.daemon = True
    reader.start()
    reader.join(READY_S)
    line = address[0] if address else ""
    if not line.strip():
        process.kill()
        process.wait()
        log.seek(0)
        tail = log.read().decode(errors="replace")[-3000:]
        raise RuntimeError(f"llama.cpp's server did not start ({process.returncode}):\n{tail}")
    base_url = json.loads(line)["base_url"]
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/models", headers=headers, timeout=5).status_code == 200:
                return base_url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"llama.cpp's server did not list its model within {READY_S} s")


def serve(n_parallel: int, n_ctx: int, threads: int, port: int = 0) -> None:
    """Run the server in this process until its stdin closes or it is killed: the app's own
    llama.cpp (local) child (core/served/llama_child.py), on the embedded model."""
    from core.models.registry import embedded_gguf_path
    from core.served import llama_child

    llama_child.serve(
        gguf=str(embedded_gguf_path()),
        alias=SERVED_NAME,
        slots=n_parallel,
        ctx_per_slot=n_ctx,
        threads=threads,
        key_env=KEY_ENV,
        port=port,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="llama.cpp's server on the embedded model")
    parser.add_argument("--parallel", type=int, default=1, help="slots decoded together")
    parser.add_argument("--n-ctx", type=int, default=8192, help="context of each slot")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    serve(args.parallel, args.n_ctx, args.threads, args.port)


if __name__ == "__main__":
    main()
