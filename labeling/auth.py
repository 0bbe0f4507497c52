"""Sign-in rules: password check with throttling, and idle expiry of sessions.

Plain functions over the database, so the app, the tests and any future API enforce the same
rules. Failed attempts are counted from the audit log (append-only), so throttling survives a
restart and cannot be reset by editing a table.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlite_utils

from db.access import audit, transaction
from labeling.users import User, check_password, get_user

MAX_FAILURES = 5
LOCKOUT = dt.timedelta(minutes=15)
IDLE_TIMEOUT = dt.timedelta(minutes=30)


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in attempt: the user, or a message to show."""

    user: User | None
    message: str = ""


def _utc(ts: str) -> dt.datetime:
    return dt.datetime.fromisoformat(ts)


def recent_failures(db: sqlite_utils.Database, name: str, now: dt.datetime | None = None) -> int:
    """Return failed sign-ins for `name` within the lockout window since the last success."""
    now = now or dt.datetime.now(dt.timezone.utc)
    since = (now - LOCKOUT).isoformat(timespec="milliseconds")
    key = name.strip().lower()
    last_ok = db.execute("SELECT max(at) FROM audit_log WHERE action = 'login.ok' AND entity_id = ?", [key]).fetchone()[0]
    since = max(since, last_ok or "")
    return db.execute("SELECT count(*) FROM audit_log WHERE action = 'login.failed' AND entity_id = ? AND at > ?",
                      [key, since]).fetchone()[0]


def sign_in(db: sqlite_utils.Database, name: str, password: str, now: dt.datetime | None = None) -> SignIn:
    """Check `name`/`password`; return the user or a message. Locked after MAX_FAILURES failures."""
    key = (name or "").strip().lower()
    if not key:
        return SignIn(None, "Enter your user name and password.")
    if recent_failures(db, key, now) >= MAX_FAILURES:
        with transaction(db) as conn:
            audit(conn, key, "login.locked", "login", key)
        return SignIn(None, f"Too many failed attempts. Try again in {int(LOCKOUT.total_seconds() // 60)} minutes "
                            "or ask an admin.")
    user = check_password(db, key, password)
    with transaction(db) as conn:
        audit(conn, key, "login.ok" if user else "login.failed", "login", key)
    if user is None:
        return SignIn(None, "Wrong user name or password.")
    return SignIn(user)


def session_expired(last_seen: dt.datetime, now: dt.datetime | None = None) -> bool:
    """Return True when a session idle since `last_seen` must sign in again."""
    return (now or dt.datetime.now(dt.timezone.utc)) - last_seen > IDLE_TIMEOUT


def refresh_user(db: sqlite_utils.Database, user: User) -> User | None:
    """Return the user as stored now (roles may have changed), or None if removed or disabled."""
    fresh = get_user(db, user.name)
    return fresh if fresh and fresh.active else None
