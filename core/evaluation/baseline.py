"""One experiment pinned as the baseline: every other as its difference from it, and the examples
on which a variant does worse than it by more than a chosen margin ("what got worse")."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from core.errors import PromptLabError
from core.evaluation import metric_set
from core.evaluation.compare import Variant, metrics_of


def differences(variants: Sequence[Variant], baseline_id: int) -> pd.DataFrame:
    """One row per variant but the baseline: for each metric both have, its mean minus the
    baseline's (`Δ rougeL`), beside the baseline's own mean."""
    base = _baseline(variants, baseline_id)
    names = [m for m in metrics_of(variants) if m in base.scores]
    rows = []
    for variant in variants:
        if variant.id == baseline_id:
            continue
        row: dict[str, object] = {"id": variant.id, "variant": variant.name}
        for name in names:
            mine = variant.scores.get(name, {}).get("mean")
            row[f"Δ {name}"] = None if mine is None else mine - base.scores[name]["mean"]
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["id", "variant", *(f"Δ {n}" for n in names)])
    return frame.astype({f"Δ {n}": float for n in names})


def regressions(
    frame: pd.DataFrame, ids: Sequence[int], baseline_id: int, metric: str, margin: float
) -> pd.DataFrame:
    """The rows of a per-example table (compare.per_example) where a variant scores worse on
    `metric` than the baseline by more than `margin`, the largest drop first, with the drop
    (`worse by`) and which variant (`worst`). For a metric with no better direction (answer
    length), a change either way by more than `margin` counts."""
    if margin < 0:
        raise PromptLabError(f"The margin cannot be negative; got {margin}.")
    if baseline_id not in ids:
        raise PromptLabError(f"The baseline {baseline_id} is not among the experiments compared.")
    better = metric_set.info(metric).higher_is_better
    base = frame[f"e{baseline_id} {metric}"].astype(float)
    drops = pd.DataFrame(
        {
            i: _drop(frame[f"e{i} {metric}"].astype(float) - base, better)
            for i in ids
            if i != baseline_id
        }
    )
    worst = drops.max(axis=1)
    found = frame.copy()
    found.insert(1, "worse by", worst)
    found.insert(2, "worst", drops.idxmax(axis=1))
    found = found[worst > margin]
    return found.sort_values("worse by", ascending=False, kind="stable", ignore_index=True)


def _drop(change: pd.Series, higher_is_better: bool | None) -> pd.Series:
    """How much worse than the baseline (positive: worse); an unscored example never counts."""
    if higher_is_better is None:
        return change.abs().fillna(float("-inf"))
    return (-change if higher_is_better else change).fillna(float("-inf"))


def _baseline(variants: Sequence[Variant], baseline_id: int) -> Variant:
    for variant in variants:
        if variant.id == baseline_id:
            return variant
    raise PromptLabError(f"The baseline {baseline_id} is not among the experiments compared.")
