"""`python -m core compare`: the verdicts, the shot-count curve and the spread of repeated
seeds for stored experiments, as plain text."""

from __future__ import annotations

from argparse import Namespace

from core.errors import PromptLabError
from core.evaluation import compare, verdicts
from core.evaluation.wording import metric_label
from storage import queries
from storage.db import session_scope


def compare_experiments(args: Namespace) -> int:
    with session_scope(args.db_url) as session:
        ids = _ids(session, args)
        variants = compare.load_variants(session=session, experiment_ids=ids)
        baseline = None if args.all_pairs else (args.baseline or ids[0])
        if baseline is not None and baseline not in ids:
            raise PromptLabError(f"The baseline {baseline} is not among the experiments compared.")
        found, aligned = verdicts.paired_verdicts(
            session=session, variants=variants, metric=args.metric, baseline=baseline
        )
        curves = verdicts.shots_studies(session=session, variants=variants, metric=args.metric)
        spreads, changes = verdicts.repeat_report(
            session=session, variants=variants, metric=args.metric
        )
    _print_means(variants, args.metric)
    print(
        f"\npaired over {len(aligned.keys)} examples"
        + (f" ({aligned.left_out} left out)" if aligned.left_out else "")
        + f"; {found[0].test}; bootstrap {found[0].resamples:,} resamples, seed {found[0].seed}"
    )
    for comparison in found:
        print(f"- {comparison.verdict()}")
    for series, curve in curves.items():
        points = "  ".join(
            f"K={p.shots}: {p.mean:.3f} [{p.ci_low:.3f}, {p.ci_high:.3f}]" for p in curve.points
        )
        which = "" if series == "all" else f", {series}"
        print(f"\nshot-count curve ({metric_label(args.metric)}{which}): {points}")
        print(curve.explanation)
    for spread in spreads.values():
        print(f"\n{spread.sentence()}")
    for change in changes:
        print(change.sentence())
    return 0


def _print_means(variants: list[compare.Variant], metric: str) -> None:
    for variant in variants:
        score = variant.scores.get(metric)
        shown = (
            "no scores"
            if not score
            else (f"{score['mean']:.3f} [{score['ci_low']:.3f}, {score['ci_high']:.3f}]")
        )
        n = (score or {}).get("n", variant.n_scored)
        corpus = (score or {}).get("corpus")
        level = "" if corpus is None else f", corpus-level {corpus:.3f}"
        mean = "mean of sentence scores " if corpus is not None else ""
        print(f"{variant.name}: {metric_label(metric)} {mean}{shown} ({n} scored{level})")


def _ids(session, args: Namespace) -> list[int]:
    if args.study is not None:
        if args.ids:
            raise PromptLabError("Give experiment ids or --study, not both.")
        found = queries.list_experiments(session=session, study_id=args.study)
        if not found:
            raise PromptLabError(f"There is no study {args.study}, or it has no experiments.")
        return sorted(r.id for r in found)
    if len(args.ids) < 2:
        raise PromptLabError("Give two or more experiment ids to compare, or --study ID.")
    return list(dict.fromkeys(args.ids))
