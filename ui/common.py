"""What every page shares: the project (its database and image store), the signed-in user, the role
guard, safe callbacks."""
from __future__ import annotations

import functools
import logging
import threading
import uuid
from pathlib import Path

import streamlit as st

from db.access import Database, data_dir
from labeling.accounts import sessions
from labeling.accounts.actors import User
from labeling.accounts.permissions import allowed
from labeling.project import Project

log = logging.getLogger("fnp")
NOTICE = ("**Research tool, not a diagnostic device.** FNP TripleCheck supports research annotation of "
          "facial nerve paralysis photos; it does not diagnose and must not guide treatment.")
TEST_TOKEN = "fnp_session_token"  # where in-process tests (AppTest, which cannot send cookies) put a token

_projects: dict[str, Project] = {}
_lock = threading.Lock()


def project(folder: Path | None = None) -> Project:
    """Return the server's `Project` (one per data folder and process, migrated on first use).

    It is shared by every session of the server; each thread gets its own database connection from
    it, so no two sessions ever share a connection or a transaction."""
    key = str(folder or data_dir())
    with _lock:
        if key not in _projects:
            _projects[key] = Project.open(Path(key))
        return _projects[key]


def project_database(folder: Path | None = None) -> Database:
    """Return the database of the project in `folder` (default: the data folder)."""
    return project(folder).db


def database() -> Database:
    """Return the project database for a page."""
    return project().db


def _token() -> str | None:
    try:
        cookie = st.context.cookies.get(sessions.COOKIE)
    except Exception:  # outside a browser session (AppTest)
        cookie = None
    if not isinstance(cookie, str) or not cookie:
        cookie = st.session_state.get(TEST_TOKEN)
    return cookie if isinstance(cookie, str) else None


def _sso_email() -> str | None:
    """The e-mail of the person the hospital's single sign-on (Streamlit's st.login, OIDC) signed
    in, when it is configured and they are; else None."""
    try:
        if not st.user.is_logged_in:
            return None
        email = st.user.get("email")
    except Exception:  # no [auth] in the secrets, or outside a browser session
        return None
    return email if isinstance(email, str) and email else None


def current_session() -> sessions.Session | None:
    """Return the live session of this browser (read again from the database on every call), or
    None. With single sign-on, the account named by the signed-in e-mail (no session row: the
    identity provider's session governs; sign-out is st.logout)."""
    db = database()
    session = sessions.session_for(db, _token())
    if session is None and (email := _sso_email()):
        session = sessions.sso_session(db, email)
    return session


def current_user() -> User | None:
    """Return the signed-in user as stored now (roles may have changed), or None when signed out,
    expired, revoked or deactivated. Call it wherever an action is taken, callbacks included."""
    session = current_session()
    return session.user if session else None


def signed_out_notice() -> None:
    """Shown when a page runs without a live session (it ended while the tab was open)."""
    from urllib.parse import quote, urlsplit

    from ui.paths import SIGNIN, safe_next

    try:
        path = urlsplit(st.context.url or "").path or "/"
    except Exception:  # outside a browser session
        path = "/"

    st.title("FNP TripleCheck")
    email = _sso_email()
    if email:
        st.warning(f"You are signed in with your hospital account ({email}), but no active FNP TripleCheck account "
                   "has that name. Ask an admin to create one under this e-mail address.")
        st.caption(NOTICE)
        return
    st.warning("You are signed out: the session ended (signed out in another tab or on another device, idle too "
               "long, or your account changed). Nothing you press here is saved.")
    from ui.nav import link

    link("Sign in again", f"{SIGNIN}?next={quote(safe_next(path), safe='/')}", key="sign_in_again", primary=True)
    st.caption(NOTICE)


def guard(action: str) -> User:
    """Stop the page unless the signed-in user may perform `action`; return the user."""
    user = current_user()
    if user is None:
        signed_out_notice()
        st.stop()
    if not allowed(user, action):
        st.error("You do not have access to this page.")
        st.stop()
    return user


def sign_out(everywhere: bool = False) -> None:
    """Button callback: end this browser's session (or every session of the user), give back any
    image they held, and send the tab to the sign-in form on this run."""
    from labeling.workflow.queue import release

    db = database()
    token = _token()
    session = current_session()
    if session is not None and session.id is None:  # single sign-on: the identity provider signs out
        release(db, session.user)
        st.logout()
        return
    if session is not None:
        release(db, session.user)
        if everywhere:
            sessions.end_all_sessions(db, session.user)
        else:
            sessions.end_session(db, token)
    st.session_state.pop(TEST_TOKEN, None)
    st.session_state["leave_to"] = "/signin?why=" + ("everywhere" if everywhere else "signed-out")


def report_error(exc: BaseException) -> None:
    """Log the traceback for the operator; show the user a message and a reference, never a traceback."""
    ref = uuid.uuid4().hex[:8]
    log.exception("unhandled error [ref %s]", ref, exc_info=exc)
    st.error(f"Something went wrong and nothing was saved by this last action. If it happens again, "
             f"tell your admin the reference **{ref}**.")


def safe_callback(fn):
    """Wrap a widget callback: an unexpected error is logged with a reference and shown as a message
    on the next run, never as a traceback (callbacks run before the page's own error handling)."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            ref = uuid.uuid4().hex[:8]
            log.exception("unhandled error in %s [ref %s]", fn.__name__, ref, exc_info=exc)
            st.session_state["callback_error"] = ref

    return run


def show_callback_error() -> None:
    """Show the message of a callback that failed on this run, if any."""
    ref = st.session_state.pop("callback_error", None)
    if ref:
        st.error(f"Something went wrong and nothing was saved by this last action. If it happens again, "
                 f"tell your admin the reference **{ref}**.")
