"""The Compare page's sections: picking experiments or a study, the settings that differ with
ROUGE and its charts, the verdicts, the downloads, and the examples on which they disagree."""

import pandas as pd
import streamlit as st

from core.errors import PromptLabError
from core.evaluation import baseline as base
from core.evaluation import compare, metric_set, verdicts, word_diff
from core.evaluation.compare import Choice, Variant
from core.evaluation.wording import metric_label
from storage.db import session_scope
from storage.queries import ROUGE_COLUMNS
from ui import charts, judgement_views, metric_inputs
from ui.feedback import plain
from ui.state import kept, key
from ui.tables import Key, csv_download, stored_key
from ui.verdict_views import show_verdicts

SENT = "compare.ids"  # the Experiments page puts ids here before switching to this page
MODES = ("Experiments", "A study")
ORDERS = {
    "disagreement": "Largest score difference first",
    "agreement": "Smallest score difference first",
    "dataset": "Dataset order",
}
AGAINST = ("the reference", "the first experiment's output")
DOWNLOADS = {"summary": "summary", "per-example": "per-example", "side-by-side": "wide"}
SCORE_FORMAT = {
    name: st.column_config.NumberColumn(format="%.3f")
    for name in [
        *ROUGE_COLUMNS,
        *(f"{t} {s}" for t in ROUGE_COLUMNS for s in ("ci_low", "ci_high")),
    ]
}
NO_BASELINE = 0  # the baseline picker's "none"
ROUGE_CHART = "ROUGE (all four types)"


def pick_experiments() -> list[int]:
    """The ids chosen, one by one or as a study; ids that no longer exist are left out."""
    with session_scope() as session:
        choices = {c.id: c for c in compare.list_choices(session=session)}
        studies = {s.id: s for s in compare.list_studies(session=session)}
    receive_sent_ids(choices)
    mode = st.radio("Compare", MODES, horizontal=True, **kept("compare", "mode"))
    if mode == "A study":
        return pick_study(studies, choices)
    chosen = key("compare", "ids")
    forget_missing(chosen, choices)
    return st.multiselect(
        "Experiments (two or more)",
        list(choices),
        format_func=lambda i: choices[i].describe(),
        key=chosen,
        persist_state="session",
        placeholder="Pick experiments",
    )


def receive_sent_ids(choices: dict[int, Choice]) -> None:
    """Take the ids the Experiments page sent, as a choice of experiments one by one."""
    sent = st.session_state.pop(SENT, None)
    if sent is None:
        return
    st.session_state[key("compare", "mode")] = MODES[0]
    st.session_state[key("compare", "ids")] = list(dict.fromkeys(int(i) for i in sent))
    forget_missing(key("compare", "ids"), choices)


def forget_missing(widget: str, choices: dict[int, Choice]) -> None:
    """Drop ids deleted since they were chosen: a multiselect refuses values it does not list."""
    held = st.session_state.get(widget) or []
    gone = [str(i) for i in held if i not in choices]
    if gone:
        st.session_state[widget] = [i for i in held if i in choices]
        st.warning(f"Experiment(s) {', '.join(gone)} no longer exist and were left out.")


def pick_study(studies: dict, choices: dict[int, Choice]) -> list[int]:
    """The study chosen, its members listed; their ids, or [] when there is no study."""
    if not studies:
        st.info("There are no studies yet: a sweep (several values for an option) makes one.")
        return []
    widget = key("compare", "study")
    if st.session_state.get(widget) not in studies:
        st.session_state.pop(widget, None)
    study_id = st.selectbox(
        "Study",
        list(studies),
        format_func=lambda i: studies[i].describe(),
        key=widget,
        persist_state="session",
    )
    members = sorted((c for c in choices.values() if c.study_id == study_id), key=lambda c: c.id)
    st.dataframe(
        pd.DataFrame(
            [(c.id, c.label, c.status, f"{c.n_done}/{c.n_examples}") for c in members],
            columns=["id", "label", "status", "done"],
        ),
        hide_index=True,
    )
    return [c.id for c in members]


@st.cache_data(max_entries=16, show_spinner=False)
def stored_variants(stored: Key) -> list[Variant]:
    """The stored experiments of `stored`, with their scores, read once per revision."""
    url, ids, _ = stored
    with session_scope(url) as session:
        return compare.load_variants(session=session, experiment_ids=ids)


def comparable(stored: Key) -> list[Variant]:
    """The chosen experiments that have scored results, or [] after saying what is missing."""
    if not stored[1]:
        st.info("Pick two or more experiments, or a study, to compare.")
        return []
    variants = stored_variants(stored)
    unscored = [v for v in variants if not v.scores]
    if unscored:
        listed = ", ".join(f"{v.id} ({v.status}, {v.n_done}/{v.n_examples} done)" for v in unscored)
        st.warning(f"Left out, with no scored results yet: experiment {listed}.")
    usable = [v for v in variants if v.scores]
    if len(usable) < 2:
        st.info("A comparison needs two or more experiments with results; pick another.")
        return []
    partial = [str(v.id) for v in usable if v.status != "completed"]
    if partial:
        st.info(
            f"Experiment {', '.join(partial)} has not finished: its ROUGE is over the examples "
            "done so far."
        )
    return usable


def only(stored: Key, variants: list[Variant]) -> Key:
    """The key of these variants' tables: their revision is part of the one read for all."""
    return stored[0], tuple(v.id for v in variants), stored[2]


# A resource, not data: a Figure comes back from a pickle by validating each property again,
# which takes as long as drawing it; st.plotly_chart only reads it.
@st.cache_resource(max_entries=16, show_spinner=False)
def figures(stored: Key, _variants: list[Variant], metric: str | None = None) -> tuple:
    """ROUGE (or `metric`) by variant, and against shots unless the verdicts draw that curve
    (else None)."""
    if metric is None:
        bars = charts.rouge_figure(compare.rouge_table(_variants))
    else:
        bars = charts.metric_figure(compare.metric_table(_variants, metric), metric_label(metric))
    curve = compare.shots_curve(_variants)
    wanted = list(ROUGE_COLUMNS) if metric is None else [metric]
    curve = curve[curve["rouge_type"].isin(wanted)]
    shown = not curve.empty and not verdicts.shots_series(_variants)  # else the verdicts draw it
    return bars, charts.shots_figure(curve) if shown else None


def pin_baseline(variants: list[Variant]) -> int | None:
    """The experiment pinned as the baseline, or None."""
    ids = [NO_BASELINE, *(v.id for v in variants)]
    names = {v.id: v.name for v in variants} | {NO_BASELINE: "none"}
    widget = key("compare", "baseline")
    if st.session_state.get(widget) not in ids:  # one since left out of the comparison
        st.session_state.pop(widget, None)
    chosen = st.selectbox(
        "Baseline",
        ids,
        format_func=names.get,
        key=widget,
        persist_state="session",
        help="Pin one experiment: the others are shown as their difference from it, the "
        "verdicts test each against it, and the examples can be narrowed to what got worse.",
    )
    return None if chosen == NO_BASELINE else chosen


def show_summary(variants: list[Variant], stored: Key, baseline: int | None = None) -> None:
    """The settings that differ, every metric with its intervals, the difference from the
    baseline, and the charts."""
    st.subheader("Settings that differ, and the scores")
    table = compare.summary(variants)
    if not compare.differing_keys(variants):
        st.caption("Their settings are all the same: these are repeated runs.")
    st.dataframe(table, hide_index=True, column_config=score_format(table.columns))
    st.caption(
        "Each score: the mean over the scored examples with its 95% confidence interval "
        "(ci_low to ci_high): a percentile bootstrap, or for a check (check:NAME) the pass rate "
        "with a Wilson interval. ROUGE is the F-measure; BLEU and chrF (0–100, sacrebleu) are "
        "the mean of sentence scores, and their corpus-level score is the corpus column."
    )
    if baseline is not None:
        name = next(v.name for v in variants if v.id == baseline)
        st.markdown(f"**Difference from the baseline, {plain(name)}** (variant − baseline)")
        shown = base.differences(variants, baseline)
        st.dataframe(shown, hide_index=True, column_config=score_format(shown.columns))
    chart = ROUGE_CHART
    others = [m for m in compare.metrics_of(variants) if m not in ROUGE_COLUMNS]
    if others:
        chart = st.selectbox(
            "Chart", [ROUGE_CHART, *others], format_func=_chart_name, **kept("compare", "chart")
        )
    rouge, shots = figures(stored, variants, None if chart == ROUGE_CHART else chart)
    st.plotly_chart(rouge)
    if shots is not None:
        st.subheader(f"{_chart_name(chart).split(' (')[0]} against the number of shots")
        st.plotly_chart(shots)


def _chart_name(metric: str) -> str:
    return metric if metric == ROUGE_CHART else metric_label(metric)


def score_format(columns) -> dict:
    """Three decimals for every score column of a table."""
    return {c: st.column_config.NumberColumn(format="%.3f") for c in columns if _is_score(c)}


def _is_score(column: str) -> bool:
    first = column.removeprefix("Δ ").split(" ")[0]
    return (
        column in ("spread", "worse by")
        or column.startswith("Δ ")
        or first in metric_set.SCORES  # ROUGE's types and every built-in score
        or ":" in first
    )


def show_downloads(stored: Key) -> None:
    """The CSV downloads of the comparison, side by side."""
    ids = stored[1]
    for column, (name, table) in zip(st.columns(len(DOWNLOADS)), DOWNLOADS.items(), strict=True):
        file_name = compare.csv_name(ids, name)
        csv_download(column, f"Download {name} CSV", table, stored, file_name)


@st.cache_data(max_entries=16, show_spinner=False)
def examples_table(stored: Key, metric: str, order: str) -> pd.DataFrame:
    """The per-example table of `stored`, in the order asked for, read once per revision."""
    url, ids, _ = stored
    with session_scope(url) as session:
        return compare.per_example(session=session, experiment_ids=ids, metric=metric, order=order)


def show_examples(variants: list[Variant], stored: Key, baseline: int | None = None) -> None:
    """The per-example table and its controls (with the baseline, "what got worse"), then the
    examples one by one."""
    st.subheader("Example by example")
    left, middle, right = st.columns(3)
    metric = metric_inputs.metric_choice(variants, "Score", "metric", left)
    order = middle.selectbox(
        "Order", list(ORDERS), format_func=ORDERS.get, **kept("compare", "order")
    )
    against = right.radio("Mark the words that differ from", AGAINST, **kept("compare", "vs"))
    try:
        frame = examples_table(stored, metric, order)
    except PromptLabError as exc:  # e.g. different examples: the summary above still holds
        st.warning(plain(str(exc)))
        return
    if baseline is not None:
        frame = worse_only(frame, stored, baseline, metric)
        if frame.empty:
            return
    st.dataframe(frame, hide_index=True, column_config=score_format(frame.columns))
    shown = key("compare", "count")
    if st.session_state.get(shown, 0) > len(frame):  # kept from a larger selection
        st.session_state[shown] = len(frame)
    count = st.number_input(
        "Examples shown below",
        1,
        len(frame),
        min(5, len(frame)),
        key=shown,
        persist_state="session",
    )
    missed = st.toggle(
        "Also show the words it left out (struck through)", **kept("compare", "missed")
    )
    for _, row in frame.head(int(count)).iterrows():
        show_example(row, variants, metric, against == AGAINST[0], "both" if missed else "b")


def worse_only(frame: pd.DataFrame, stored: Key, baseline: int, metric: str) -> pd.DataFrame:
    """The examples' table, narrowed (when asked) to those on which a variant does worse than
    the baseline by more than the margin."""
    left, right = st.columns(2)
    narrowed = left.toggle("Only what got worse than the baseline", **kept("compare", "worse"))
    margin = right.number_input(
        f"by more than ({metric_label(metric)})",
        min_value=0.0,
        value=0.05 if metric_set.info(metric).high in (1.0, None) else 5.0,
        step=0.01,
        format="%.3f",
        **kept("compare", f"margin.{metric}"),
        disabled=not narrowed,
    )
    if not narrowed:
        return frame
    found = base.regressions(frame, list(stored[1]), baseline, metric, float(margin))
    direction = metric_set.info(metric).higher_is_better
    how = "lower" if direction else "higher" if direction is False else "different either way"
    st.caption(
        f"{len(found)} of {len(frame)} examples where a variant scores {how} than the baseline "
        f"on {metric_label(metric)} by more than {margin:g}; the largest drop first."
    )
    if found.empty:
        st.info("No variant does worse than the baseline by more than that on any example.")
    return found


def show_example(
    row: pd.Series,
    variants: list[Variant],
    metric: str,
    vs_reference: bool,
    side: str,
    rate: bool = True,
) -> None:
    """One example: its input, reference, and each output with the words that differ marked
    (and, if `rate`, the rating of each output by whoever is signed in)."""
    with st.container(border=True):
        spread = "—" if pd.isna(row["spread"]) else f"{row['spread']:.3f}"
        worse = (
            "" if "worse by" not in row else f"    worse than the baseline by {row['worse by']:.3f}"
        )
        st.text(f"Example {row['example_key']}    {metric} spread {spread}{worse}")
        with st.expander("Input"):
            st.text(text_of(row["input"]))
        st.caption("Reference")
        st.text(text_of(row["reference"]))
        against = text_of(row["reference"] if vs_reference else row[f"e{variants[0].id} output"])
        for column, variant in zip(st.columns(len(variants)), variants, strict=True):
            score = row[f"e{variant.id} {metric}"]
            column.text(f"{variant.name}\n{metric} {'—' if pd.isna(score) else f'{score:.3f}'}")
            output = text_of(row[f"e{variant.id} output"])
            column.html(word_diff.diff_html(word_diff.word_diff(against, output), side=side))
            if rate:
                with column:
                    judgement_views.rate_output(variant.id, str(row["example_key"]), "examples")


def text_of(value: object) -> str:
    """A table cell as text: empty for a missing value."""
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def chosen() -> tuple[Key, list[Variant]]:
    """The experiments picked, as the key their tables are read by, and those of them that
    can be compared ([] after saying why none can)."""
    # Read once a rerun; what is built from it is cached by it.
    stored = stored_key(pick_experiments())
    variants = comparable(stored)
    return (only(stored, variants) if variants else stored), variants


def comparison(variants: list[Variant], stored: Key) -> None:
    """The baseline, the summary, the verdicts, the downloads and the examples of comparable
    experiments."""
    baseline = pin_baseline(variants)
    show_summary(variants, stored, baseline)
    try:
        show_verdicts(variants, stored, baseline)
    except PromptLabError as exc:  # e.g. different examples: the summary above still holds
        st.warning(plain(str(exc)))
    show_downloads(stored)
    with st.container(key="compare-examples"):
        show_examples(variants, stored, baseline)
