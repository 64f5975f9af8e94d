"""The one safe way to write a table as CSV.

CSV safety. A spreadsheet program runs a cell that starts with `=`, `+`, `-` or `@` as a formula,
and a leading tab or carriage return can hide such a start; model outputs and prompts are
untrusted text, so every *text* cell (and header) starting with one of those six characters gets
a leading single quote `'` (the OWASP "CSV injection" rule). This changes the text of such cells
by that one leading quote; numbers stay numbers, so -0.5 is written as -0.5. Every text cell is
written in double quotes and rows end in CRLF (RFC 4180), so a cell holding a newline, a lone
carriage return, a comma or a quote reads back as one cell. (Python's csv writer under minimal
quoting leaves a lone CR unquoted when rows end in LF, and readers split the row there.)
"""

from __future__ import annotations

import io
import math
import os
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from core.errors import PromptLabError

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff".encode()
# pyarrow's writer is C++: 100,000 rows with their prompts in well under a second, where pandas'
# (Python's csv module) takes several. "needed" quotes every text cell, numbers never.
CSV_OPTIONS = pa_csv.WriteOptions(eol="\r\n", quoting_style="needed")


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy in which every text cell and header starting a formula has a leading `'`."""
    safe = frame.copy(deep=False)
    for position in range(frame.shape[1]):
        column = frame.iloc[:, position]
        if _never_text(column.dtype):
            continue
        if isinstance(column.dtype, pd.StringDtype):
            flagged = column.str.startswith(FORMULA_STARTS).fillna(False).astype(bool)
            if flagged.any():
                safe.isetitem(position, column.mask(flagged, "'" + column))
            continue
        # Anything else (object, categorical, Arrow types) is checked value by value.
        values = column.tolist()
        flagged = [isinstance(v, str) and v.startswith(FORMULA_STARTS) for v in values]
        if any(flagged):
            fixed = [f"'{v}" if hit else v for v, hit in zip(values, flagged, strict=True)]
            safe.isetitem(position, pd.Series(fixed, index=frame.index, dtype=object))
    safe.columns = [_defused(name) for name in frame.columns]
    return safe


def to_csv_bytes(frame: pd.DataFrame, *, bom: bool = False) -> bytes:
    """The frame as safe CSV in UTF-8, with a byte-order mark for spreadsheet programs if `bom`."""
    sink = pa.BufferOutputStream()
    _write(frame, sink, bom=bom)
    return sink.getvalue().to_pybytes()


def write_csv(
    frame: pd.DataFrame,
    path_or_buffer: str | os.PathLike[str] | IO[str] | IO[bytes],
    *,
    bom: bool = False,
) -> None:
    """Write the frame as safe CSV to a path, a binary buffer or a text buffer."""
    if isinstance(path_or_buffer, str | os.PathLike):
        try:
            sink = pa.OSFile(os.fspath(path_or_buffer), "wb")
        except OSError as exc:
            raise PromptLabError(
                f"Cannot write the CSV file {path_or_buffer}: {exc}. "
                "Check that its folder exists and is writable."
            ) from exc
        with sink:
            _write(frame, sink, bom=bom)
    elif _is_binary(path_or_buffer):
        _write(frame, path_or_buffer, bom=bom)
    else:
        path_or_buffer.write(to_csv_bytes(frame, bom=bom).decode("utf-8"))


def _defused(name: Any) -> Any:
    return f"'{name}" if isinstance(name, str) and name.startswith(FORMULA_STARTS) else name


def _write(frame: pd.DataFrame, sink: Any, *, bom: bool) -> None:
    if bom:
        sink.write(BOM)
    safe = neutralise_formulas(frame)
    arrays = [_arrow_column(safe.iloc[:, position]) for position in range(safe.shape[1])]
    if len(arrays) == 1:  # a row of one empty cell would be a blank line, which readers skip
        arrays = [pc.fill_null(arrays[0].cast(pa.large_string()), "")]  # written as ""
    table = pa.Table.from_arrays(arrays, names=[str(name) for name in safe.columns])
    pa_csv.write_csv(table, sink, CSV_OPTIONS)


def _arrow_column(column: pd.Series) -> pa.Array | pa.ChunkedArray:
    if _never_text(column.dtype) or isinstance(column.dtype, pd.StringDtype):
        return pa.array(column, from_pandas=True)  # NaN becomes an empty cell, not "nan"
    # Mixed Python values, lists, categories: written as their text.
    return pa.array([None if _missing(v) else str(v) for v in column], pa.large_string())


def _never_text(dtype: Any) -> bool:
    """Real numbers, booleans and datetimes: no formula can hide there, and pyarrow writes them."""
    if isinstance(dtype, pd.CategoricalDtype):
        return False
    types = pd.api.types
    return (
        types.is_any_real_numeric_dtype(dtype)
        or types.is_bool_dtype(dtype)
        or types.is_datetime64_any_dtype(dtype)
    )


def _missing(value: Any) -> bool:
    return (
        value is None
        or value is pd.NA
        or value is pd.NaT
        or (isinstance(value, float) and math.isnan(value))
    )


def _is_binary(handle: Any) -> bool:
    mode = getattr(handle, "mode", None)  # gzip's is a number
    return isinstance(handle, io.RawIOBase | io.BufferedIOBase) or (
        isinstance(mode, str) and "b" in mode
    )
