"""Tests for stats against scipy.stats and against direct, independently written loops."""

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats as scipy_stats

from core.errors import PromptLabError
from core.evaluation.scoring import mean_bootstrap_ci
from core.evaluation.stats import (
    PairedComparison,
    compare_all,
    compare_pair,
    holm,
    paired_bootstrap_ci,
    paired_permutation_test,
    sign_test,
)

# ROUGE-L-like scores of two variants on the same 20 examples; B is ahead by about 0.01.
A20 = [0.338, 0.419, 0.383, 0.218, 0.240, 0.412, 0.152, 0.396, 0.389, 0.290]
A20 += [0.241, 0.234, 0.226, 0.284, 0.301, 0.316, 0.449, 0.388, 0.337, 0.447]
B20 = [0.276, 0.437, 0.350, 0.262, 0.278, 0.433, 0.056, 0.399, 0.417, 0.326]
B20 += [0.194, 0.240, 0.207, 0.274, 0.384, 0.306, 0.477, 0.462, 0.338, 0.471]

# Twelve examples, differences in multiples of 0.05 so that many sign patterns tie exactly.
A12 = [0.30, 0.25, 0.40, 0.10, 0.35, 0.20, 0.50, 0.15, 0.30, 0.45, 0.25, 0.40]
B12 = [0.40, 0.30, 0.35, 0.20, 0.45, 0.20, 0.60, 0.10, 0.40, 0.50, 0.35, 0.45]


def _loop_bootstrap(a, b, *, confidence, resamples, seed):
    """The paired bootstrap written out: one resample of example indices at a time."""
    rng = np.random.Generator(np.random.PCG64(seed))
    n = len(a)
    means = []
    for _ in range(resamples):
        picks = rng.integers(0, n, size=n)
        means.append(sum(b[i] - a[i] for i in picks) / n)
    tail = (1 - confidence) / 2
    return tuple(np.percentile(means, [100 * tail, 100 * (1 - tail)]))


def _loop_permutation(a, b, *, resamples, seed):
    """The random sign-flip test written out, one resample at a time, with the +1 correction."""
    rng = np.random.Generator(np.random.PCG64(seed))
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    observed = abs(sum(diffs))
    count = 0
    for _ in range(resamples):
        flips = rng.integers(0, 2, size=len(diffs))
        total = sum(-d if f else d for d, f in zip(diffs, flips, strict=True))
        count += abs(total) >= observed - 1e-12
    return (count + 1) / (resamples + 1)


def _scipy_permutation(a, b, n_resamples):
    """scipy's paired ('samples') permutation test of mean(b − a), two-sided."""
    return scipy_stats.permutation_test(
        (np.asarray(b), np.asarray(a)),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        vectorized=True,
        permutation_type="samples",
        alternative="two-sided",
        n_resamples=n_resamples,
        rng=np.random.default_rng(123),
    ).pvalue


# Paired bootstrap ------------------------------------------------------------------------------


def test_bootstrap_equals_a_direct_loop_over_the_same_draws():
    got = paired_bootstrap_ci(A20, B20, confidence=0.9, resamples=2000, seed=5)
    assert got == pytest.approx(_loop_bootstrap(A20, B20, confidence=0.9, resamples=2000, seed=5))


def test_bootstrap_equals_mean_bootstrap_ci_of_the_differences():
    diffs = np.subtract(B20, A20)
    expected = mean_bootstrap_ci(diffs, resamples=3000, seed=11)
    got = paired_bootstrap_ci(A20, B20, resamples=3000, seed=11)
    assert got == pytest.approx((expected.ci_low, expected.ci_high), abs=1e-12)


def test_bootstrap_blocks_give_the_same_draws_as_one_block(monkeypatch):
    whole = paired_bootstrap_ci(A20, B20, resamples=1000, seed=2)
    monkeypatch.setattr("core.evaluation.stats._BLOCK_CELLS", 7 * len(A20))  # blocks of 7 resamples
    assert paired_bootstrap_ci(A20, B20, resamples=1000, seed=2) == pytest.approx(whole)


def test_bootstrap_is_close_to_scipy_percentile_interval_with_many_resamples():
    diffs = np.subtract(B20, A20)
    scipy_ci = scipy_stats.bootstrap(
        (diffs,),
        np.mean,
        method="percentile",
        n_resamples=100_000,
        rng=np.random.default_rng(1),
    ).confidence_interval
    got = paired_bootstrap_ci(A20, B20, resamples=100_000, seed=0)
    assert got == pytest.approx((scipy_ci.low, scipy_ci.high), abs=0.002)


# Permutation test ------------------------------------------------------------------------------


def test_exact_permutation_test_equals_scipy_exact():
    expected = _scipy_permutation(A12, B12, np.inf)
    assert paired_permutation_test(A12, B12) == pytest.approx(expected, rel=1e-12)
    assert 0.01 < expected < 0.2  # a p-value where a miscount would show


def test_exact_permutation_test_counts_every_pattern_as_extreme_when_all_tie():
    assert paired_permutation_test([0.2, 0.3, 0.4], [0.2, 0.3, 0.4]) == 1.0


def test_random_permutation_test_equals_a_direct_loop_over_the_same_draws():
    got = paired_permutation_test(A20, B20, resamples=3000, seed=4, exact=False)
    assert got == _loop_permutation(A20, B20, resamples=3000, seed=4)


def test_random_permutation_test_is_close_to_scipy_exact():
    expected = _scipy_permutation(A12, B12, np.inf)
    got = paired_permutation_test(A12, B12, resamples=50_000, seed=0, exact=False)
    # Monte-Carlo standard error is sqrt(p(1 − p)/50000) ≈ 0.001 at p ≈ 0.05.
    assert got == pytest.approx(expected, abs=0.005)


def test_random_permutation_test_is_close_to_scipy_on_twenty_examples():
    expected = _scipy_permutation(A20, B20, 50_000)
    got = paired_permutation_test(A20, B20, resamples=50_000, seed=0)
    assert got == pytest.approx(expected, abs=0.01)


def test_random_permutation_p_value_is_never_zero():
    a, b = [0.0] * 40, [1.0] * 40
    assert paired_permutation_test(a, b, resamples=999) == 1 / 1000


def test_exact_test_over_too_many_examples_is_refused():
    with pytest.raises(PromptLabError, match="too large"):
        paired_permutation_test([0.0] * 30, [1.0] * 30, exact=True)


# Sign test and Holm ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (A20, B20),
        (A12, B12),
        ([0, 0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 0]),
        ([0, 1, 0, 1], [1, 0, 1, 0]),  # wins equal losses
        ([0, 1, 0], [1, 0, 0]),  # one tie dropped
    ],
)
def test_sign_test_equals_scipy_binomtest(a, b):
    diffs = np.subtract(b, a)
    wins, n = int(np.sum(diffs > 0)), int(np.sum(diffs != 0))
    assert sign_test(a, b) == pytest.approx(scipy_stats.binomtest(wins, n, 0.5).pvalue, rel=1e-12)


def test_sign_test_of_all_ties_is_one():
    assert sign_test([0.3, 0.4], [0.3, 0.4]) == 1.0


def test_holm_matches_values_worked_by_hand():
    # Sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → running max 0.06.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]) == []


def test_holm_matches_its_definition_on_fixed_p_values():
    p = [0.012, 0.2, 0.0004, 0.049, 0.049, 0.8, 0.03]
    m = len(p)
    ranked = sorted(p)

    def adjusted(value: float) -> float:
        # Holm: the largest (m − j)·p_(j) over the p-values ranked at or below this one.
        rank = ranked.index(value) + ranked.count(value) - 1
        return min(1.0, max((m - j) * ranked[j] for j in range(rank + 1)))

    assert holm(p) == pytest.approx([adjusted(v) for v in p])


# Comparisons and verdicts ----------------------------------------------------------------------


def test_clear_improvement_is_reliable_and_said_plainly():
    b = [x + 0.05 + 0.01 * (i % 2) for i, x in enumerate(A20)]
    result = compare_pair(A20, b, metric="rougeL", name_a="A (shots=0)", name_b="B (shots=1)")
    assert result.reliable and result.better == "B (shots=1)"
    assert result.diff == pytest.approx(0.055, abs=1e-9)
    assert result.verdict().startswith("B (shots=1) is better than A (shots=0) on ROUGE-L by 0.055")
    assert "95% CI [0.05" in result.verdict() and "p < 0.001" in result.verdict()
    assert result.test == "paired permutation, two-sided, 10,000 random sign flips"
    assert (result.resamples, result.seed) == (10_000, 0)


def test_a_better_than_b_names_a_with_a_positive_interval():
    b = [x - 0.04 for x in A20]
    verdict = compare_pair(A20, b).verdict()
    assert verdict.startswith("A is better than B on ROUGE-L by 0.040, 95% CI [0.040, 0.040]")


def test_small_noisy_difference_is_no_reliable_difference():
    result = compare_pair(A20, B20, metric="rouge1", resamples=2000)
    assert not result.reliable and result.better is None
    assert result.verdict().startswith(
        "No reliable difference on ROUGE-1 between A and B on 20 examples (B − A = +0.0"
    )


def test_identical_scores_give_p_one_and_a_clear_verdict():
    result = compare_pair(A20, A20)
    assert result.p_value == 1.0 and (result.ci_low, result.ci_high) == (0.0, 0.0)
    assert result.verdict() == (
        "No difference on ROUGE-L between A and B: they score the same on every one of the "
        "20 examples."
    )


def test_interval_and_test_disagreeing_at_the_edge_is_not_reliable():
    result = replace(compare_pair(A12, B12), ci_low=0.001, ci_high=0.09, p_value=0.07)
    assert not result.reliable
    assert "the interval excludes 0 but the test does not reach p < 0.05" in result.verdict()
    adjusted = replace(result, p_value=0.02, p_adjusted=0.06, comparisons=3)
    assert "p < 0.05 before adjusting for 3 comparisons" in adjusted.verdict()
    wide = replace(result, ci_low=-0.01, p_value=0.04)
    assert "the test reaches p < 0.05 but the interval includes 0" in wide.verdict()


def test_small_sets_use_the_exact_test():
    assert (
        compare_pair(A12, B12).test
        == "paired permutation, two-sided, exact over all 2^12 sign patterns"
    )


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ([0.1, 0.2, 0.3], [0.1, 0.2], "A has 3 scores and B has 2"),
        ([0.1], [0.2], "at least 2 examples"),
        ([0.1, float("nan")], [0.2, 0.3], "finite"),
    ],
)
def test_scores_that_do_not_pair_up_are_refused(a, b, message):
    with pytest.raises(PromptLabError, match=message):
        compare_pair(a, b)


def test_compare_all_adjusts_every_pair_together():
    c = [x + 0.05 for x in A20]
    results = compare_all({"zero": A20, "one": B20, "three": c}, resamples=2000)
    assert [(r.name_a, r.name_b) for r in results] == [
        ("zero", "one"),
        ("zero", "three"),
        ("one", "three"),
    ]
    assert all(r.comparisons == 3 for r in results)
    assert [r.p_adjusted for r in results] == pytest.approx(holm([r.p_value for r in results]))
    assert "(Holm-adjusted over 3 comparisons)" in results[1].verdict()


def test_compare_all_against_a_baseline():
    results = compare_all({"x": A20, "base": B20, "y": A20}, baseline="base", resamples=500)
    assert [(r.name_a, r.name_b) for r in results] == [("base", "x"), ("base", "y")]
    with pytest.raises(PromptLabError, match="baseline 'z'"):
        compare_all({"x": A20, "y": B20}, baseline="z")
    with pytest.raises(PromptLabError, match="at least two"):
        compare_all({"x": A20})


def test_verdict_reads_the_adjusted_p_value():
    base = compare_pair(A12, B12)
    adjusted = replace(base, p_adjusted=min(1.0, base.p_value * 3), comparisons=3)
    assert isinstance(adjusted, PairedComparison)
    assert adjusted.p == pytest.approx(min(1.0, base.p_value * 3))
    assert not math.isclose(adjusted.p, base.p)
