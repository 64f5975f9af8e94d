"""The Experiments page's list filters and the view of selected experiments: settings, scores,
per-example results, downloads, and the actions on them."""

from collections.abc import Sequence
from datetime import date

import pandas as pd
import pyarrow as pa
import streamlit as st

from core.datasets.data import Dataset
from core.errors import PromptLabError
from core.reporting import catalog, export
from core.runs import experiments, jobs
from storage import queries
from storage.db import database_url, session_scope
from storage.schema import STATUSES
from ui import identity, jobs_panel, rescore_views
from ui.feedback import plain
from ui.state import kept, key
from ui.tables import TABLES, Key, csv_download, stored_key

CLEAR = "experiments.clear_selection"


def list_filters(options: dict[str, list]) -> catalog.Filters:
    cols = st.columns(4)
    models = cols[0].multiselect("Model", options["models"], **kept("experiments", "f.models"))
    datasets = cols[1].multiselect(
        "Dataset", options["datasets"], **kept("experiments", "f.datasets")
    )
    studies = {sid: f"#{sid} {name}" for sid, name in options["studies"]}
    study = cols[2].selectbox(
        "Study",
        [None, *studies],
        format_func=lambda s: "any" if s is None else studies[s],
        **kept("experiments", "f.study"),
    )
    statuses = cols[3].multiselect("Status", STATUSES, **kept("experiments", "f.status"))
    cols = st.columns([1, 1, 1, 2])
    since = cols[0].date_input("From", value=None, **kept("experiments", "f.since"))
    until = cols[1].date_input("To", value=None, **kept("experiments", "f.until"))
    playground_runs = cols[2].toggle("Playground runs", **kept("experiments", "f.playground"))
    mine = identity.auth_configured() and cols[2].toggle(
        "Mine only", **kept("experiments", "f.mine")
    )
    text = cols[3].text_input("Label contains", **kept("experiments", "f.text"))
    return catalog.Filters(
        models=tuple(models),
        datasets=tuple(datasets),
        study_id=study,
        statuses=tuple(statuses),
        since=_day(since),
        until=_day(until),
        include_playground=playground_runs,
        text=text,
        created_by=identity.actor().name if mine else None,
    )


def _day(value: object) -> date | None:
    return value if isinstance(value, date) else None


def dataset(name: str) -> Dataset:
    """A stored dataset (the built-in one stored on first use), loaded again only when it
    changes."""
    url = database_url()
    with session_scope(url) as session:
        return _dataset(url, name, export.dataset_revision(session=session, names=[name]))


@st.cache_data(max_entries=8, show_spinner=False)
def _dataset(url: str, name: str, revision: tuple) -> Dataset:
    return experiments.get_dataset(name, db_url=url)


def found(filters: catalog.Filters) -> pd.DataFrame:
    """The stored experiments matching `filters`, rebuilt only when one of them changes."""
    url = database_url()
    with session_scope(url) as session:
        return _found(url, filters, export.revision(session=session, results=False))


@st.cache_data(max_entries=16, show_spinner=False)
def _found(url: str, filters: catalog.Filters, revision: tuple) -> pd.DataFrame:
    with session_scope(url) as session:
        return catalog.find(session=session, filters=filters)


def detail(chosen: Sequence[int], fill_key: str) -> None:
    """Actions and details for the selected experiments."""
    if not chosen:
        st.caption("Select experiments to open, compare, re-run, resume or delete them.")
        return
    ids = list(chosen)
    stored = stored_key(ids)  # read first: a table built later is at least as new as its key
    with session_scope() as session:
        records = queries.list_experiments(session=session, ids=ids)
    failed = {r.id: (r.aggregates or {}).get("n_failed", 0) for r in records}
    _actions(ids, {r.id: r.status for r in records}, failed, fill_key)
    _downloads(ids, stored)
    results = results_shown(stored)
    for record in sorted(records, key=lambda r: ids.index(r.id)):
        with st.expander(
            f"#{record.id} {record.label or ''} — {record.status}", expanded=len(chosen) == 1
        ):
            _one(record, results[record.id])


@st.cache_data(max_entries=16, show_spinner=False)
def results_shown(stored: Key) -> dict[int, pa.Table]:
    """Each experiment's per-example rows, built once per revision; as Arrow tables, which
    st.dataframe sends as they are, where it converts a DataFrame again on every rerun."""
    url, ids, _ = stored
    with session_scope(url) as session:
        frame = export.per_example_table(session=session, experiment_ids=ids)
    return {
        i: pa.Table.from_pandas(
            frame[frame["experiment_id"] == i].drop(columns=["experiment_id"]),
            preserve_index=False,
        )
        for i in ids
    }


def _actions(
    chosen: list[int], statuses: dict[int, str], failed: dict[int, int], fill_key: str
) -> None:
    cols = st.columns(7)
    if cols[0].button("Open in Compare", type="primary"):
        st.session_state["compare.ids"] = chosen
        st.switch_page("pages/compare.py")
    if cols[1].button("Re-run", help="Each again as a new experiment on the same examples."):
        for experiment_id in chosen:
            jobs_panel.remember(jobs.start_rerun(experiment_id, actor=identity.actor()))
        st.rerun()
    if cols[2].button(
        "Duplicate as new",
        disabled=len(chosen) != 1,
        help="Fill the run form with this experiment's settings.",
    ):
        st.session_state[fill_key] = experiments.stored_spec(chosen[0])
        st.rerun()
    resumable = [i for i in chosen if statuses.get(i) in ("pending", "interrupted", "failed")]
    if cols[3].button(
        "Resume",
        disabled=not resumable,
        help="Finish pending, interrupted or failed ones; finished examples stay.",
    ):
        jobs_panel.remember(jobs.start_resume(resumable, actor=identity.actor()))
        st.rerun()
    retryable = [i for i in chosen if failed.get(i) and statuses.get(i) != "running"]
    if cols[4].button(
        "Retry failed",
        disabled=not retryable,
        help="Run the examples that failed (e.g. a served endpoint's errors) again; the others "
        "stay as they are.",
    ):
        jobs_panel.remember(jobs.start_retry(retryable, actor=identity.actor()))
        st.rerun()
    rescore_views.rescore_popover(cols[6], chosen, statuses)
    with cols[5].popover("Delete…"):
        sure = st.checkbox(f"Yes, delete {len(chosen)} experiment(s) and all their results")
        delete = st.button("Delete for good", disabled=not sure)
    if delete:
        try:  # a running one is refused whole: its worker would lose its rows
            removed = jobs.delete_experiments(chosen, actor=identity.actor())
        except PromptLabError as exc:
            st.error(plain(str(exc)))
            return
        st.session_state[CLEAR] = f"Deleted {removed} experiment(s)."
        st.rerun()


def _downloads(chosen: list[int], stored: Key) -> None:
    stem = "experiments-" + "-".join(map(str, chosen[:6]))
    for col, name in zip(st.columns(len(TABLES)), TABLES, strict=True):
        csv_download(col, f"{name.capitalize()} CSV", name, stored, f"{stem}-{name}.csv")


def _one(record, results: pa.Table) -> None:
    left, right = st.columns(2)
    with left:
        if record.backend == "served":
            where = f"served by {record.endpoint}, prompts in {record.model_id}'s format"
        elif record.backend == "llama.cpp":
            where = f"{record.model_id} on {record.endpoint or 'llama.cpp (local)'}"
        else:
            where = f"{record.model_id} on {record.device or '?'} ({record.dtype or '?'})"
        failed = (record.aggregates or {}).get("n_failed")
        failures = f" · {failed} failed" if failed else ""
        copied = (record.aggregates or {}).get("n_copied")
        if copied:  # answers another experiment of its study generated for the same prompt
            failures += f" · {copied} copied from identical prompts"
        st.caption(
            plain(
                f"{record.dataset_name} · {record.n_done}/{record.n_examples} examples"
                f"{failures} · {where}"
            )
        )
        if record.error:
            st.error(f"Stopped with: {plain(record.error)}")
        st.json(record.spec, expanded=False)
    with right:
        rows = [
            (n, a["mean"], a["ci_low"], a["ci_high"])
            for n, a in record.aggregates.items()
            if isinstance(a, dict) and "mean" in a
        ]
        if rows:  # as Arrow: a DataFrame would be converted to it on each rerun
            columns = ("Score", "mean", "95% CI low", "high")
            table = pa.table({name: [row[i] for row in rows] for i, name in enumerate(columns)})
            st.dataframe(table, hide_index=True)
        else:
            st.caption("No scores yet.")
    st.dataframe(results, hide_index=True)


def show_done() -> None:
    """The message an action on selected experiments left, once, with the selection cleared."""
    if (done_message := st.session_state.pop(CLEAR, None)) is not None:
        st.session_state[key("experiments", "selected")] = []
        st.success(done_message)


def stored_list(fill_key: str) -> None:
    """The Stored experiments tab: the filters, the experiments found, and those selected."""
    with session_scope() as session:
        filters = list_filters(catalog.options(session=session))
    table = found(filters)
    if table.empty:
        st.info("No stored experiments match. Start one in the other tab, or widen the filters.")
        return
    shown = table[[c for c in catalog.SHOWN if c in table.columns]]
    st.dataframe(
        shown,
        hide_index=True,
        column_config={
            "rougeL": st.column_config.NumberColumn(format="%.4f"),
            "rougeL_ci_low": st.column_config.NumberColumn("CI low", format="%.4f"),
            "rougeL_ci_high": st.column_config.NumberColumn("CI high", format="%.4f"),
            "tokens_per_s": st.column_config.NumberColumn(
                "tok/s",
                format="%.1f",
                help="New tokens over the wall time from start to finish (loading and scoring "
                "included).",
            ),
            "created_by": st.column_config.TextColumn("By"),
        },
    )
    labels = dict(zip(table["id"].tolist(), table["label"].fillna(""), strict=True))
    picked = key("experiments", "selected")
    st.session_state[picked] = [i for i in st.session_state.get(picked, []) if i in labels]
    chosen = st.multiselect(
        "Selected experiments",
        list(labels),
        **kept("experiments", "selected"),
        format_func=lambda i: f"#{i} {labels[i]}".strip(),
    )
    detail(chosen, fill_key)
