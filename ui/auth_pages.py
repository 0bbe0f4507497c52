"""First-run set-up (create the first admin) and the sign-in form."""
from __future__ import annotations

import datetime as dt

import streamlit as st

from labeling.auth import sign_in
from labeling.users import MIN_PASSWORD, UserError, add_user, list_users
from ui.common import NOTICE, database


def setup_page() -> None:
    """Shown only while the project has no user at all: create the first admin."""
    db = database()
    st.title("FNP TripleCheck — first-run set-up")
    st.info(NOTICE)
    st.write("No one has an account yet. Create the first **admin**; they add everyone else.")
    with st.form("setup"):
        name = st.text_input("Admin user name")
        pw = st.text_input(f"Password (at least {MIN_PASSWORD} characters)", type="password")
        pw2 = st.text_input("Password again", type="password")
        extra = st.multiselect("Also give this account the roles", ["coordinator", "auditor", "adjudicator", "reader"],
                               default=["coordinator"])
        done = st.form_submit_button("Create admin", type="primary")
    if done:
        if list_users(db):  # someone else finished set-up meanwhile
            st.error("Set-up is already done. Sign in instead.")
            return
        if pw != pw2:
            st.error("The two passwords differ.")
            return
        try:
            add_user(db, name, pw, ["admin", *extra], actor="first-run set-up")
        except UserError as exc:
            st.error(str(exc))
            return
        st.session_state["flash"] = "Admin created. Sign in with it."
        st.rerun()


def login_page() -> None:
    """The sign-in form."""
    st.title("FNP TripleCheck")
    st.caption(NOTICE)
    if "flash" in st.session_state:
        st.info(st.session_state.pop("flash"))
    with st.form("login"):
        name = st.text_input("User name", key="login_name")
        pw = st.text_input("Password", type="password", key="login_password")
        go = st.form_submit_button("Sign in", type="primary")
    if go:
        result = sign_in(database(), name, pw)
        if result.user is None:
            st.error(result.message)
            return
        for key in list(st.session_state.keys()):
            del st.session_state[key]
        st.session_state["user"] = result.user
        st.session_state["last_seen"] = dt.datetime.now(dt.timezone.utc)
        st.rerun()
