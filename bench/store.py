"""Export speed on a big store: comparison table, per-example and wide tables, and CSV files,
timed side by side in one run on a temporary SQLite store of synthetic experiments.

    python -m bench.store [--experiments 200] [--results 500] [--repeat 3] [--non-ascii 0.05]

Prints each time (the median of --repeat runs, after one untimed warm-up run) and its ratio to
the issue's target (comparison table under 1 s, CSV under 3 s); a ratio above 1.00 misses the
target, and any miss makes it exit 1.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

from core.reporting import export
from storage.db import dispose_all, get_engine, session_scope
from storage.queries import ROUGE_COLUMNS
from storage.schema import ExperimentRecord, ResultRecord, utcnow

TABLE_TARGET_S = 1.0  # the issue: the comparison table loads in under a second
CSV_TARGET_S = 3.0  # the issue: a CSV export takes under three seconds
WORDS = (
    "hello thanks ticket train doctor tomorrow today book meeting price, sure: "
    'yes no "quoted" time shop buy sell call later about the a to of'
).split()
UNICODE_WORDS = "café naïve — 日本 🙂".split()


class Text:
    """Random dialogue-like text; a share of the texts hold a non-ASCII word (slower to load)."""

    def __init__(self, non_ascii: float) -> None:
        self.rng = random.Random(0)
        self.non_ascii = non_ascii

    def words(self, low: int, high: int) -> str:
        return " ".join(self.rng.choices(WORDS, k=self.rng.randint(low, high)))

    def dialogue(self) -> str:  # DialogSum-like: ~1,000 characters, one line per turn
        turns = [
            f"#Person{1 + t % 2}#: {self.words(8, 20)}" for t in range(self.rng.randint(6, 14))
        ]
        return self.maybe_unicode("\n".join(turns))

    def maybe_unicode(self, text: str) -> str:
        if self.rng.random() < self.non_ascii:
            return f"{text} {self.rng.choice(UNICODE_WORDS)}"
        return text


def build_store(url: str, *, experiments: int, results: int, non_ascii: float) -> None:
    """Synthetic experiments with realistic text sizes, bulk-inserted in one transaction."""
    source = Text(non_ascii)
    dialogues = [source.dialogue() for _ in range(results)]
    with session_scope(url) as session:
        session.execute(
            insert(ExperimentRecord), [_experiment(i, results) for i in range(1, 1 + experiments)]
        )
        for experiment_id in range(1, experiments + 1):
            rows = [_result(experiment_id, p, dialogues[p], source) for p in range(results)]
            # Stored as a real run stores them: longest prompt first (generate_batches' order).
            rows.sort(key=lambda row: -len(row["prompt"]))
            session.execute(insert(ResultRecord), rows)
    with get_engine(url).connect() as connection:  # fold the WAL in, so the file size is true
        connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))


def _experiment(experiment_id: int, results: int) -> dict[str, Any]:
    rouge = {name: {"mean": 0.3, "ci_low": 0.25, "ci_high": 0.35} for name in ROUGE_COLUMNS}
    design = {
        "instruction": "Summarize the following conversation.",
        "shots": experiment_id % 4,
        "selection": "first",
        "selection_seed": 0,
        "use_chat_template": True,
    }
    settings = {
        "do_sample": experiment_id % 2 == 0,
        "temperature": 0.7,
        "top_k": 50,
        "top_p": 0.9,
        "max_new_tokens": 128,
        "repetition_penalty": 1.0,
        "num_beams": 1,
        "seed": experiment_id,
        "stop": ["\n\n"],
    }
    return dict(
        id=experiment_id,
        label=f"sweep point {experiment_id}",
        dataset_name="dialogsum",
        split="eval",
        example_keys=[f"d{p:04d}" for p in range(results)],  # as big as a real record's
        spec={"design": design, "settings": settings, "model": {"model_id": "tiny"}},
        design=design,
        settings=settings,
        model_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        status="completed",
        n_examples=results,
        n_done=results,
        aggregates={**rouge, "n": results, "mean_new_tokens": 40.0, "mean_latency_s": 0.8},
        created_at=utcnow(),
        finished_at=utcnow(),
    )


def _result(experiment_id: int, position: int, dialogue: str, source: Text) -> dict[str, Any]:
    return dict(
        experiment_id=experiment_id,
        example_key=f"d{position:04d}",
        position=position,
        prompt=f"Summarize the following conversation.\n\n{dialogue}\n\nSummary:\n",
        output=source.maybe_unicode("- " + source.words(10, 30)),  # neutralised: starts with -
        reference=source.maybe_unicode(source.words(15, 25)),
        **{name: source.rng.random() for name in ROUGE_COLUMNS},
        prompt_tokens=300,
        new_tokens=40,
        finish_reason="eos",
        latency_s=0.8,
        shots=["p001", "p002"] if experiment_id % 2 else [],
        dropped_shots=[],
        batch_size=8,
        batch_index=position % 8,
        created_at=utcnow(),
    )


def measure(step: Callable[[], Any], repeat: int) -> float:
    step()  # warm-up: the file cache, SQLAlchemy's compiled statements, pandas' imports
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def report(name: str, seconds: float, target: float) -> bool:
    verdict = "ok" if seconds <= target else "MISSED"
    print(
        f"  {name:<44s} {seconds:7.3f} s   target {target:.0f} s   "
        f"ratio {seconds / target:5.2f}  {verdict}"
    )
    return seconds <= target


def run(url: str, folder: Path, experiments: int, repeat: int) -> bool:
    """Every measurement against its target; False if any missed."""
    newest_first = list(range(experiments, 0, -1))

    def load(table: Callable[..., Any], ids: list[int] | None = None) -> Callable[[], Any]:
        def step() -> Any:
            with session_scope(url) as session:
                if ids is None:
                    return table(session=session)
                return table(session=session, experiment_ids=ids)

        return step

    summary = load(export.summary_table)
    print(f"median of {repeat} runs each:")
    ok = report("comparison table (summary_table, all)", measure(summary, repeat), TABLE_TARGET_S)
    two = load(export.per_example_table, newest_first[:2])
    ok &= report("per-example table, 2 experiments", measure(two, repeat), TABLE_TARGET_S)
    five = load(export.wide_table, newest_first[:5])
    ok &= report("wide table, 5 experiments", measure(five, repeat), TABLE_TARGET_S)
    write_summary = lambda: export.write_csv(summary(), folder / "summary.csv")  # noqa: E731
    ok &= report(
        "CSV: comparison table (load + write)", measure(write_summary, repeat), CSV_TARGET_S
    )
    every = load(export.per_example_table, newest_first)
    loading = measure(every, repeat)
    frame = every()
    writing = measure(lambda: export.write_csv(frame, folder / "all.csv"), repeat)
    size = (folder / "all.csv").stat().st_size / 2**20
    print(
        f"  per-example, all {len(frame):,} rows: load {loading:.3f} s + write {writing:.3f} s "
        f"({size:.0f} MiB of CSV)"
    )
    return ok & report(
        f"CSV: per-example, all {experiments} experiments", loading + writing, CSV_TARGET_S
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=200)
    parser.add_argument("--results", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--non-ascii",
        type=float,
        default=0.05,
        help="share of texts with a non-ASCII word (1.0: all)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.sqlite"
        url = f"sqlite:///{path}"
        started = time.perf_counter()
        build_store(
            url, experiments=args.experiments, results=args.results, non_ascii=args.non_ascii
        )
        print(
            f"store: {args.experiments} experiments x {args.results} results = "
            f"{args.experiments * args.results:,} results ({args.non_ascii:.0%} of texts "
            f"non-ASCII), {path.stat().st_size / 2**20:.0f} MiB, "
            f"built in {time.perf_counter() - started:.1f} s"
        )
        ok = run(url, Path(folder), args.experiments, args.repeat)
        dispose_all()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
