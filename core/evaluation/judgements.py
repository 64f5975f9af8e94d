"""People's judgement, summarised: the blind A/B order a rater walks, win rates with Wilson
intervals and a sign test, how often an automatic metric prefers what people chose, and each
experiment's ratings."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from scipy import stats as scipy_stats

from core.errors import PromptLabError
from core.evaluation import pass_rates
from core.evaluation.wording import format_confidence, format_p, metric_label
from storage.schema import CHOICES

CONFIDENCE = 0.95  # the interval's level, as for ROUGE's
ALPHA = 0.05  # a preference is called reliable below this sign-test p


def blind_order(
    example_keys: Iterable[str], rater: str, pair: tuple[int, int]
) -> list[tuple[str, int]]:
    """The examples in the order `rater` judges `pair` (either order), each with the id shown
    on the left: a shuffle seeded by rater, pair and example, so the same each time the rater
    comes back, different for another rater, and unmoved by examples added later.

    >>> blind_order(["x", "y"], "ann", (2, 1)) == blind_order(["y", "x"], "ann", (1, 2))
    True
    """
    low, high = sorted(int(i) for i in pair)
    keys = sorted(set(example_keys), key=lambda k: (_draw("order", rater, low, high, k), k))
    return [(k, low if _draw("side", rater, low, high, k) % 2 == 0 else high) for k in keys]


def _draw(purpose: str, rater: str, low: int, high: int, key: str) -> int:
    text = "\x1f".join((purpose, rater, str(low), str(high), key))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


# Win rates -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WinRate:
    """B against A in blind choices: B's share of the choices that went one way, with its Wilson
    interval, and the exact sign test of B's wins against A's; ties and both-bad left out."""

    name_a: str
    name_b: str
    wins_a: int
    wins_b: int
    ties: int
    both_bad: int
    rate_b: float | None  # wins_b / (wins_a + wins_b); None when no choice went either way
    ci_low: float | None
    ci_high: float | None
    p_sign: float  # exact two-sided binomial; 1.0 with no decisive choice
    confidence: float = CONFIDENCE

    @property
    def n(self) -> int:
        """Every choice made, decisive or not."""
        return self.wins_a + self.wins_b + self.ties + self.both_bad

    @property
    def decided(self) -> int:
        return self.wins_a + self.wins_b

    @property
    def reliable(self) -> bool:
        return self.decided > 0 and self.p_sign < ALPHA

    def verdict(self) -> str:
        """The result as one plain sentence."""
        a, b = self.name_a, self.name_b
        if self.n == 0:
            return f"Nobody has judged {a} against {b} yet."
        others = f"{self.ties} tie(s) and {self.both_bad} both bad"
        if self.decided == 0:
            return f"No choice between {a} and {b} went either way: {others} of {self.n}."
        if self.wins_a == self.wins_b:
            return (
                f"No reliable preference between {a} and {b}: each won {self.wins_a} of "
                f"{self.decided} choices that went one way; {others} left out."
            )
        b_ahead = self.wins_b > self.wins_a
        winner, loser = (b, a) if b_ahead else (a, b)
        wins = max(self.wins_a, self.wins_b)
        low, high = (self.ci_low, self.ci_high) if b_ahead else (1 - self.ci_high, 1 - self.ci_low)
        detail = (
            f"{winner} won {wins} of {self.decided} choices that went one way "
            f"({wins / self.decided:.0%}, {format_confidence(self.confidence)} CI "
            f"[{low:.0%}, {high:.0%}]), sign test {format_p(self.p_sign)}; {others} left out."
        )
        if self.reliable:
            return f"People prefer {winner} to {loser}: {detail}"
        return f"No reliable preference between {a} and {b}: {detail}"


def win_rate(
    choices: Iterable[str], *, name_a: str = "A", name_b: str = "B", confidence: float = CONFIDENCE
) -> WinRate:
    """Count choices ('a', 'b', 'tie', 'both_bad', of A and B) into B's win rate over A.

    >>> w = win_rate(["b", "b", "a", "tie"])
    >>> (w.wins_b, w.decided, round(w.rate_b, 3), round(w.p_sign, 3))
    (2, 3, 0.667, 1.0)
    """
    counts = dict.fromkeys(CHOICES, 0)
    for choice in choices:
        if choice not in counts:
            raise PromptLabError(f"A blind choice is one of {', '.join(CHOICES)}; got '{choice}'.")
        counts[choice] += 1
    wins_a, wins_b = counts["a"], counts["b"]
    decided = wins_a + wins_b
    low, high = None, None
    if decided:
        if not 0 < confidence < 1:  # pass_rates' interval would read a bad level as [0, 1]
            raise PromptLabError(f"confidence must be in (0, 1); got {confidence}.")
        low, high = pass_rates.wilson_interval(wins_b, decided, confidence=confidence)
    return WinRate(
        name_a=name_a,
        name_b=name_b,
        wins_a=wins_a,
        wins_b=wins_b,
        ties=counts["tie"],
        both_bad=counts["both_bad"],
        rate_b=wins_b / decided if decided else None,
        ci_low=low,
        ci_high=high,
        p_sign=float(scipy_stats.binomtest(wins_b, decided, 0.5).pvalue) if decided else 1.0,
        confidence=confidence,
    )


# Metrics against people ------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricAgreement:
    """On the choices people made for A or B: how often `metric`'s per-example score prefers the
    same one; metric ties and examples it did not score are counted apart."""

    metric: str
    agree: int
    disagree: int
    metric_ties: int
    unscored: int  # decisive choices on examples the metric did not score for both
    higher_is_better: bool

    @property
    def compared(self) -> int:
        return self.agree + self.disagree

    @property
    def share(self) -> float | None:
        """agree / (agree + disagree); None when the metric preferred neither on every one."""
        return self.agree / self.compared if self.compared else None

    def sentence(self) -> str:
        metric = metric_label(self.metric)
        if not self.compared:
            return f"{metric} preferred neither output on any example people decided."
        ties = f"; {self.metric_ties} tie(s) on {metric}" if self.metric_ties else ""
        return (
            f"{metric} agrees with people on {self.agree} of {self.compared} choices "
            f"({self.share:.0%}){ties}."
        )


def metric_agreement(
    choices: Iterable[tuple[str, str]],
    scores_a: Mapping[str, float],
    scores_b: Mapping[str, float],
    *,
    metric: str,
    higher_is_better: bool | None = None,
) -> MetricAgreement:
    """Agreement of one metric with people's (example key, choice) pairs of A against B, each
    rater's choice counted once; `higher_is_better` None asks the metric's own direction.

    >>> m = metric_agreement([("x", "b"), ("y", "a"), ("z", "tie")], {"x": 0.1, "y": 0.5},
    ...                      {"x": 0.3, "y": 0.2}, metric="rougeL")
    >>> (m.agree, m.disagree, m.share)
    (2, 0, 1.0)
    """
    higher = metric_direction(metric) if higher_is_better is None else higher_is_better
    if higher is None:
        raise PromptLabError(
            f"{metric_label(metric)} has no better direction (neither more nor less is better), "
            "so it cannot agree or disagree with people."
        )
    agree = disagree = ties = unscored = 0
    for key, choice in choices:
        if choice not in ("a", "b"):
            continue
        a, b = scores_a.get(key), scores_b.get(key)
        if a is None or b is None or _missing(a) or _missing(b):
            unscored += 1
        elif a == b:
            ties += 1
        elif ("b" if (b > a) == higher else "a") == choice:
            agree += 1
        else:
            disagree += 1
    return MetricAgreement(metric, agree, disagree, ties, unscored, higher)


def metric_direction(metric: str, known: Mapping[str, bool | None] | None = None) -> bool | None:
    """Whether a higher score on `metric` is better: from `known`, else the metric's own
    description (core.evaluation.metric_set; None there: neither is, as for answer length),
    else yes, as for every ROUGE type."""
    if known and known.get(metric) is not None:
        return bool(known[metric])
    try:
        from core.evaluation import metric_set
    except ImportError:  # written separately; without it every metric reads upward
        return True
    try:
        described = metric_set.info(metric)
    except (AttributeError, LookupError, PromptLabError):  # a metric it does not describe
        return True
    said = getattr(described, "higher_is_better", True)
    return None if said is None else bool(said)


def _missing(value: float) -> bool:
    return isinstance(value, float) and math.isnan(value)


# Ratings ---------------------------------------------------------------------------------------


class RatingLike(Protocol):
    experiment_id: int
    example_key: str
    rater: str
    scale: str
    value: int


@dataclass(frozen=True)
class RatingSummary:
    """One experiment's ratings: how many outputs were rated, the share rated good (of those on
    good/bad) and the mean of those on 1 to 5, and by whom."""

    experiment_id: int
    n_ratings: int
    n_examples: int  # distinct outputs rated, by anyone
    n_good_bad: int
    good: int
    n_five: int
    mean_five: float | None
    raters: tuple[str, ...]

    @property
    def share_good(self) -> float | None:
        return self.good / self.n_good_bad if self.n_good_bad else None

    def sentence(self) -> str:
        if not self.n_ratings:
            return "no ratings"
        parts = []
        if self.n_good_bad:
            parts.append(f"{self.good} of {self.n_good_bad} good ({self.share_good:.0%})")
        if self.n_five:
            parts.append(f"mean {self.mean_five:.1f} of 5 over {self.n_five}")
        return (
            f"{self.n_ratings} rating(s) of {self.n_examples} output(s) by "
            f"{', '.join(self.raters)}: {'; '.join(parts)}"
        )


def rating_summary(
    ratings: Iterable[RatingLike], experiment_ids: Sequence[int] | None = None
) -> dict[int, RatingSummary]:
    """Each experiment's RatingSummary (those in `experiment_ids` even if unrated), by id."""
    grouped: dict[int, list[RatingLike]] = {int(i): [] for i in experiment_ids or ()}
    for rating in ratings:
        grouped.setdefault(rating.experiment_id, []).append(rating)
    return {i: _summarise(i, rows) for i, rows in grouped.items()}


def _summarise(experiment_id: int, rows: list[RatingLike]) -> RatingSummary:
    good_bad = [r.value for r in rows if r.scale == "good_bad"]
    five = [r.value for r in rows if r.scale == "five"]
    return RatingSummary(
        experiment_id=experiment_id,
        n_ratings=len(rows),
        n_examples=len({r.example_key for r in rows}),
        n_good_bad=len(good_bad),
        good=sum(1 for v in good_bad if v == 1),
        n_five=len(five),
        mean_five=sum(five) / len(five) if five else None,
        raters=tuple(sorted({r.rater for r in rows})),
    )
