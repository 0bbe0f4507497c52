"""Times in the reader's own time zone: the browser tells Streamlit its zone (st.context.timezone);
the stored times are UTC and are shown in that zone, or in UTC, saying so, when it is not known.
Numbers and names in words are labeling/words.py's, shared with the command line."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from labeling import words


def browser_zone() -> tuple[dt.tzinfo, str]:
    """Return the browser's time zone and its name ("Europe/Berlin", "UTC+02:00"), or UTC and
    "UTC" when the browser did not say (a test, an old browser)."""
    try:
        name, offset = st.context.timezone, st.context.timezone_offset
    except Exception:  # outside a browser session
        name, offset = None, None
    if name:
        tz = words.zone(name)
        if tz is not words.UTC or name.upper() in ("UTC", "ETC/UTC"):
            return tz, name
    if offset is not None:  # minutes behind UTC, as JavaScript's getTimezoneOffset gives them
        minutes = -int(offset)
        sign, hours = "+" if minutes >= 0 else "-", abs(minutes)
        return dt.timezone(dt.timedelta(minutes=minutes)), f"UTC{sign}{hours // 60:02d}:{hours % 60:02d}"
    return words.UTC, "UTC"


def when(value) -> str:
    """Return a stored time as local text ("2026-02-03 14:05")."""
    return words.local_time(value, browser_zone()[0])


def zone_note() -> str:
    """Return the line a page shows under its times: which zone they are in."""
    tz, name = browser_zone()
    if name == "UTC" and tz is words.UTC:
        return "Times are in UTC (your browser did not tell its time zone)."
    return f"Times are in your browser's time zone ({name})."


def table(frame: pd.DataFrame, times=(), **kw) -> None:
    """Show `frame` with headers in words and its `times` columns in local time."""
    st.dataframe(words.with_headers(words.local_times(frame, times, browser_zone()[0])), hide_index=True,
                 width="stretch", **kw)
