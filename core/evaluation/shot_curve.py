"""Score against the number of shots: the mean and its bootstrap interval at each K, and the
smallest K after which more shots no longer help reliably."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.errors import PromptLabError
from core.evaluation.scoring import mean_bootstrap_ci
from core.evaluation.stats import (
    ALPHA,
    PairedComparison,
    Scores,
    adjust_holm,
    compare_pair,
    paired_scores,
)
from core.evaluation.wording import format_interval, format_p, format_score, metric_label


@dataclass(frozen=True)
class ShotPoint:
    """The mean score at one shot count, with its bootstrap confidence interval."""

    shots: int
    mean: float
    ci_low: float
    ci_high: float
    n: int


@dataclass(frozen=True)
class ShotCurve:
    """Score against K, and the smallest K that no larger K beats reliably."""

    metric: str
    points: tuple[ShotPoint, ...]  # by shots, ascending
    smallest_sufficient_k: int
    comparisons: tuple[PairedComparison, ...]  # that K against each larger K, Holm-adjusted
    explanation: str
    confidence: float
    resamples: int
    seed: int


def shot_curve(
    scores_by_shots: Mapping[int, Scores] | Iterable[tuple[int, Scores]],
    *,
    metric: str = "rougeL",
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
    alpha: float = ALPHA,
    higher_is_better: bool | None = True,
    pass_fail: bool = False,
) -> ShotCurve:
    """The curve from per-example scores at each K, aligned across K (same examples, same order).

    Going up from the smallest K, K is sufficient when no larger K is reliably better than it
    (paired tests of K against every larger K, Holm-adjusted over those); the largest K always is.
    """
    by_k = _aligned(scores_by_shots)
    resampling = dict(confidence=confidence, resamples=resamples, seed=seed)
    points = []
    for k, values in by_k.items():
        aggregate = mean_bootstrap_ci(values, **resampling)
        points.append(
            ShotPoint(k, aggregate.mean, aggregate.ci_low, aggregate.ci_high, values.size)
        )
    direction = dict(higher_is_better=higher_is_better, pass_fail=pass_fail)
    k, family, not_enough = _smallest_sufficient(
        by_k, metric=metric, alpha=alpha, **resampling, **direction
    )
    return ShotCurve(
        metric=metric,
        points=tuple(points),
        smallest_sufficient_k=k,
        comparisons=tuple(family),
        explanation=_explain(k, max(by_k), family, not_enough, metric),
        **resampling,
    )


def _smallest_sufficient(
    by_k: dict[int, np.ndarray], *, alpha: float, **settings
) -> tuple[int, list[PairedComparison], PairedComparison | None]:
    """The first K that no larger K beats reliably, its comparisons, and why the K before failed."""
    ks = list(by_k)
    beaten_before: list[PairedComparison] = []
    for i, k in enumerate(ks):
        family = adjust_holm(
            [
                compare_pair(
                    by_k[k], by_k[m], name_a=shots(k), name_b=shots(m), alpha=alpha, **settings
                )
                for m in ks[i + 1 :]
            ]
        )
        beaten = [c for c in family if c.better == c.name_b]
        if not beaten:
            return k, family, _reason(beaten_before, k)
        beaten_before = beaten
    raise AssertionError("unreachable: the largest K has no larger K to beat it")


def _reason(beaten: list[PairedComparison], k: int) -> PairedComparison | None:
    """The K before against K itself when that is reliable (the plainest reason), else the largest
    reliable gain of that K."""
    if not beaten:
        return None
    against_k = [c for c in beaten if c.name_b == shots(k)]
    return against_k[0] if against_k else max(beaten, key=lambda c: abs(c.diff))


def shots(k: int) -> str:
    """'1 shot', '3 shots'."""
    return f"{k} shot" if k == 1 else f"{k} shots"


def _aligned(
    scores_by_shots: Mapping[int, Scores] | Iterable[tuple[int, Scores]],
) -> dict[int, np.ndarray]:
    """{K: scores} by K ascending, refused unless K are distinct, two or more, and aligned."""
    items = list(
        scores_by_shots.items() if isinstance(scores_by_shots, Mapping) else scores_by_shots
    )
    ks = [int(k) for k, _ in items]
    if len(set(ks)) != len(ks):
        raise PromptLabError(f"Each shot count may appear once; got {sorted(ks)}.")
    if len(ks) < 2:
        raise PromptLabError("A shot-count curve needs at least two different numbers of shots.")
    if min(ks) < 0:
        raise PromptLabError(f"Shot counts cannot be negative; got {min(ks)}.")
    ordered = sorted(zip(ks, (scores for _, scores in items), strict=True), key=lambda kv: kv[0])
    first_k, first = ordered[0]
    by_k = {}
    for k, scores in ordered:
        _, by_k[k] = paired_scores(first, scores, name_a=shots(first_k), name_b=shots(k))
    return by_k


def _explain(
    k: int,
    largest: int,
    family: Sequence[PairedComparison],
    not_enough: PairedComparison | None,
    metric: str,
) -> str:
    """One or two sentences: why K is the smallest sufficient, and why fewer shots were not."""
    label = metric_label(metric)
    reason = _brief(not_enough) if not_enough else ""
    if k == largest:
        return (
            f"Every smaller shot count is reliably beaten by a larger one on {label} (last: "
            f"{reason}), so {shots(k)}, the most tried, is the best found; more might help further."
        )
    details = "; ".join(_brief(c) for c in family)
    if len(family) > 1:
        details += f" (p Holm-adjusted over these {len(family)} comparisons)"
    text = f"More than {shots(k)} does not help reliably on {label}: {details}."
    if not_enough:
        text += f" Fewer shots are reliably worse: {reason}."
    return text


def _brief(c: PairedComparison) -> str:
    """'3 shots vs 1 shot: +0.004 [−0.010, 0.020], p = 0.60'."""
    return (
        f"{c.name_b} vs {c.name_a}: {format_score(c.diff, True)} "
        f"{format_interval(c.ci_low, c.ci_high)}, {format_p(c.p)}"
    )
