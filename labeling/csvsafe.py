"""CSV formula-injection guard for every CSV we write (OWASP "CSV injection").

A spreadsheet runs a cell that starts with = + - @ tab or carriage return as a formula, so such
text cells get a leading apostrophe; a line break inside a cell is always quoted, so it cannot
start a row of its own. Numbers stay numbers (a negative kappa is not text).
"""
from __future__ import annotations

import pandas as pd

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def safe_csv_cell(value):
    """Return `value` unchanged, or with a leading apostrophe when it is text starting with a trigger.

    A carriage return inside text becomes a line feed: pandas quotes a cell holding a line feed,
    but writes a bare carriage return unquoted, and a spreadsheet would start a new row there,
    whose first cell (say "=cmd|...") no apostrophe guards.
    """
    if isinstance(value, str):
        value = value.replace("\r\n", "\n").replace("\r", "\n")
        if value.startswith(FORMULA_TRIGGERS + ("\n",)):
            return "'" + value
    return value


def safe_csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of `frame` whose text cells, column names and index labels are CSV-safe."""
    out = frame.copy()
    types = pd.api.types
    for col in out.columns:
        s = out[col]
        # Everything that can hold text (object, string, categorical...) is guarded; numbers stay numbers.
        if not (types.is_numeric_dtype(s) or types.is_bool_dtype(s) or types.is_datetime64_any_dtype(s)):
            out[col] = s.astype(object).map(safe_csv_cell)
    out.columns = [safe_csv_cell(c) for c in out.columns]
    out.index = out.index.map(safe_csv_cell)
    return out


def to_csv_bytes(frame: pd.DataFrame, **to_csv) -> bytes:
    """Return `frame` as UTF-8 CSV bytes, formula-safe: how every CSV we write is made."""
    return safe_csv_frame(frame).to_csv(index=False, **to_csv).encode("utf-8")
