"""Tests for core.evaluation.shot_curve on constructed data whose answer is known."""

import numpy as np
import pytest

from core.errors import PromptLabError
from core.evaluation.shot_curve import shot_curve

BASE = np.random.default_rng(20).uniform(0.1, 0.4, 30)  # zero-shot ROUGE-L on 30 examples


def _noise(scale: float, seed: int) -> np.ndarray:
    """Fixed noise per seed, so that a test's data do not depend on which tests ran before."""
    return np.random.default_rng(seed).normal(0, scale, BASE.size)


# One shot helps by 0.10; three and five shots add nothing but noise around one shot.
RISING_THEN_FLAT = {
    0: BASE,
    1: BASE + 0.10 + _noise(0.02, 1),
    3: BASE + 0.10 + _noise(0.02, 2),
    5: BASE + 0.10 + _noise(0.02, 3),
}


def test_smallest_sufficient_k_is_where_the_curve_levels_off():
    curve = shot_curve(RISING_THEN_FLAT, resamples=2000)
    assert curve.smallest_sufficient_k == 1
    assert [(c.name_a, c.name_b) for c in curve.comparisons] == [
        ("1 shot", "3 shots"),
        ("1 shot", "5 shots"),
    ]
    assert all(c.comparisons == 2 and not c.reliable for c in curve.comparisons)
    assert curve.explanation.startswith("More than 1 shot does not help reliably on ROUGE-L: ")
    assert "3 shots vs 1 shot: " in curve.explanation
    assert "(p Holm-adjusted over these 2 comparisons)." in curve.explanation
    assert "Fewer shots are reliably worse: 1 shot vs 0 shots: +0.09" in curve.explanation


# (mean, 2.5th, 97.5th percentile) per k, computed once with numpy apart from core: for each k,
# rng = default_rng(3), 500 means of scores[rng.integers(0, 30, size=30)], np.percentile.
EXPECTED_POINTS = {
    0: (0.2233027622881161, 0.1937692541787137, 0.25185273532380725),
    1: (0.3219806951095613, 0.2920658694969372, 0.3524544567153226),
    3: (0.32179135685155447, 0.2901367729734078, 0.35182895869175157),
    5: (0.32446562207513846, 0.2910595516805974, 0.355094178704065),
}


def test_points_are_the_per_k_means_with_their_bootstrap_intervals():
    curve = shot_curve(list(RISING_THEN_FLAT.items())[::-1], resamples=500, seed=3)
    assert [p.shots for p in curve.points] == [0, 1, 3, 5]
    for point in curve.points:
        mean, low, high = EXPECTED_POINTS[point.shots]
        assert point.n == 30
        assert (point.mean, point.ci_low, point.ci_high) == pytest.approx(
            (mean, low, high), rel=1e-12
        )
    assert (curve.resamples, curve.seed, curve.confidence) == (500, 3, 0.95)


def test_flat_curve_needs_no_shots():
    flat = {0: BASE, 2: BASE + _noise(0.02, 4), 4: BASE + _noise(0.02, 5)}
    curve = shot_curve(flat, resamples=2000)
    assert curve.smallest_sufficient_k == 0
    assert curve.explanation.startswith("More than 0 shots does not help reliably on ROUGE-L: ")
    assert "Fewer shots" not in curve.explanation


def test_still_rising_curve_points_at_the_largest_k():
    rising = {0: BASE, 1: BASE + 0.1 + _noise(0.01, 6), 2: BASE + 0.2 + _noise(0.01, 7)}
    curve = shot_curve(rising, metric="rouge2", resamples=2000)
    assert curve.smallest_sufficient_k == 2
    assert curve.comparisons == ()
    assert "2 shots, the most tried, is the best found" in curve.explanation
    assert "(last: 2 shots vs 1 shot: +0.09" in curve.explanation


def test_a_larger_k_that_is_reliably_worse_does_not_disqualify():
    worse_later = {0: BASE, 1: BASE + 0.1 + _noise(0.01, 8), 8: BASE - 0.05 + _noise(0.01, 9)}
    assert shot_curve(worse_later, resamples=1000).smallest_sufficient_k == 1


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ({1: BASE}, "at least two different numbers of shots"),
        ([(1, BASE), (1, BASE)], "Each shot count may appear once"),
        ({0: BASE, 1: BASE[:-1]}, "0 shots has 30 scores and 1 shot has 29"),
        ({-1: BASE, 1: BASE}, "cannot be negative"),
    ],
)
def test_curves_that_cannot_be_drawn_are_refused(scores, message):
    with pytest.raises(PromptLabError, match=message):
        shot_curve(scores)
