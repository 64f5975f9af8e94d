"""Tests for repeats: the two spreads computed by hand, and the luck rule on known data."""

import numpy as np
import pytest

from core.errors import PromptLabError
from core.evaluation.repeats import luck_vs_change, repeat_spread

# Three repeats (seeds) of one sampled variant on four examples.
REPEATS = [
    [0.20, 0.40, 0.30, 0.50],
    [0.22, 0.38, 0.34, 0.46],
    [0.18, 0.42, 0.26, 0.54],
]


def test_repeat_spread_matches_a_direct_computation():
    spread = repeat_spread(REPEATS, resamples=500, seed=1)
    repeat_means = [sum(r) / 4 for r in REPEATS]  # 0.35, 0.35, 0.35
    example_means = [sum(col) / 3 for col in zip(*REPEATS, strict=True)]  # 0.2, 0.4, 0.3, 0.5
    assert spread.repeat_means == pytest.approx(repeat_means)
    assert spread.mean == pytest.approx(0.35)
    assert spread.repeat_sd == pytest.approx(0.0, abs=1e-12)
    assert (spread.repeat_low, spread.repeat_high) == pytest.approx((0.35, 0.35))
    assert spread.example_sd == pytest.approx(np.std(example_means, ddof=1))
    # The percentile bootstrap of the example means, computed once with numpy apart from
    # core: rng = default_rng(1); 500 means of means[rng.integers(0, 4, size=4)]; their 2.5th
    # and 97.5th percentiles are 0.25 and 0.475.
    assert spread.example_ci_half_width == pytest.approx((0.475 - 0.25) / 2)
    assert (spread.repeats, spread.n, spread.resamples, spread.seed) == (3, 4, 500, 1)


def test_repeat_sd_is_the_sd_of_the_per_repeat_means():
    repeats = [[0.1, 0.3], [0.2, 0.4], [0.4, 0.6]]  # means 0.2, 0.3, 0.5
    spread = repeat_spread(repeats, metric="rouge1", resamples=200)
    assert spread.repeat_sd == pytest.approx(np.std([0.2, 0.3, 0.5], ddof=1))
    assert spread.sentence().startswith(
        "Over 3 repeats with different seeds, mean ROUGE-1 ranges from 0.200 to 0.500 (SD 0.153)"
    )
    assert "over the 2 examples, its 95% CI is ±" in spread.sentence()


def test_change_larger_than_twice_the_repeat_sd_beats_luck():
    a = [[0.30, 0.32], [0.31, 0.33], [0.29, 0.31]]  # means 0.31, 0.32, 0.30: SD 0.01
    b = [[x + 0.05 for x in r] for r in a]
    result = luck_vs_change(a, b, name_a="temperature 0.7", name_b="temperature 0.2")
    assert result.diff == pytest.approx(0.05)
    assert result.pooled_sd == pytest.approx(0.01)
    assert result.beyond_luck
    assert result.sentence() == (
        "temperature 0.2's mean ROUGE-L is higher than temperature 0.7's by 0.050, more than "
        "twice the seed-to-seed SD of a mean (0.010, pooled over 3 + 3 repeats): the change "
        "matters more than luck of the seed."
    )


def test_change_within_twice_the_repeat_sd_could_be_luck():
    a = [[0.30, 0.32], [0.31, 0.33], [0.29, 0.31]]
    b = [[x - 0.015 for x in r] for r in a]
    result = luck_vs_change(a, b)
    assert not result.beyond_luck
    assert result.sentence().startswith("B's mean ROUGE-L is lower than A's by 0.015, within ")
    assert result.sentence().endswith("luck of the seed could explain it.")


def test_pooled_sd_weights_each_variant_by_its_repeats():
    a = [[0.1], [0.3]]  # means 0.1, 0.3: squares 0.02, one degree of freedom
    b = [[0.5], [0.5], [0.8]]  # means 0.5, 0.5, 0.8: squares 0.06, two degrees of freedom
    result = luck_vs_change(a, b)
    assert result.pooled_sd == pytest.approx(np.sqrt((0.02 + 0.06) / 3))


def test_a_single_greedy_run_can_face_a_repeated_sampled_variant():
    greedy = [[0.30, 0.34]]
    sampled = [[0.30, 0.32], [0.31, 0.33], [0.29, 0.31]]
    result = luck_vs_change(greedy, sampled)
    assert (result.repeats_a, result.repeats_b) == (1, 3)
    assert result.pooled_sd == pytest.approx(np.sqrt(0.0002 / 2))


def test_identical_luck_free_variants_are_the_same():
    runs = [[0.3, 0.4], [0.3, 0.4]]
    result = luck_vs_change(runs, runs)
    assert not result.beyond_luck
    assert (
        result.sentence()
        == "A and B have the same mean ROUGE-L over their repeats (0.350 and 0.350)."
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: repeat_spread([[0.1, 0.2]]), "at least two seeds"),
        (lambda: repeat_spread([[0.1], [0.2]]), "at least 2 examples"),
        (lambda: repeat_spread([[0.1, 0.2], [0.1]]), "different numbers of examples"),
        (lambda: repeat_spread([]), "one non-empty list"),
        (lambda: repeat_spread([[0.1, float("inf")], [0.1, 0.2]]), "finite"),
        (lambda: luck_vs_change([[0.1, 0.2]], [[0.2, 0.3]]), "two or more seeds"),
    ],
)
def test_repeats_that_cannot_be_summarised_are_refused(call, message):
    with pytest.raises(PromptLabError, match=message):
        call()
