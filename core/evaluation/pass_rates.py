"""Pass/fail scores (checks): a pass rate's Wilson score interval, and McNemar's exact test for
two experiments' passes on the same examples."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from core.errors import PromptLabError


@dataclass(frozen=True)
class PassRate:
    """How many of n examples passed, the rate and its Wilson score interval."""

    passed: int
    n: int
    rate: float
    ci_low: float
    ci_high: float


def wilson_interval(passed: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for `passed` successes in `n` trials; it stays inside [0, 1]
    and, unlike the normal approximation, keeps a width at 0 and at n passes.

    >>> [round(x, 4) for x in wilson_interval(8, 10)]
    [0.4902, 0.9433]
    """
    if n < 1 or not 0 <= passed <= n:
        raise PromptLabError(f"A pass rate needs 0 ≤ passed ≤ n and n ≥ 1; got {passed} of {n}.")
    z = float(scipy_stats.norm.ppf(1 - (1 - confidence) / 2))
    p = passed / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def pass_rate(values: Sequence[float], *, confidence: float = 0.95) -> PassRate:
    """The pass rate of 1.0/0.0 values (a check's per-example results) with its interval."""
    data = _binary(values)
    passed = int(data.sum())
    low, high = wilson_interval(passed, data.size, confidence=confidence)
    return PassRate(passed, int(data.size), passed / data.size, low, high)


def mcnemar_exact(a: Sequence[float], b: Sequence[float]) -> float:
    """McNemar's exact two-sided p-value for paired pass/fail results: the binomial test of the
    examples only A passes against those only B passes (1.0 when there are none).

    >>> round(mcnemar_exact([1, 1, 1, 1, 0, 1], [0, 0, 0, 0, 0, 1]), 4)
    0.125
    """
    x, y = _binary(a), _binary(b)
    if x.size != y.size:
        raise PromptLabError(f"Paired results need the same examples; got {x.size} and {y.size}.")
    only_a = int(np.count_nonzero((x == 1) & (y == 0)))
    only_b = int(np.count_nonzero((x == 0) & (y == 1)))
    if only_a + only_b == 0:
        return 1.0
    return float(scipy_stats.binomtest(only_b, only_a + only_b, 0.5).pvalue)


def _binary(values: Sequence[float]) -> np.ndarray:
    data = np.asarray(values, dtype=float)
    if data.ndim != 1 or data.size == 0:
        raise PromptLabError("Need at least one pass/fail result, as a flat list.")
    if not np.all((data == 0) | (data == 1)):
        raise PromptLabError("Pass/fail results must be 1 (pass) or 0 (fail).")
    return data
