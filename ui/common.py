"""What every page shares: the database handle, the signed-in user, the role guard."""
from __future__ import annotations

import datetime as dt
import logging
import uuid

import streamlit as st

from db.access import data_dir, open_project
from labeling.auth import refresh_user, session_expired
from labeling.permissions import allowed
from labeling.users import User

log = logging.getLogger("fnp")
NOTICE = ("**Research tool, not a diagnostic device.** FNP TripleCheck supports research annotation of "
          "facial nerve paralysis photos; it does not diagnose and must not guide treatment.")


@st.cache_resource
def _database(folder: str):
    return open_project(data_dir().__class__(folder))


def database():
    """Return the project database (one connection per server process, migrated on first use)."""
    return _database(str(data_dir()))


def current_user() -> User | None:
    """Return the signed-in user, re-read from the database; None after logout or idle expiry."""
    user: User | None = st.session_state.get("user")
    if user is None:
        return None
    now = dt.datetime.now(dt.timezone.utc)
    if session_expired(st.session_state.get("last_seen", now), now):
        sign_out("Your session expired after inactivity. Please sign in again.")
        return None
    fresh = refresh_user(database(), user)
    if fresh is None:
        sign_out("Your account is no longer active.")
        return None
    st.session_state["user"] = fresh
    st.session_state["last_seen"] = now
    return fresh


def sign_out(message: str = "") -> None:
    """Forget everything about the session (no stale state survives a logout)."""
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    if message:
        st.session_state["flash"] = message


def guard(action: str) -> User:
    """Stop the page unless the signed-in user may perform `action`; return the user."""
    user = current_user()
    if not allowed(user, action):
        st.error("You do not have access to this page.")
        st.stop()
    return user


def report_error(exc: BaseException) -> None:
    """Log the traceback for the operator; show the user a message and a reference, never a traceback."""
    ref = uuid.uuid4().hex[:8]
    log.exception("unhandled error [ref %s]", ref, exc_info=exc)
    st.error(f"Something went wrong and nothing was saved by this last action. If it happens again, "
             f"tell your admin the reference **{ref}**.")
