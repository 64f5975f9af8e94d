"""The served backend at concurrency 1, 4 and 8 against the local backend, side by side in one
run: 64 dialogues, greedy, through llama-cpp-python's server serving the embedded SmolLM2 GGUF
on a loopback port, and through transformers in this process.

    python -m bench.served [--examples 64] [--max-new-tokens 64] [--concurrency 1,4,8]

Prints examples/s and new tokens/s for each, their ratio to the local backend, and how many
greedy outputs are identical to the local ones. Needs `make llama-server` (make bench runs it).

llama-cpp-python's server answers one request at a time, so concurrency cannot pay there. A
second table shows what it does against a server with room for many requests: a loopback server
that answers each request after a fixed delay (--delay), as a busy remote GPU server would.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace

from core import experiments, models
from core.experiments import RunSpec
from core.generation import default_batch_size
from core.prompts import PRESETS
from core.served import Endpoint
from core.settings import GenerationSettings
from devtools.llama_server import SERVED_NAME, llama_server
from devtools.served_stub import StubServer
from storage import queries
from storage.db import session_scope


def timed_run(spec: RunSpec, db: str) -> tuple[float, list]:
    started = time.perf_counter()
    experiment_id = experiments.run(spec, db_url=db)
    seconds = time.perf_counter() - started
    with session_scope(db) as session:
        record = queries.get_experiment(session=session, experiment_id=experiment_id)
        assert record.status == "completed", record.error
        return seconds, queries.results_of(session=session, experiment_id=experiment_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--concurrency", default="1,4,8")
    parser.add_argument("--delay", type=float, default=0.25, help="seconds, for the second table")
    parser.add_argument("--delay-only", action="store_true", help="only the second table")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    spec = RunSpec(
        design=PRESETS["instruction"],
        settings=GenerationSettings(max_new_tokens=args.max_new_tokens),
        split=None,  # the pool and the evaluation dialogues: 64 in all
        limit=args.examples,
    )
    db = f"sqlite:///{tempfile.mkdtemp(prefix='bench-served-')}/bench.sqlite"
    models.prompt_tokenizer(spec.model)
    if not args.delay_only:
        engines(spec, levels, db, args.max_new_tokens)
    delayed(spec, levels, db, args.delay)


def delayed(spec: RunSpec, levels: list[int], db: str, delay: float) -> None:
    answer = ("sleep", delay, ("ok", "A person asks another about a ticket."))
    rows = []
    with StubServer(default=answer) as server:
        timed_run(replace(spec, limit=2, endpoint=Endpoint(server.base_url, "stub")), db)  # warm
        server.max_in_flight = 0
        for level in levels:
            endpoint = Endpoint(server.base_url, "stub", concurrency=level)
            seconds, results = timed_run(replace(spec, endpoint=endpoint), db)
            rows.append((level, seconds, len(results), server.max_in_flight))
            server.max_in_flight = 0
    print(f"\n{rows[0][2]} requests to a loopback server answering each after {delay} s")
    print(f"{'concurrency':<14}{'seconds':>9}{'examples/s':>12}{'vs C=1':>9}{'most in flight':>16}")
    base = rows[0][2] / rows[0][1]
    for level, seconds, n, most in rows:
        print(
            f"{level:<14}{seconds:9.1f}{n / seconds:12.2f}{(n / seconds) / base:8.2f}x{most:>16d}"
        )


def engines(spec: RunSpec, levels: list[int], db: str, max_new_tokens: int) -> None:
    models.get_model(spec.model)  # loading is not what is measured
    rows = []
    with llama_server() as base_url:
        served = Endpoint(base_url, SERVED_NAME, server="llama.cpp")
        timed_run(replace(spec, limit=2, endpoint=served), db)  # warm the server up
        for level in levels:
            seconds, results = timed_run(
                replace(spec, endpoint=replace(served, concurrency=level)), db
            )
            rows.append((f"served, concurrency {level}", seconds, results))
    seconds, local = timed_run(spec, db)
    batch = default_batch_size(models.current_model())
    rows.append((f"local, batch {batch}", seconds, local))

    n = len(local)
    local_rate = n / seconds
    print(f"\n{n} dialogues, greedy, max_new_tokens {max_new_tokens}, SmolLM2-135M")
    print(f"{'backend':<24}{'seconds':>9}{'examples/s':>12}{'new tok/s':>11}{'vs local':>10}"
          f"{'same as local':>15}")  # fmt: skip
    for name, secs, results in rows:
        tokens = sum(r.new_tokens for r in results)
        same = sum(r.output == loc.output for r, loc in zip(results, local, strict=True))
        print(
            f"{name:<24}{secs:9.1f}{n / secs:12.2f}{tokens / secs:11.1f}"
            f"{(n / secs) / local_rate:9.2f}x{same:>10d} / {n}"
        )


if __name__ == "__main__":
    main()
