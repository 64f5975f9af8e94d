"""Comparing experiments: the settings that differ, ROUGE with confidence intervals, the curve
over shots, and the examples on which they disagree most, word by word."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import PromptLabError
from core.evaluation import metric_set, pass_rates
from core.evaluation.scoring import mean_bootstrap_ci
from core.evaluation.wording import metric_label
from core.reporting import export
from storage import queries
from storage.queries import ROUGE_COLUMNS
from storage.schema import DatasetRecord, ExampleRecord, ExperimentRecord, StudyRecord

Order = Literal["disagreement", "agreement", "dataset"]
SHOTS = "design.shots"
# A label names a run; the metrics and checks it was scored with change nothing it generated.
NOT_SETTINGS = ("label", "metrics", "checks")
STATS = ("mean", "ci_low", "ci_high")
CURVE_COLUMNS = ["series", "shots", "rouge_type", *STATS, "experiment_id"]


# Choosing what to compare ----------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """One experiment as a picker lists it (no spec, no results)."""

    id: int
    label: str
    model_id: str
    dataset: str
    status: str
    n_done: int
    n_examples: int
    created_at: datetime
    study_id: int | None

    def describe(self) -> str:
        model = self.model_id if len(self.model_id) <= 40 else "…" + self.model_id[-39:]
        return (
            f"#{self.id} {self.label or '(no label)'} · {model} · {self.dataset} · "
            f"{self.status} {self.n_done}/{self.n_examples} · {self.created_at:%Y-%m-%d %H:%M}"
        )


@dataclass(frozen=True)
class StudyChoice:
    id: int
    name: str
    experiments: int
    created_at: datetime

    def describe(self) -> str:
        return f"Study {self.id}: {self.name} ({self.experiments} experiments)"


def list_choices(*, session: Session, study_id: int | None = None) -> list[Choice]:
    """Experiments newest first, read without their specs or results."""
    e = ExperimentRecord
    columns = (e.id, e.label, e.model_id, e.dataset_name, e.status, e.n_done, e.n_examples)
    query = select(*columns, e.created_at, e.study_id).order_by(e.id.desc())
    if study_id is not None:
        query = query.where(e.study_id == study_id)
    return [Choice(*row) for row in session.execute(query)]


def list_studies(*, session: Session) -> list[StudyChoice]:
    """Studies newest first, with how many experiments each holds."""
    query = (
        select(StudyRecord.id, StudyRecord.name, func.count(ExperimentRecord.id))
        .add_columns(StudyRecord.created_at)
        .join(ExperimentRecord, isouter=True)
        .group_by(StudyRecord.id)
        .order_by(StudyRecord.id.desc())
    )
    return [StudyChoice(*row) for row in session.execute(query)]


# Variants --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One experiment being compared: what it was run with and how it scored so far."""

    id: int
    label: str
    status: str
    dataset: str
    model_id: str
    spec: dict[str, Any]
    scores: dict[str, dict[str, float]]  # ROUGE type -> mean, ci_low, ci_high
    n_scored: int
    n_done: int
    n_examples: int
    example_keys: tuple[str, ...]
    # The named prompt version (name@N) whose design it ran exactly; None: an unnamed design.
    prompt_version: str | None = None

    @property
    def name(self) -> str:
        return f"#{self.id} {self.label}".strip()


def load_variants(*, session: Session, experiment_ids: Sequence[int]) -> list[Variant]:
    """The experiments in the order given; ids that do not exist are refused by number."""
    ids = list(dict.fromkeys(int(i) for i in experiment_ids))
    if not ids:
        raise PromptLabError("Pick two or more experiments to compare.")
    records = {r.id: r for r in queries.list_experiments(session=session, ids=ids)}
    missing = [str(i) for i in ids if i not in records]
    if missing:
        raise PromptLabError(
            f"Experiment {', '.join(missing)} no longer exists; pick from the experiments list."
            if len(missing) == 1
            else f"Experiments {', '.join(missing)} no longer exist; pick from the list."
        )
    named = queries.version_labels(session=session, experiment_ids=ids)
    return [_variant(session, records[i], named.get(i)) for i in ids]


def _variant(session: Session, record: ExperimentRecord, version: str | None) -> Variant:
    scores, n_scored = _scores(session, record)
    return Variant(
        *(record.id, record.label or "", record.status, record.dataset_name, record.model_id),
        *(dict(record.spec or {}), scores, n_scored, record.n_done, record.n_examples),
        tuple(record.example_keys or ()),
        version,
    )


def _scores(session: Session, record: ExperimentRecord) -> tuple[dict[str, dict[str, float]], int]:
    """The stored aggregates of a completed run, per metric; a partial run has none stored (they
    are written on completion), so its means and CIs come from the results it has, the same way."""
    stored = record.aggregates or {}
    if record.status == "completed" and any(is_score(v) for v in stored.values()):
        scores = {name: dict(value) for name, value in stored.items() if is_score(value)}
        return scores, int(stored.get("n_scored", stored.get("n", 0)))
    names = [*ROUGE_COLUMNS, *queries.metrics_stored(session=session, experiment_ids=[record.id])]
    scores, n_scored = {}, 0
    for name in names:
        present = queries.scores_by_key(session=session, experiment_id=record.id, metric=name)
        if present:
            scores[name] = summarise(name, list(present.values()))
            n_scored = max(n_scored, len(present))
    return scores, n_scored


def is_score(value: Any) -> bool:
    """Whether an entry of stored aggregates is a metric's summary (a dict with a mean)."""
    return isinstance(value, dict) and "mean" in value and "ci_low" in value


def summarise(metric: str, values: Sequence[float]) -> dict[str, float]:
    """A metric's mean and 95% CI: a pass rate with its Wilson interval for a check, else the
    mean with a seeded percentile bootstrap."""
    if metric_set.info(metric).pass_fail:
        rate = pass_rates.pass_rate(values)
        return {"mean": rate.rate, "ci_low": rate.ci_low, "ci_high": rate.ci_high, "n": rate.n}
    return asdict(mean_bootstrap_ci(values)) | {"n": len(values)}


# Settings and scores ---------------------------------------------------------------------------


def flat_spec(spec: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested spec as dotted names ('design.shots'); lists as JSON text, to compare and show."""
    flat: dict[str, Any] = {}
    for name, value in spec.items():
        if isinstance(value, dict):
            flat |= flat_spec(value, f"{prefix}{name}.")
        elif isinstance(value, list | tuple):
            flat[prefix + name] = json.dumps(list(value), ensure_ascii=False)
        else:
            flat[prefix + name] = value
    return flat


def differing_keys(variants: Sequence[Variant]) -> list[str]:
    """Dotted names of the spec values that are not the same in every variant, in spec order."""
    flats = [flat_spec(v.spec) for v in variants]
    names = dict.fromkeys(name for flat in flats for name in flat)
    # JSON text as the identity, so that 1 and True (equal in Python) count as different.
    return [
        name
        for name in names
        if name not in NOT_SETTINGS
        and len({json.dumps(flat.get(name), default=str) for flat in flats}) > 1
    ]


def differing_settings(variants: Sequence[Variant]) -> pd.DataFrame:
    """One row per variant: its id and name, and only the settings that differ between them."""
    keys = differing_keys(variants)
    rows = []
    for variant in variants:
        flat = flat_spec(variant.spec)
        rows.append({"id": variant.id, "variant": variant.name} | {k: flat.get(k) for k in keys})
    frame = pd.DataFrame(rows, columns=["id", "variant", *keys])
    for name in keys:  # a column of mixed types (a model id beside None, 3 beside "x"): as text
        if len({type(v) for v in frame[name] if v is not None}) > 1:
            frame[name] = [None if v is None else str(v) for v in frame[name]]
    return frame


def rouge_table(variants: Sequence[Variant]) -> pd.DataFrame:
    """One row per (variant, ROUGE type): mean F-measure, 95% CI and how many examples count."""
    rows = [
        {"id": v.id, "variant": v.name, "rouge_type": name}
        | {s: v.scores[name][s] for s in STATS}
        | {"n": v.n_scored}
        for v in variants
        for name in ROUGE_COLUMNS
        if name in v.scores
    ]
    return pd.DataFrame(rows, columns=["id", "variant", "rouge_type", *STATS, "n"])


def metrics_of(variants: Sequence[Variant]) -> list[str]:
    """Every metric any variant has scores on: ROUGE's types first, then the others by name."""
    found = {name for v in variants for name in v.scores}
    others = sorted(found - set(ROUGE_COLUMNS))
    return [name for name in ROUGE_COLUMNS if name in found] + others


def metric_table(variants: Sequence[Variant], metric: str) -> pd.DataFrame:
    """One row per variant scored on `metric`: its mean, 95% CI, how many examples count, and
    the corpus-level score where the metric has one (BLEU, chrF)."""
    rows = [
        {"id": v.id, "variant": v.name, "metric": metric}
        | {s: v.scores[metric][s] for s in STATS}
        | {"n": v.scores[metric].get("n", v.n_scored), "corpus": v.scores[metric].get("corpus")}
        for v in variants
        if metric in v.scores
    ]
    return pd.DataFrame(rows, columns=["id", "variant", "metric", *STATS, "n", "corpus"])


def summary(variants: Sequence[Variant]) -> pd.DataFrame:
    """The differing settings beside status, progress and each metric's mean and CI (ROUGE's
    four types always, then every other metric a variant has, with corpus-level scores)."""
    frame = differing_settings(variants)
    at = 2
    if any(v.prompt_version for v in variants):  # which saved version each ran, if any did
        frame.insert(at, "prompt version", [v.prompt_version or "" for v in variants])
        at += 1
    frame.insert(at, "status", [v.status for v in variants])
    frame.insert(at + 1, "done", [f"{v.n_done}/{v.n_examples}" for v in variants])
    for name in [*ROUGE_COLUMNS, *(m for m in metrics_of(variants) if m not in ROUGE_COLUMNS)]:
        for stat in STATS:
            column = name if stat == "mean" else f"{name} {stat}"
            frame[column] = [v.scores.get(name, {}).get(stat) for v in variants]
        if any("corpus" in v.scores.get(name, {}) for v in variants):
            frame[f"{name} corpus"] = [v.scores.get(name, {}).get("corpus") for v in variants]
    return frame


def shots_curve(variants: Sequence[Variant]) -> pd.DataFrame:
    """ROUGE against the number of shots, empty unless shots take two or more values. Any other
    setting that differs splits the points into series (one line each), named by those values."""
    keys = differing_keys(variants)
    if SHOTS not in keys:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    others = [k for k in keys if k != SHOTS]
    rows = []
    for variant in variants:
        flat = flat_spec(variant.spec)
        series = ", ".join(f"{k.split('.')[-1]}={_short(flat.get(k))}" for k in others) or "all"
        for name, stats in variant.scores.items():
            rows.append([series, flat.get(SHOTS), name, *(stats[s] for s in STATS), variant.id])
    frame = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    return frame.sort_values(["series", "rouge_type", "shots"], kind="stable", ignore_index=True)


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 30 else text[:29] + "…"


# Charts ----------------------------------------------------------------------------------------


# Example by example ----------------------------------------------------------------------------


def per_example(
    *,
    session: Session,
    experiment_ids: Sequence[int],
    metric: str = "rougeL",
    order: Order = "disagreement",
) -> pd.DataFrame:
    """One row per example: key, input, reference, each experiment's output and `metric`
    (`e{id} output`, `e{id} {metric}`) and the spread (max − min of those scores, over two or
    more); by default the examples on which the experiments disagree most come first."""
    metric_set.info(metric)  # an unknown metric is refused by name
    variants = load_variants(session=session, experiment_ids=experiment_ids)
    if len(variants) < 2:
        raise PromptLabError("Pick at least two experiments to set their outputs side by side.")
    require_same_examples(variants)
    ids = [v.id for v in variants]
    wide = export.wide_table(session=session, experiment_ids=ids, metrics=[metric])
    unscored = [
        str(i) for i in ids if f"e{i} {metric}" not in wide or wide[f"e{i} {metric}"].isna().all()
    ]
    if unscored:
        raise PromptLabError(
            f"{numbered(unscored)} no {metric_label(metric)} scores; score it "
            "again with that metric (python -m core rescore ID --metrics …, or Experiments)."
        )
    scores = wide[[f"e{i} {metric}" for i in ids]].astype(float)
    spread = scores.max(axis=1) - scores.min(axis=1)
    inputs = _inputs(session, variants[0].dataset, list(wide["example_key"]))
    columns = [c for i in ids for c in (f"e{i} output", f"e{i} {metric}")]
    frame = wide[["example_key", "reference", *columns]].assign(
        spread=spread.where(scores.notna().sum(axis=1) >= 2)
    )
    frame.insert(1, "input", frame["example_key"].map(inputs))
    return ordered(frame, order)


def ordered(frame: pd.DataFrame, order: Order) -> pd.DataFrame:
    """Rows by spread (largest or smallest first, unscored last) or as the dataset has them."""
    if order == "dataset":
        return frame.reset_index(drop=True)
    if order not in ("disagreement", "agreement"):
        raise PromptLabError(f"order must be disagreement, agreement or dataset; got '{order}'.")
    ascending = order == "agreement"
    return frame.sort_values(
        "spread", ascending=ascending, na_position="last", kind="stable", ignore_index=True
    )


def require_same_examples(variants: Sequence[Variant]) -> None:
    first = variants[0]
    for other in variants[1:]:
        if other.dataset != first.dataset or set(other.example_keys) != set(first.example_keys):
            raise PromptLabError(
                f"Experiments {first.id} and {other.id} were evaluated on different examples "
                f"({len(first.example_keys)} and {len(other.example_keys)} examples"
                f"{'' if other.dataset == first.dataset else ', from different datasets'}), so "
                "their outputs cannot be set side by side. Compare experiments of one study, "
                "or re-run one of them on the other's examples."
            )


def _inputs(session: Session, dataset: str, keys: list[str]) -> dict[str, str]:
    """Each example's input; an example since deleted from its dataset has none."""
    rows = session.execute(
        select(ExampleRecord.key, ExampleRecord.input)
        .join(DatasetRecord)
        .where(DatasetRecord.name == dataset, ExampleRecord.key.in_(keys))
    )
    return dict(rows.all())


def csv_name(experiment_ids: Sequence[int], table: str) -> str:
    """A download's file name, e.g. compare-e3-e4-e5-summary.csv."""
    ids = list(dict.fromkeys(experiment_ids))
    which = "-".join(f"e{i}" for i in ids) if len(ids) <= 6 else f"{len(ids)}-experiments"
    return f"compare-{which}-{table}.csv"


def numbered(ids: Sequence[str]) -> str:
    """'Experiment 3 has' or 'Experiments 3, 4 have'."""
    if len(ids) == 1:
        return f"Experiment {ids[0]} has"
    return f"Experiments {', '.join(ids)} have"
