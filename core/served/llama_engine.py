"""llama.cpp (local): llama.cpp's own server from the prebuilt xllamacpp wheel, which Prompt Lab
starts for a GGUF model in a process of its own, on a loopback port with a random key; runs
then go to it as to a served endpoint. One engine at a time: another model or slot count
stops it, and so do unloading and the app's exit (the child also exits when this process dies).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

from core.errors import PromptLabError
from core.served.endpoint import Endpoint

# The key lives in this process's environment under a name the key policy accepts, so that the
# endpoint reads it as it reads any key; the child gets it through its own environment.
KEY_ENV = "PROMPT_LAB_KEY_LLAMA_CPP_LOCAL"
SERVED_NAME = "local-gguf"  # the model's name on the server
READY_S = 180  # only guards against a hang: the embedded model loads in about 2 s
MAX_SLOTS = 8  # 4, 8 and 16 slots made 53.3, 53.0, 56.6 tok/s on 2 cores (48 dialogues)
PROJECT = Path(__file__).resolve().parents[2]
NAME = "llama.cpp (local)"
# What the engine accepts, for checking settings before one is started: it is llama.cpp's
# server on the completions API, whatever its address turns out to be.
EXAMPLE_ENDPOINT = Endpoint(base_url="http://127.0.0.1/v1", model=SERVED_NAME, server="llama.cpp")


@dataclass(frozen=True)
class EngineConfig:
    """What the engine runs: the GGUF file, its slots (requests decoded together), each slot's
    context, and threads. Greedy text depends on the slot count: one slot reproduces exactly."""

    gguf: Path
    slots: int
    ctx_per_slot: int
    threads: int


def config_for(
    gguf: Path,
    *,
    slots: int | None = None,
    ctx_per_slot: int | None = None,
    threads: int | None = None,
    context_window: int | None = None,
) -> EngineConfig:
    """The engine for the GGUF file `gguf`, with slots, context and threads chosen from this machine
    unless given: 4 slots a core (at most 8), the model's own context (at most 8192) a slot,
    a thread a core (16 built-in dialogues on 2 cores, 8 slots: 55.7 tok/s with 2 threads,
    31.5 with 1; rendering and scoring between answers cost little beside it)."""
    cores = os.cpu_count() or 1
    config = EngineConfig(
        gguf=gguf,
        slots=slots if slots is not None else min(MAX_SLOTS, 4 * cores),
        ctx_per_slot=ctx_per_slot or min(context_window or 4096, 8192),
        threads=threads or cores,
    )
    for name, value, high in (("slots", config.slots, 64), ("threads", config.threads, 256)):
        if not 1 <= value <= high:
            raise PromptLabError(f"{name} must be a whole number from 1 to {high}; got {value}.")
    if not 256 <= config.ctx_per_slot <= 131_072:
        raise PromptLabError(
            f"The context of a slot must be 256 to 131072 tokens; got {config.ctx_per_slot}."
        )
    return config


class Engine:
    """A running server for one EngineConfig."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._log = tempfile.TemporaryFile()
        self._key = secrets.token_urlsafe(24)
        env = {k: v for k, v in os.environ.items() if k != KEY_ENV} | {KEY_ENV: self._key}
        # The child's stdin is a pipe only this process holds: however this process ends, the
        # pipe closes and the server exits instead of being left behind.
        self._process = subprocess.Popen(
            [sys.executable, "-m", "core.served.llama_child", json.dumps(_child_args(config))],
            cwd=PROJECT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        try:
            self.base_url = self._wait_ready()
        except BaseException:
            self.stop()
            raise
        os.environ[KEY_ENV] = self._key

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def endpoint(self, concurrency: int | None = None) -> Endpoint:
        """The engine as a served endpoint: as many requests in flight as it has slots."""
        return Endpoint(
            base_url=self.base_url,
            model=SERVED_NAME,
            api="completions",
            server="llama.cpp",
            api_key_env=KEY_ENV,
            concurrency=concurrency or self.config.slots,
            timeout_s=600.0,  # a long answer on a busy CPU; nothing else waits on the server
            max_retries=1,
        )

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for stream in (self._process.stdin, self._process.stdout, self._log):
            if stream and not stream.closed:
                stream.close()

    def _wait_ready(self) -> str:
        """The child prints its address once it listens; then its model list must answer."""
        import httpx

        line = _read_line(self._process, READY_S)
        if not line.strip():
            raise PromptLabError(
                f"llama.cpp (local) did not start for {self.config.gguf.name}: {self._tail()}"
            )
        base_url = json.loads(line)["base_url"]
        headers = {"Authorization": f"Bearer {self._key}"}
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline and self.alive:
            try:
                if httpx.get(f"{base_url}/models", headers=headers, timeout=5).status_code == 200:
                    return base_url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise PromptLabError(f"llama.cpp (local) did not answer within {READY_S} s.")

    def _tail(self) -> str:
        """The last line the server wrote (the reason it stopped), without paths beyond names."""
        self._process.poll()
        self._log.seek(0)
        lines = [ln for ln in self._log.read().decode(errors="replace").splitlines() if ln.strip()]
        return (lines[-1][-300:] if lines else "it wrote nothing") + "."


def _child_args(config: EngineConfig) -> dict:
    return {
        "gguf": str(config.gguf),
        "alias": SERVED_NAME,
        "slots": config.slots,
        "ctx_per_slot": config.ctx_per_slot,
        "threads": config.threads,
        "key_env": KEY_ENV,
    }


def _read_line(process: subprocess.Popen, timeout_s: float) -> str:
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    return got[0] if got else ""


# The one engine of this process -----------------------------------------------------------------

_engine: Engine | None = None
_holders = 0  # runs using the engine now: it is neither replaced nor stopped under them
_lock = threading.RLock()  # hold() takes it, then acquire() again


def acquire(config: EngineConfig) -> Engine:
    """The running engine for `config`: the one already running if it is that, else a new one
    (stopping another first, so that two never hold memory at once)."""
    global _engine
    with _lock:
        if _engine is not None and (_engine.config != config or not _engine.alive):
            _refuse_while_held("start another")
            _engine.stop()
            _engine = None
        if _engine is None:
            _engine = Engine(config)
        return _engine


@contextmanager
def hold(config: EngineConfig) -> Iterator[Engine]:
    """The engine for `config`, kept running until the block ends."""
    global _holders
    with _lock:
        engine = acquire(config)
        _holders += 1
    try:
        yield engine
    finally:
        with _lock:
            _holders -= 1


def _refuse_while_held(what: str) -> None:
    if _holders:
        raise PromptLabError(
            f"A run is generating on llama.cpp (local): cannot {what} until it ends (or stop it)."
        )


def running() -> Engine | None:
    with _lock:
        return _engine if _engine is not None and _engine.alive else None


def stop(*, force: bool = False) -> None:
    """Stop the engine, if one runs (the model unloaded, the app ending); refused while a run
    uses it, unless `force`."""
    global _engine
    with _lock:
        if _engine is not None:
            if not force:
                _refuse_while_held("stop it")
            _engine.stop()
            _engine = None


atexit.register(stop, force=True)


@cache
def _digest(path: str, size: int, mtime_ns: int) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def gguf_sha256(path: Path) -> str:
    """The GGUF file's SHA-256, computed once per file version in this process."""
    stat = path.stat()
    return _digest(str(path), stat.st_size, stat.st_mtime_ns)


def engine_version() -> str:
    try:
        return metadata.version("xllamacpp")
    except metadata.PackageNotFoundError:
        return "unknown"
