"""Is the difference real? Paired tests, the shot-count curve and the spread across repeated
seeds, computed from stored experiments on the examples they all scored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from core.errors import PromptLabError
from core.evaluation import compare, metric_set, repeats, shot_curve, stats
from core.evaluation.compare import Variant
from core.evaluation.wording import metric_label
from storage import queries

SEED = "settings.seed"
SHOTS = "design.shots"


@dataclass(frozen=True)
class Aligned:
    """Each variant's scores on the examples that every one of them scored, in one order."""

    scores: dict[int, list[float]]  # experiment id -> scores
    keys: list[str]
    left_out: int  # examples some variant has no score for (failed, unfinished, no reference)


def aligned_scores(*, session: Session, variants: Sequence[Variant], metric: str) -> Aligned:
    compare.require_same_examples(variants)
    metric_set.info(metric)  # an unknown metric is refused by name
    by_variant = queries.scores_of(
        session=session, experiment_ids=[v.id for v in variants], metric=metric
    )
    unscored = [str(v.id) for v in variants if not by_variant[v.id]]
    if unscored:
        raise PromptLabError(
            f"{compare.numbered(unscored)} no {metric_label(metric)} scores; score it "
            f"again with that metric (python -m core rescore ID --metrics …, or Experiments)."
        )
    order = variants[0].example_keys
    keys = [k for k in order if all(k in scored for scored in by_variant.values())]
    if len(keys) < 2:
        raise PromptLabError(
            f"Paired tests need at least 2 examples that every experiment scored; these share "
            f"{len(keys)}."
        )
    scores = {vid: [scored[k] for k in keys] for vid, scored in by_variant.items()}
    return Aligned(scores, keys, len(order) - len(keys))


def direction(metric: str) -> dict[str, bool | None]:
    """How a metric's scores are tested: which way is better, and whether they pass or fail."""
    described = metric_set.info(metric)
    return {"higher_is_better": described.higher_is_better, "pass_fail": described.pass_fail}


def paired_verdicts(
    *,
    session: Session,
    variants: Sequence[Variant],
    metric: str = "rougeL",
    baseline: int | None = None,
    resamples: int = 10_000,
    seed: int = 0,
) -> tuple[list[stats.PairedComparison], Aligned]:
    """Every pair, or each against `baseline` (an experiment id), Holm-adjusted together."""
    aligned = aligned_scores(session=session, variants=variants, metric=metric)
    names = {v.id: v.name for v in variants}
    by_name = {names[vid]: values for vid, values in aligned.scores.items()}
    found = stats.compare_all(
        by_name,
        metric=metric,
        baseline=None if baseline is None else names[baseline],
        resamples=resamples,
        seed=seed,
        **direction(metric),
    )
    return found, aligned


def shots_only(variants: Sequence[Variant]) -> bool:
    """Whether the variants differ in the number of shots and in nothing else."""
    differing = set(compare.differing_keys(variants))
    per_k = {compare.flat_spec(v.spec).get(SHOTS) for v in variants}
    return differing == {SHOTS} and len(per_k) == len(variants) >= 2


def shots_study(
    *, session: Session, variants: Sequence[Variant], metric: str = "rougeL", seed: int = 0
) -> shot_curve.ShotCurve | None:
    """The shot-count curve, when the variants differ only in the number of shots."""
    if not shots_only(variants):
        return None
    aligned = aligned_scores(session=session, variants=variants, metric=metric)
    by_k = {compare.flat_spec(v.spec)[SHOTS]: aligned.scores[v.id] for v in variants}
    return shot_curve.shot_curve(by_k, metric=metric, seed=seed, **direction(metric))


def shots_series(variants: Sequence[Variant]) -> dict[str, list[Variant]]:
    """The variants as shot-count series: grouped by every setting but the shots that differs
    among them ("shot_format=turns"; "all" when only the shots differ), keeping the groups whose
    members differ in the shots alone, one each, at two or more counts."""
    keys = compare.differing_keys(variants)
    if SHOTS not in keys:
        return {}
    others = [k for k in keys if k != SHOTS]
    groups: dict[str, list[Variant]] = {}
    for variant in variants:
        flat = compare.flat_spec(variant.spec)
        name = ", ".join(f"{k.split('.')[-1]}={flat.get(k)}" for k in others) or "all"
        groups.setdefault(name, []).append(variant)
    return {
        name: group
        for name, group in groups.items()
        if len({compare.flat_spec(v.spec).get(SHOTS) for v in group}) == len(group) >= 2
    }


def shots_studies(
    *, session: Session, variants: Sequence[Variant], metric: str = "rougeL", seed: int = 0
) -> dict[str, shot_curve.ShotCurve]:
    """A shot-count curve for each series (see shots_series): with shots × shot format swept,
    one curve per format, each paired over the examples its own variants all scored."""
    curves = {}
    for name, group in shots_series(variants).items():
        aligned = aligned_scores(session=session, variants=group, metric=metric)
        by_k = {compare.flat_spec(v.spec)[SHOTS]: aligned.scores[v.id] for v in group}
        curves[name] = shot_curve.shot_curve(by_k, metric=metric, seed=seed, **direction(metric))
    return curves


def repeat_groups(variants: Sequence[Variant]) -> dict[str, list[Variant]]:
    """Variants that are the same run but for the seed, grouped; groups of one are left out."""
    groups: dict[str, list[Variant]] = {}
    for variant in variants:
        flat = compare.flat_spec(variant.spec)
        same = {k: v for k, v in flat.items() if k != SEED and k not in compare.NOT_SETTINGS}
        groups.setdefault(repr(sorted(same.items(), key=str)), []).append(variant)
    return {_group_name(g): g for g in groups.values() if len(g) >= 2}


def repeat_report(
    *, session: Session, variants: Sequence[Variant], metric: str = "rougeL"
) -> tuple[dict[str, repeats.RepeatSpread], list[repeats.LuckVsChange]]:
    """The spread across seeds of each repeated variant, and whether the differences between
    them exceed that luck."""
    groups = repeat_groups(variants)
    if not groups:
        return {}, []
    members = [v for group in groups.values() for v in group]
    aligned = aligned_scores(session=session, variants=members, metric=metric)
    runs = {name: [aligned.scores[v.id] for v in group] for name, group in groups.items()}
    spreads = {name: repeats.repeat_spread(r, metric=metric) for name, r in runs.items()}
    names = list(runs)
    changes = [
        repeats.luck_vs_change(runs[a], runs[b], metric=metric, name_a=a, name_b=b)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    ]
    return spreads, changes


def _group_name(group: Sequence[Variant]) -> str:
    seeds = ", ".join(str(compare.flat_spec(v.spec).get(SEED)) for v in group)
    ids = ", ".join(f"#{v.id}" for v in group)
    return f"{ids} (seeds {seeds})"
