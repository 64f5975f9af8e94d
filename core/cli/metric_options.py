"""The shape of `python -m core metrics`, `rescore` and `score`, and `run`'s scoring options
(what each does is in core/cli/metrics.py)."""

from __future__ import annotations

from collections.abc import Callable

METRICS_HELP = "comma-separated: rouge, bleu, chrf, similarity, bertscore, length, custom:NAME"
CHECK_HELP = (
    "a pass/fail check NAME=KIND:VALUE (repeatable), KIND one of equals, contains, starts_with, "
    "regex, max_words, json, or 'not KIND', e.g. short=max_words:40"
)


def add_scoring_options(add: Callable) -> None:
    """`run`'s --metrics and --check."""
    add(
        "--metrics",
        default="rouge",
        help=f"what scores the outputs (default rouge); {METRICS_HELP}",
    )
    add("--check", action="append", metavar="NAME=KIND:VALUE", help=CHECK_HELP)


def add_metric_commands(commands, common, command: Callable) -> None:
    """Register `metrics`, `rescore` and `score`; `command` is core.cli's helper that adds one."""
    listing = command(commands, common, "metrics", "metrics.metrics_list", "the metrics there are")
    listing.set_defaults(needs_db=False)
    rescore = command(
        commands,
        common,
        "rescore",
        "metrics.rescore",
        "score stored experiments again with other metrics or checks, without generating",
    )
    rescore.add_argument("ids", type=int, nargs="+", metavar="ID")
    rescore.add_argument("--metrics", default="", help=METRICS_HELP)
    rescore.add_argument("--check", action="append", metavar="NAME=KIND:VALUE", help=CHECK_HELP)
    score = command(
        commands, common, "score", "metrics.score_text", "score predictions vs references"
    )
    score.set_defaults(needs_db=False)
    score.add_argument("--predictions", required=True, metavar="FILE", help="one text per line")
    score.add_argument("--references", required=True, metavar="FILE", help="one text per line")
    score.add_argument("--metric", default="rouge", help=f"default rouge; {METRICS_HELP}")
    score.add_argument("--check", action="append", metavar="NAME=KIND:VALUE", help=CHECK_HELP)
    score.add_argument("--stem", action="store_true", help="ROUGE with the Porter stemmer")
