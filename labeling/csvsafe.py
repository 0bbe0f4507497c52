"""CSV formula-injection guard for every CSV we write (OWASP "CSV injection").

A spreadsheet runs a cell that starts with = + - @ tab or carriage return as a formula, so such
text cells get a leading apostrophe. Numbers stay numbers (a negative kappa is not text).
"""
from __future__ import annotations

import pandas as pd

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def safe_csv_cell(value):
    """Return `value` unchanged, or with a leading apostrophe when it is text starting with a trigger."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def safe_csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of `frame` whose text cells, column names and index labels are CSV-safe."""
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_object_dtype(out[col]) or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(safe_csv_cell).astype(object)
    out.columns = [safe_csv_cell(c) for c in out.columns]
    out.index = out.index.map(safe_csv_cell)
    return out
