"""Audit (auditors): every event — who, when, what — filterable and exportable."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from labeling.auditlog import audit_events, audit_facets
from labeling.csvsafe import to_csv_bytes
from labeling.words import describe_detail
from ui.common import database, guard
from ui.words import browser_zone, table, zone_note


def action_words(action: str) -> str:
    """Return an audit action code in words: "export.created" -> "export created"."""
    return action.replace(".", " ").replace("_", " ")


def readable(events: pd.DataFrame) -> pd.DataFrame:
    """Return audit events as a person reads them: what in words, what about, details as text."""
    about = [f"{e} {i}".strip() if isinstance(i, str) and i else (e or "") for e, i in zip(events.entity, events.entity_id)]
    return pd.DataFrame({"no.": events["id"], "at": events["at"], "who": events["actor"],
                         "what": events["action"].map(action_words), "about": about,
                         "details": events["detail"].map(describe_detail)})


def audit_page() -> None:
    user = guard("audit.view")
    db = database()
    st.title("Audit log")
    actors, actions = audit_facets(db, user)
    c = st.columns(4)
    actor = c[0].selectbox("Who", ["(anyone)", *actors])
    action = c[1].selectbox("What", ["(any)", *actions], format_func=lambda a: a if a == "(any)" else action_words(a))
    since = c[2].date_input("From", value=None, help="From the start of that day, in your time zone.")
    text = c[3].text_input("Contains")
    start = None
    if isinstance(since, dt.date):  # midnight where the auditor is, as the UTC time the log stores
        start = dt.datetime.combine(since, dt.time.min, browser_zone()[0]).astimezone(dt.timezone.utc).isoformat()
    df = audit_events(db, user, actor=None if actor == "(anyone)" else actor,
                      action=None if action == "(any)" else action, since=start, text=text or None)
    st.caption(f"{len(df):,} event(s) shown (newest first, at most 10,000). The log is append-only: "
               f"the database refuses any change to it. {zone_note()}")
    table(readable(df), times=["at"])
    st.download_button("Download as CSV", to_csv_bytes(df), "audit-log.csv", "text/csv", on_click="ignore",
                       help="The events as stored: times in UTC (ISO 8601), details as JSON.")
