"""Repeats of one variant with different seeds: how far luck of the seed moves its mean, beside
how uncertain the choice of examples makes it, and whether a change beats that luck."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.errors import PromptLabError
from core.evaluation.scoring import mean_bootstrap_ci
from core.evaluation.stats import Scores
from core.evaluation.wording import format_confidence, format_score, metric_label

LUCK_FACTOR = 2.0  # a change must exceed twice the seed-to-seed SD of a mean to count as real


@dataclass(frozen=True)
class RepeatSpread:
    """One variant over R repeats (seeds) of the same n examples: two kinds of spread side by side.

    Compare `repeat_sd` with `example_ci_half_width`: both are about the mean, not single scores.
    """

    metric: str
    repeats: int
    n: int
    mean: float  # over every repeat and example
    repeat_means: tuple[float, ...]  # in the order the repeats were given
    repeat_sd: float  # SD (ddof=1) of the per-repeat means: luck of the seed
    repeat_low: float  # smallest and largest per-repeat mean
    repeat_high: float
    example_sd: float  # SD (ddof=1) of each example's score averaged over the repeats
    example_ci_half_width: float  # half the bootstrap CI width of the mean over examples
    confidence: float
    resamples: int
    seed: int  # of the bootstrap, not of generation

    def sentence(self) -> str:
        """Both spreads in plain words."""
        return (
            f"Over {self.repeats} repeats with different seeds, mean {metric_label(self.metric)} "
            f"ranges from {format_score(self.repeat_low)} to {format_score(self.repeat_high)} "
            f"(SD {format_score(self.repeat_sd)}); over the {self.n} examples, its "
            f"{format_confidence(self.confidence)} CI is "
            f"±{format_score(self.example_ci_half_width)} "
            f"(SD of example scores {format_score(self.example_sd)})."
        )


@dataclass(frozen=True)
class LuckVsChange:
    """Whether two variants' means differ by more than seed-to-seed luck moves a mean.

    Rule: the change counts when |mean_b − mean_a| > 2 × the pooled SD of the per-repeat means, so
    that a single run of each would show it. It says nothing about the choice of examples; the
    paired comparison in core.evaluation.stats does that.
    """

    metric: str
    name_a: str
    name_b: str
    repeats_a: int
    repeats_b: int
    mean_a: float  # mean of A's per-repeat means
    mean_b: float
    diff: float  # mean_b − mean_a
    pooled_sd: float  # SD of a repeat's mean, pooled over both variants' repeats
    beyond_luck: bool

    def sentence(self) -> str:
        """The rule's answer in plain words."""
        label = metric_label(self.metric)
        if round(self.diff, 3) == 0 and not self.beyond_luck:
            return (
                f"{self.name_a} and {self.name_b} have the same mean {label} over their repeats "
                f"({format_score(self.mean_a)} and {format_score(self.mean_b)})."
            )
        direction = "higher" if self.diff > 0 else "lower"
        spread = (
            f"twice the seed-to-seed SD of a mean ({format_score(self.pooled_sd)}, pooled over "
            f"{self.repeats_a} + {self.repeats_b} repeats)"
        )
        verdict = (
            f"more than {spread}: the change matters more than luck of the seed"
            if self.beyond_luck
            else f"within {spread}: luck of the seed could explain it"
        )
        return (
            f"{self.name_b}'s mean {label} is {direction} than {self.name_a}'s by "
            f"{format_score(abs(self.diff))}, {verdict}."
        )


def repeat_spread(
    repeats: Sequence[Scores],
    *,
    metric: str = "rougeL",
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> RepeatSpread:
    """The spread across R ≥ 2 repeats beside that across examples (aligned across repeats)."""
    table = _repeat_table(repeats)
    if table.shape[0] < 2:
        raise PromptLabError(
            "Repeat the run with at least two seeds to see how much luck moves it."
        )
    if table.shape[1] < 2:
        raise PromptLabError("The spread across examples needs at least 2 examples.")
    repeat_means = table.mean(axis=1)
    example_means = table.mean(axis=0)
    aggregate = mean_bootstrap_ci(
        example_means, confidence=confidence, resamples=resamples, seed=seed
    )
    return RepeatSpread(
        metric=metric,
        repeats=table.shape[0],
        n=table.shape[1],
        mean=float(table.mean()),
        repeat_means=tuple(repeat_means.tolist()),
        repeat_sd=float(repeat_means.std(ddof=1)),
        repeat_low=float(repeat_means.min()),
        repeat_high=float(repeat_means.max()),
        example_sd=float(example_means.std(ddof=1)),
        example_ci_half_width=(aggregate.ci_high - aggregate.ci_low) / 2,
        confidence=confidence,
        resamples=resamples,
        seed=seed,
    )


def luck_vs_change(
    variant_a_repeats: Sequence[Scores],
    variant_b_repeats: Sequence[Scores],
    *,
    metric: str = "rougeL",
    name_a: str = "A",
    name_b: str = "B",
) -> LuckVsChange:
    """A against B by the LUCK_FACTOR rule; one side may have a single run if the other has two+.

    The pooled SD assumes both variants are equally lucky; for a greedy variant (no luck at all)
    that overstates the luck, so the rule errs towards "could be luck".
    """
    a_means = _repeat_table(variant_a_repeats).mean(axis=1)
    b_means = _repeat_table(variant_b_repeats).mean(axis=1)
    degrees = a_means.size + b_means.size - 2
    if degrees < 1:
        raise PromptLabError(
            "Repeat at least one of the two variants with two or more seeds to measure luck."
        )
    squares = ((a_means - a_means.mean()) ** 2).sum() + ((b_means - b_means.mean()) ** 2).sum()
    pooled_sd = float(np.sqrt(squares / degrees))
    diff = float(b_means.mean() - a_means.mean())
    return LuckVsChange(
        metric=metric,
        name_a=name_a,
        name_b=name_b,
        repeats_a=int(a_means.size),
        repeats_b=int(b_means.size),
        mean_a=float(a_means.mean()),
        mean_b=float(b_means.mean()),
        diff=diff,
        pooled_sd=pooled_sd,
        # The floor keeps rounding from making two identical, luck-free means a "real" change.
        beyond_luck=abs(diff) > max(LUCK_FACTOR * pooled_sd, 1e-12),
    )


def _repeat_table(repeats: Sequence[Scores]) -> np.ndarray:
    """Repeats × examples as floats, refused unless every repeat scores the same examples."""
    rows = [np.asarray(scores, dtype=float) for scores in repeats]
    if not rows or any(row.ndim != 1 or row.size == 0 for row in rows):
        raise PromptLabError("Give one non-empty list of per-example scores for each repeat.")
    sizes = sorted({row.size for row in rows})
    if len(sizes) > 1:
        raise PromptLabError(
            f"The repeats cover different numbers of examples ({', '.join(map(str, sizes))}); "
            "every repeat must score the same examples, in the same order."
        )
    table = np.vstack(rows)
    if not np.all(np.isfinite(table)):
        raise PromptLabError("Scores must be finite numbers; found NaN or infinity.")
    return table
