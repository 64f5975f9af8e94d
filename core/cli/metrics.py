"""What `python -m core metrics`, `rescore` and `score` do: the metrics there are, scoring a
stored experiment again without generating, and scoring two text files; and the scoring fields
`run`'s options give (their shape is in core/cli/metric_options.py)."""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path
from typing import Any

from core.errors import PromptLabError
from core.evaluation import custom_metrics, metric_set
from core.evaluation.checks import Check, checks_from, parse_check
from core.evaluation.compare import summarise
from core.evaluation.scoring import RougeOptions
from core.runs import rescoring

EXIT_OK = 0


def scoring_of(args: Namespace) -> dict[str, Any]:
    """The RunSpec fields that `run`'s scoring options give."""
    return {
        "metrics": metric_set.parse_metrics(args.metrics),
        "checks": checks_of(args),
    }


def checks_of(args: Namespace) -> tuple[Check, ...]:
    return checks_from([parse_check(text).to_dict() for text in args.check or ()])


def metrics_list(args: Namespace) -> int:
    """Each metric by name, what it scores with, and the score keys it stores."""
    for metric in metric_set.available().values():
        print(f"{metric.name:<22} {metric.summary}")
        print(f"{'':<22} scores: {', '.join(metric.keys)}")
    for problem in custom_metrics.problems():
        print(f"refused: {problem}")
    return EXIT_OK


def rescore(args: Namespace) -> int:
    """Score each experiment again; all are checked before any is scored."""
    metrics = metric_set.parse_metrics(args.metrics) if args.metrics else ()
    checks = checks_of(args)
    for experiment_id in args.ids:
        done = rescoring.rescore(experiment_id, metrics, checks, db_url=args.db_url)
        print(
            f"experiment {experiment_id}: {len(done.keys)} score(s) over {done.n} outputs: "
            f"{', '.join(done.keys)}"
        )
    return EXIT_OK


def score_text(args: Namespace) -> int:
    """Two plain-text files, line i of one against line i of the other: each score key's mean
    and 95% CI (and corpus-level BLEU/chrF) as JSON."""
    predictions, references = _lines(args.predictions), _lines(args.references)
    if len(predictions) != len(references):
        raise PromptLabError(
            f"Got {len(predictions)} predictions but {len(references)} references; give one "
            "reference (a line) per prediction."
        )
    if not predictions:
        raise PromptLabError("Nothing to score: predictions and references are both empty.")
    metrics = metric_set.parse_metrics(args.metric)
    scores = metric_set.score_outputs(
        metrics,
        predictions,
        references,
        checks=checks_of(args),
        rouge=RougeOptions(use_stemmer=args.stem),
    )
    summary: dict[str, Any] = {"n": len(predictions), "use_stemmer": args.stem}
    for key, values in scores.items():
        present = [v for v in values if v is not None]
        summary[key] = summarise(key, present) if present else None
    for key, value in metric_set.corpus_scores(metrics, predictions, references).items():
        summary[key]["corpus"] = value
    summary |= {"confidence": 0.95, "resamples": 1000, "seed": 0}
    print(json.dumps(summary, indent=2))
    return EXIT_OK


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise PromptLabError(f"Cannot read '{path}': {exc.strerror or exc}.") from exc
    except UnicodeDecodeError as exc:
        raise PromptLabError(f"'{path}' is not UTF-8 text (byte {exc.start}).") from exc
