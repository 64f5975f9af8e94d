"""Choosing what scores the outputs: metrics from the registry (an operator's own among them)
and pass/fail checks typed one a line, for a new run and for scoring stored ones again; and the
metric a comparison looks at."""

import streamlit as st

from core.errors import PromptLabError
from core.evaluation import compare, custom_metrics, metric_set
from core.evaluation.checks import Check, checks_from, parse_check
from core.evaluation.compare import Variant
from core.evaluation.wording import metric_label
from storage.queries import ROUGE_COLUMNS
from ui.feedback import plain
from ui.state import kept, key

CHECKS_HELP = (
    "Per example pass or fail, named by you, one a line as NAME=KIND:VALUE. KIND: equals, "
    "contains and starts_with compare text (case-sensitive, the answer trimmed), regex searches "
    "for a pattern, max_words counts words, json (no value) asks for valid JSON; 'not KIND' "
    "turns a check around. Each gets a pass rate, compared with McNemar's exact test."
)


def metric_inputs(page: str, *, defaults: tuple[str, ...] = ("rouge",)) -> tuple[str, ...]:
    """The metrics chosen, from every one the registry offers."""
    offered = metric_set.available()
    widget = key(page, "metrics")
    if widget not in st.session_state:
        st.session_state[widget] = [m for m in defaults if m in offered]
    else:  # an operator's metric since taken away is dropped, not an error
        st.session_state[widget] = [m for m in st.session_state[widget] if m in offered]
    chosen = st.multiselect(
        "Metrics",
        list(offered),
        **kept(page, "metrics"),
        help="; ".join(f"{m.name}: {m.summary}" for m in offered.values()),
    )
    for problem in custom_metrics.problems():
        st.caption(f"Not offered: {plain(problem)}")
    return tuple(chosen)


def check_inputs(page: str) -> tuple[Check, ...]:
    """The checks typed, one a line as NAME=KIND:VALUE; a bad line is refused with its number."""
    text = st.text_area(
        "Checks (optional, one a line)",
        **kept(page, "checks"),
        placeholder="short=max_words:40\nplain=not regex:^#Person\\d#:",
        help=CHECKS_HELP,
        height=100,
    )
    return checks_of(text)


def checks_of(text: str) -> tuple[Check, ...]:
    """The checks of the text's lines (blank lines skipped), each name once."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            found.append(parse_check(line.strip()))
        except PromptLabError as exc:
            raise PromptLabError(f"Checks, line {number}: {exc}") from None
    return checks_from(found)


def fill(page: str, metrics: tuple[str, ...], checks: tuple[Check, ...]) -> None:
    """Pre-fill the inputs with a stored run's metrics and checks."""
    st.session_state[key(page, "metrics")] = list(metrics)
    st.session_state[key(page, "checks")] = "\n".join(written(c) for c in checks)


def written(check: Check) -> str:
    """A check as it is typed: 'short=max_words:40', 'plain=not regex:^#'."""
    value = f":{check.value}" if check.value or check.kind != "json" else ""
    return f"{check.name}={'not ' if check.negate else ''}{check.kind}{value}"


def metric_choice(variants: list[Variant], label: str, name: str, column=st) -> str:
    """A Compare page selectbox of every metric the variants have (ROUGE-L first chosen)."""
    offered = compare.metrics_of(variants) or list(ROUGE_COLUMNS)
    widget = key("compare", name)
    if st.session_state.get(widget) not in offered:
        st.session_state.pop(widget, None)
    return column.selectbox(
        label,
        offered,
        index=offered.index("rougeL") if "rougeL" in offered else 0,
        format_func=metric_label,
        key=widget,
        persist_state="session",
    )
