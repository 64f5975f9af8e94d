"""Honest comparisons of experiments scored on the same examples: the mean difference with a paired
bootstrap interval, a paired permutation test (and a sign test), and Holm's correction over several.
"""

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import combinations
from typing import Final

import numpy as np

from core.errors import PromptLabError
from core.evaluation.pass_rates import mcnemar_exact
from core.evaluation.wording import (
    format_confidence,
    format_interval,
    format_p,
    format_score,
    metric_label,
)

ALPHA: Final = 0.05  # the usual threshold; the verdict names the interval's confidence beside it
EXACT_MAX_N: Final = 16  # 2**16 sign patterns take milliseconds; 2**20 is still fine on request
_EXACT_LIMIT: Final = 20  # 2**20 patterns × n cells; beyond this memory grows too fast
_BLOCK_CELLS: Final = 1 << 20  # draw resamples in blocks of about a million cells to bound memory
Scores = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class PairedComparison:
    """B against A on the same examples: mean of b − a per example, its CI, and a p-value.

    Reliable means both that the CI excludes 0 and that p (Holm-adjusted when set) < alpha; the
    CI is not adjusted for multiplicity, so with several comparisons the p-value is the stricter.
    """

    metric: str
    name_a: str
    name_b: str
    n: int
    n_tied: int  # examples on which A and B score exactly the same
    mean_a: float
    mean_b: float
    diff: float  # mean_b − mean_a
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float
    test: str  # e.g. "paired permutation, two-sided, exact over all 2^12 sign patterns"
    resamples: int  # bootstrap resamples (and random sign flips when the test is not exact)
    seed: int
    alpha: float = ALPHA
    p_adjusted: float | None = None  # set by adjust_holm
    comparisons: int = 1  # how many comparisons the adjustment was over
    higher_is_better: bool | None = True  # None: neither direction is better (answer length)

    @property
    def p(self) -> float:
        """The p-value that decides: Holm-adjusted when it has been, else the raw one."""
        return self.p_value if self.p_adjusted is None else self.p_adjusted

    @property
    def reliable(self) -> bool:
        """True when the CI excludes 0 and p < alpha; a disagreement at the edge counts as not."""
        return (self.ci_low > 0 or self.ci_high < 0) and self.p < self.alpha

    @property
    def better(self) -> str | None:
        """The name of the reliably better variant, or None (also for a metric, such as answer
        length, where neither direction is better)."""
        if not self.reliable or self.higher_is_better is None:
            return None
        return self.name_b if (self.diff > 0) == self.higher_is_better else self.name_a

    @property
    def higher(self) -> str | None:
        """The name of the variant that scores reliably higher, or None."""
        if not self.reliable:
            return None
        return self.name_b if self.diff > 0 else self.name_a

    def verdict(self) -> str:
        """The result as one plain sentence."""
        metric = metric_label(self.metric)
        if self.n_tied == self.n:
            return (
                f"No difference on {metric} between {self.name_a} and {self.name_b}: they score "
                f"the same on every one of the {self.n} examples."
            )
        if self.reliable:
            winner, loser, sign = (
                (self.name_b, self.name_a, 1) if self.diff > 0 else (self.name_a, self.name_b, -1)
            )
            if self.higher_is_better is False:  # the lower score wins, and is named first
                winner, loser = loser, winner
            low, high = sorted((sign * self.ci_low, sign * self.ci_high))
            how = {True: "better than", False: "better (lower) than", None: "higher than"}
            return (
                f"{winner} is {how[self.higher_is_better]} {loser} on {metric} by "
                f"{format_score(abs(self.diff))}, "
                f"{format_confidence(self.confidence)} CI {format_interval(low, high)}, "
                f"{self._p_text()}."
            )
        return (
            f"No reliable difference on {metric} between {self.name_a} and {self.name_b} on "
            f"{self.n} examples ({self.name_b} − {self.name_a} = {format_score(self.diff, True)}, "
            f"{format_confidence(self.confidence)} CI {format_interval(self.ci_low, self.ci_high)}"
            f", {self._p_text(inside_brackets=True)}{self._edge_note()})."
        )

    def _edge_note(self) -> str:
        """Why a result that looks reliable by one of the two criteria is not called reliable."""
        if self.ci_low > 0 or self.ci_high < 0:
            if self.p_value < self.alpha:
                return f"; p < {self.alpha:g} before adjusting for {self.comparisons} comparisons"
            return f"; the interval excludes 0 but the test does not reach p < {self.alpha:g}"
        if self.p < self.alpha:
            return f"; the test reaches p < {self.alpha:g} but the interval includes 0"
        return ""

    def _p_text(self, *, inside_brackets: bool = False) -> str:
        text = format_p(self.p)
        if self.p_adjusted is not None and self.comparisons > 1:
            note = f"Holm-adjusted over {self.comparisons} comparisons"
            text += f", {note}" if inside_brackets else f" ({note})"
        return text


def compare_pair(
    a_scores: Scores,
    b_scores: Scores,
    *,
    metric: str = "rougeL",
    name_a: str = "A",
    name_b: str = "B",
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
    alpha: float = ALPHA,
    higher_is_better: bool | None = True,
    pass_fail: bool = False,
) -> PairedComparison:
    """B against A, example by example; the caller aligns the scores (same examples, same order).
    Pass/fail scores (checks) are tested with McNemar's exact test, beside the bootstrap CI."""
    a, b = paired_scores(a_scores, b_scores, name_a=name_a, name_b=name_b)
    low, high = paired_bootstrap_ci(a, b, confidence=confidence, resamples=resamples, seed=seed)
    exact = a.size <= EXACT_MAX_N
    how = (
        f"exact over all 2^{a.size} sign patterns" if exact else f"{resamples:,} random sign flips"
    )
    if pass_fail:
        p_value, test = mcnemar_exact(a, b), "McNemar's exact test, two-sided"
    else:
        p_value = paired_permutation_test(a, b, resamples=resamples, seed=seed, exact=exact)
        test = f"paired permutation, two-sided, {how}"
    return PairedComparison(
        metric=metric,
        name_a=name_a,
        name_b=name_b,
        n=int(a.size),
        n_tied=int(np.count_nonzero(a == b)),
        mean_a=float(a.mean()),
        mean_b=float(b.mean()),
        diff=float((b - a).mean()),
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        p_value=p_value,
        test=test,
        resamples=resamples,
        seed=seed,
        alpha=alpha,
        higher_is_better=higher_is_better,
    )


def compare_all(
    variants: Mapping[str, Scores],
    *,
    metric: str = "rougeL",
    baseline: str | None = None,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
    alpha: float = ALPHA,
    higher_is_better: bool | None = True,
    pass_fail: bool = False,
) -> list[PairedComparison]:
    """Every pair in the order given (or each variant against `baseline`), Holm-adjusted together.

    The caller aligns the scores: every list covers the same examples in the same order.
    """
    names = list(variants)
    if len(names) < 2:
        raise PromptLabError("Pick at least two variants to compare.")
    if baseline is not None and baseline not in variants:
        raise PromptLabError(f"The baseline '{baseline}' is not among the variants compared.")
    pairs = (
        [(baseline, name) for name in names if name != baseline]
        if baseline is not None
        else list(combinations(names, 2))
    )
    settings = dict(
        metric=metric,
        confidence=confidence,
        resamples=resamples,
        seed=seed,
        higher_is_better=higher_is_better,
        pass_fail=pass_fail,
    )
    results = [
        compare_pair(variants[a], variants[b], name_a=a, name_b=b, alpha=alpha, **settings)
        for a, b in pairs
    ]
    return adjust_holm(results)


def adjust_holm(results: Sequence[PairedComparison]) -> list[PairedComparison]:
    """The comparisons with Holm-adjusted p-values over all of them as one family."""
    adjusted = holm([r.p_value for r in results])
    return [
        replace(r, p_adjusted=p, comparisons=len(results))
        for r, p in zip(results, adjusted, strict=True)
    ]


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given: monotone and at most 1."""
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or not np.all((p >= 0) & (p <= 1)):
        raise PromptLabError("p-values must be a flat list of numbers between 0 and 1.")
    order = np.argsort(p, kind="stable")
    steps = p[order] * (p.size - np.arange(p.size))
    # The running maximum keeps a smaller p from getting a larger adjusted value than a bigger p.
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.maximum.accumulate(steps), 1.0)
    return adjusted.tolist()


def paired_bootstrap_ci(
    a: Scores, b: Scores, *, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap CI of mean(b − a), resampling examples so that pairs stay together.

    Resample i takes the examples `rng.integers(0, n, size=n)` of `Generator(PCG64(seed))`, as
    `core.evaluation.scoring.mean_bootstrap_ci` does, so the interval equals
    `mean_bootstrap_ci(b − a)`.
    """
    _check_resampling(confidence, resamples)
    diffs = _differences(a, b)
    rng = np.random.Generator(np.random.PCG64(seed))
    means = np.concatenate(
        [
            diffs[rng.integers(0, diffs.size, size=(rows, diffs.size))].mean(axis=1)
            for rows in _blocks(resamples, diffs.size)
        ]
    )
    tail = (1 - confidence) / 2
    low, high = np.percentile(means, [100 * tail, 100 * (1 - tail)])
    return float(low), float(high)


def paired_permutation_test(
    a: Scores, b: Scores, *, resamples: int = 10_000, seed: int = 0, exact: bool | None = None
) -> float:
    """Two-sided p-value for mean(b − a) = 0 from flipping the signs of the differences.

    Exact (share of all 2**n sign patterns at least as extreme) when n ≤ 16 or `exact` is True;
    otherwise resample i flips where `rng.integers(0, 2, size=n)` is 1, p = (count + 1) / (R + 1).
    """
    diffs = _differences(a, b)
    exact = diffs.size <= EXACT_MAX_N if exact is None else exact
    if exact and diffs.size > _EXACT_LIMIT:
        raise PromptLabError(f"An exact test over 2^{diffs.size} sign patterns is too large.")
    if not exact and resamples < 1:
        raise PromptLabError(f"resamples must be at least 1, e.g. 10000; got {resamples}.")
    # Patterns equal in exact arithmetic can round apart; they must count as at least as extreme.
    threshold = abs(diffs.sum()) - 1e-12 * np.abs(diffs).sum()
    if exact:
        null = _sign_patterns(diffs.size) @ diffs
        return float(np.mean(np.abs(null) >= threshold))
    rng = np.random.Generator(np.random.PCG64(seed))
    count = 0
    for rows in _blocks(resamples, diffs.size):
        signs = 1 - 2 * rng.integers(0, 2, size=(rows, diffs.size))
        count += int(np.count_nonzero(np.abs(signs @ diffs) >= threshold))
    # The observed pattern is one of the possible ones, so p is never 0 (Phipson & Smyth, 2010).
    return (count + 1) / (resamples + 1)


def sign_test(a: Scores, b: Scores) -> float:
    """Exact two-sided binomial p-value that B beats A as often as A beats B; ties are dropped."""
    diffs = _differences(a, b)
    wins, losses = int(np.count_nonzero(diffs > 0)), int(np.count_nonzero(diffs < 0))
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1))
    return min(1.0, 2 * tail / 2**n)


def paired_scores(
    a: Scores, b: Scores, *, name_a: str = "A", name_b: str = "B"
) -> tuple[np.ndarray, np.ndarray]:
    """Two score lists as float arrays, refused unless they pair up over two or more examples."""
    a_array, b_array = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_array.ndim != 1 or b_array.ndim != 1:
        raise PromptLabError("Scores must be flat lists of numbers, one per example.")
    if a_array.size != b_array.size:
        raise PromptLabError(
            f"{name_a} has {a_array.size} scores and {name_b} has {b_array.size}; a paired "
            "comparison needs both scored on the same examples, in the same order."
        )
    if a_array.size < 2:
        raise PromptLabError(
            f"A paired comparison needs at least 2 examples scored by both; got {a_array.size}."
        )
    if not (np.all(np.isfinite(a_array)) and np.all(np.isfinite(b_array))):
        raise PromptLabError("Scores must be finite numbers; found NaN or infinity.")
    return a_array, b_array


def _differences(a: Scores, b: Scores) -> np.ndarray:
    """b − a, example by example, after paired_scores has checked them."""
    a_array, b_array = paired_scores(a, b)
    return b_array - a_array


def _sign_patterns(n: int) -> np.ndarray:
    """All 2**n rows of ±1, the bits of 0 … 2**n − 1."""
    bits = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
    return (1 - 2 * bits).astype(float)


def _blocks(resamples: int, n: int) -> Iterator[int]:
    """Row counts of blocks that add up to `resamples`, each about _BLOCK_CELLS cells."""
    rows = max(1, _BLOCK_CELLS // n)
    for start in range(0, resamples, rows):
        yield min(rows, resamples - start)


def _check_resampling(confidence: float, resamples: int) -> None:
    if not 0 < confidence < 1:
        raise PromptLabError(f"confidence must be between 0 and 1, e.g. 0.95; got {confidence}.")
    if resamples < 1:
        raise PromptLabError(f"resamples must be at least 1, e.g. 10000; got {resamples}.")
