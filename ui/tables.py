"""A table with its CSV download, written by the same rules as the command-line export."""

import pandas as pd
import streamlit as st

from core.export import to_csv_bytes


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
