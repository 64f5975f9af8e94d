"""The served backend at concurrency 1, 4 and 8 against the local backend, side by side in one
run: 64 dialogues, greedy, through llama.cpp's own server (xllamacpp, devtools/llama_server.py)
serving the embedded SmolLM2 GGUF on a loopback port with 8 slots and continuous batching, and
through transformers in this process (batch 16).

    python -m bench.served [--examples 64] [--max-new-tokens 64] [--concurrency 1,4,8]
                           [--rounds 2] [--target 1.5]

Each side is warmed up first; the sides run in one order in even rounds and in the reverse
order in odd ones, and each row is the fastest of its rounds. Prints seconds, examples/s, new
tokens/s, the ratio to the local backend and how many greedy outputs equal the local ones.
Exits 1 when the served backend at the highest concurrency is not --target times as fast (in
new tokens/s) as the local backend.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace

from core.generation.local import default_batch_size
from core.generation.settings import GenerationSettings
from core.models import registry as models
from core.prompting.design import PRESETS
from core.runs import experiments
from core.runs.experiments import RunSpec
from core.served.endpoint import Endpoint
from devtools.llama_server import SERVED_NAME, llama_server
from storage import queries
from storage.db import session_scope

SLOTS = 8  # the server decodes up to this many requests together


def timed_run(spec: RunSpec, db: str) -> tuple[float, list]:
    started = time.perf_counter()
    experiment_id = experiments.run(spec, db_url=db)
    seconds = time.perf_counter() - started
    with session_scope(db) as session:
        record = queries.get_experiment(session=session, experiment_id=experiment_id)
        assert record.status == "completed", record.error
        return seconds, queries.results_of(session=session, experiment_id=experiment_id)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--concurrency", default="1,4,8")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="the server's (see its helper)")
    parser.add_argument("--target", type=float, default=1.5, help="served/local new tok/s")
    args = parser.parse_args()
    spec = RunSpec(
        design=PRESETS["instruction"],
        settings=GenerationSettings(max_new_tokens=args.max_new_tokens),
        split=None,  # the pool and the evaluation dialogues: 64 in all
        limit=args.examples,
    )
    db = f"sqlite:///{tempfile.mkdtemp(prefix='bench-served-')}/bench.sqlite"
    models.get_model(spec.model)  # loading is not what is measured
    with llama_server(n_parallel=SLOTS, n_ctx=2048, threads=args.threads) as base_url:
        served = Endpoint(base_url, SERVED_NAME, server="llama.cpp")
        sides = {f"served, concurrency {c}": replace(spec, endpoint=replace(served, concurrency=c))
                 for c in (int(c) for c in args.concurrency.split(","))}  # fmt: skip
        sides[f"local, batch {default_batch_size(models.current_model())}"] = spec
        for side in sides.values():  # warm-up: caches, threads and the server's slots
            timed_run(replace(side, limit=2), db)
        rows = measure(sides, db, args.rounds)
    print(
        f"\n{args.examples} dialogues, greedy, max_new_tokens {args.max_new_tokens}, SmolLM2-135M; "
        f"server: {SLOTS} slots, {args.threads} thread(s); {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}; fastest of {args.rounds} round(s)"
    )
    return report(rows, args.target)


def measure(sides: dict[str, RunSpec], db: str, rounds: int) -> dict[str, tuple[float, list]]:
    """The fastest run of each side over the rounds, the order reversed every other round."""
    best: dict[str, tuple[float, list]] = {}
    names = list(sides)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            seconds, results = timed_run(sides[name], db)
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, results)
    return {name: best[name] for name in names}


def report(rows: dict[str, tuple[float, list]], target: float) -> int:
    local_name = next(name for name in rows if name.startswith("local"))
    local_seconds, local = rows[local_name]
    local_rate = sum(r.new_tokens for r in local) / local_seconds
    n = len(local)
    print(f"{'backend':<24}{'seconds':>9}{'examples/s':>12}{'new tok/s':>11}{'vs local':>10}"
          f"{'same as local':>15}")  # fmt: skip
    rates = {}
    for name, (seconds, results) in rows.items():
        rates[name] = sum(r.new_tokens for r in results) / seconds
        same = sum(r.output == loc.output for r, loc in zip(results, local, strict=True))
        print(
            f"{name:<24}{seconds:9.1f}{n / seconds:12.2f}{rates[name]:11.1f}"
            f"{rates[name] / local_rate:9.2f}x{same:>10d} / {n}"
        )
    last = [name for name in rows if name != local_name][-1]
    ratio = rates[last] / local_rate
    verdict = "ok" if ratio >= target else "MISSED"
    print(f"target: {last} at least {target:.2f}x local in new tok/s: {ratio:.2f}x  {verdict}")
    return 0 if ratio >= target else 1


if __name__ == "__main__":
    sys.exit(main())
