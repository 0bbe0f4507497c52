"""Audit (auditors): every event — who, when, what — filterable and exportable."""
from __future__ import annotations

import datetime as dt

import streamlit as st

from labeling.auditlog import audit_events, audit_facets
from labeling.csvsafe import to_csv_bytes
from ui.common import database, guard


def audit_page() -> None:
    user = guard("audit.view")
    db = database()
    st.title("Audit log")
    actors, actions = audit_facets(db, user)
    c = st.columns(4)
    actor = c[0].selectbox("Who", ["(anyone)", *actors])
    action = c[1].selectbox("What", ["(any)", *actions])
    since = c[2].date_input("From", value=None)
    text = c[3].text_input("Contains")
    df = audit_events(db, user, actor=None if actor == "(anyone)" else actor,
                      action=None if action == "(any)" else action,
                      since=since.isoformat() if isinstance(since, dt.date) else None, text=text or None)
    st.caption(f"{len(df):,} event(s) shown (newest first, at most 10,000). The log is append-only: "
               "the database refuses any change to it.")
    st.dataframe(df, hide_index=True, width="stretch")
    st.download_button("Download as CSV", to_csv_bytes(df), "audit-log.csv", "text/csv", on_click="ignore")
