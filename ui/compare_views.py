"""The Compare page's sections: picking experiments or a study, the settings that differ with
ROUGE and its charts, the verdicts, the downloads, and the examples on which they disagree."""

import pandas as pd
import streamlit as st

from core.errors import PromptLabError
from core.evaluation import compare, verdicts, word_diff
from core.evaluation.compare import Choice, Variant
from storage.db import session_scope
from storage.queries import ROUGE_COLUMNS
from ui import charts
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
def figures(stored: Key, _variants: list[Variant]) -> tuple:
    """ROUGE by variant, and against shots unless the verdicts draw that curve (else None)."""
    rouge = charts.rouge_figure(compare.rouge_table(_variants))
    curve = compare.shots_curve(_variants)
    shown = not curve.empty and not verdicts.shots_series(_variants)  # else the verdicts draw it
    return rouge, charts.shots_figure(curve) if shown else None


def show_summary(variants: list[Variant], stored: Key) -> None:
    """The settings that differ, ROUGE with its intervals, and the charts."""
    st.subheader("Settings that differ, and ROUGE")
    table = compare.summary(variants)
    if not compare.differing_keys(variants):
        st.caption("Their settings are all the same: these are repeated runs.")
    st.dataframe(table, hide_index=True, column_config=SCORE_FORMAT)
    st.caption(
        "ROUGE: mean F-measure over the scored examples, with its 95% percentile-bootstrap "
        "confidence interval (ci_low to ci_high)."
    )
    rouge, shots = figures(stored, variants)
    st.plotly_chart(rouge)
    if shots is not None:
        st.subheader("ROUGE against the number of shots")
        st.plotly_chart(shots)


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


def show_examples(variants: list[Variant], stored: Key) -> None:
    """The per-example table and its controls, then the examples one by one."""
    st.subheader("Example by example")
    left, middle, right = st.columns(3)
    metric = left.selectbox("Score", ROUGE_COLUMNS, index=2, **kept("compare", "metric"))
    order = middle.selectbox(
        "Order", list(ORDERS), format_func=ORDERS.get, **kept("compare", "order")
    )
    against = right.radio("Mark the words that differ from", AGAINST, **kept("compare", "vs"))
    try:
        frame = examples_table(stored, metric, order)
    except PromptLabError as exc:  # e.g. different examples: the summary above still holds
        st.warning(str(exc))
        return
    st.dataframe(
        frame, hide_index=True, column_config=SCORE_FORMAT | {"spread": SCORE_FORMAT[metric]}
    )
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


def show_example(
    row: pd.Series, variants: list[Variant], metric: str, vs_reference: bool, side: str
) -> None:
    """One example: its input, reference, and each output with the words that differ marked."""
    with st.container(border=True):
        spread = "—" if pd.isna(row["spread"]) else f"{row['spread']:.3f}"
        st.text(f"Example {row['example_key']}    {metric} spread {spread}")
        with st.expander("Input"):
            st.text(text_of(row["input"]))
        st.caption("Reference")
        st.text(text_of(row["reference"]))
        base = text_of(row["reference"] if vs_reference else row[f"e{variants[0].id} output"])
        for column, variant in zip(st.columns(len(variants)), variants, strict=True):
            score = row[f"e{variant.id} {metric}"]
            column.text(f"{variant.name}\n{metric} {'—' if pd.isna(score) else f'{score:.3f}'}")
            output = text_of(row[f"e{variant.id} output"])
            column.html(word_diff.diff_html(word_diff.word_diff(base, output), side=side))


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
    """The summary, the verdicts, the downloads and the examples of comparable experiments."""
    show_summary(variants, stored)
    try:
        show_verdicts(variants, stored)
    except PromptLabError as exc:  # e.g. different examples: the summary above still holds
        st.warning(plain(str(exc)))
    show_downloads(stored)
    show_examples(variants, stored)
