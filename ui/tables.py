"""Tables for the pages: stored experiments' tables built once per revision of what they read
(st.cache_data), and CSV files written only when someone downloads one, by the same rules as
the command-line export."""

import functools
from collections.abc import Callable, Sequence

import pandas as pd
import streamlit as st

from core.reporting import export
from core.reporting.export import to_csv_bytes
from storage.db import database_url, session_scope

TABLES: dict[str, Callable[..., pd.DataFrame]] = {
    "summary": export.summary_table,
    "per-example": export.per_example_table,
    "wide": export.wide_table,
}
Key = tuple[str, tuple[int, ...], tuple]  # the store's URL, the experiment ids, their revision


def stored_key(experiment_ids: Sequence[int]) -> Key:
    """What these experiments' tables are built from, now: equal keys, equal tables. One cheap
    read per rerun instead of rebuilding them; any write to them changes it."""
    url = database_url()
    ids = tuple(dict.fromkeys(int(i) for i in experiment_ids))
    with session_scope(url) as session:
        return url, ids, export.revision(session=session, experiment_ids=ids)


def csv_download(column, label: str, name: str, key: Key, file_name: str) -> None:
    """A download of one of TABLES as CSV; its file is written when clicked, from the store as
    it is then (so it is never older than the page), not on every rerun."""
    url, ids, _ = key
    column.download_button(
        label,
        functools.partial(_csv_now, name, url, ids),
        file_name=file_name,
        mime="text/csv",
        on_click="ignore",
        key=f"download-{file_name}",
    )


def _csv_now(name: str, url: str, ids: tuple[int, ...]) -> bytes:
    # Runs on Streamlit's download thread, outside any script run: no st.* calls in here.
    with session_scope(url) as session:
        return to_csv_bytes(TABLES[name](session=session, experiment_ids=list(ids)))


def table(frame: pd.DataFrame, filename: str) -> None:
    st.dataframe(frame, hide_index=True)
    st.download_button(
        "Download as CSV",
        to_csv_bytes(frame),
        file_name=filename,
        mime="text/csv",
        on_click="ignore",
        key=f"download-{filename}",
    )
