"""Server-side sign-in sessions: a random token in the browser's cookie, only its SHA-256 stored.

A session survives reloads, new tabs and deep links (the browser sends the cookie with each); it
ends after `session_idle_minutes` without activity, `session_max_hours` after sign-in whatever
happens, or when revoked: sign-out (this browser), sign-out everywhere (every device), a password
reset or an account deactivated. Every check reads the account again, so a role change or a
deactivation applies to the very next action. Plain functions, tested without a browser.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from db.access import Database, audit, transaction
from labeling.workflow import settings
from labeling.accounts.actors import User

COOKIE = "fnp_session"
TOUCH_EVERY = dt.timedelta(seconds=30)  # last_seen is written at most this often per session


@dataclass(frozen=True)
class Session:
    """A live sign-in: which session row (None under single sign-on), whose, and until when."""

    id: int | None
    user: User
    created_at: str
    expires_at: str


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or dt.datetime.now(dt.timezone.utc)


def _ts(t: dt.datetime) -> str:
    return t.isoformat(timespec="milliseconds")


def token_hash(token: str) -> str:
    """The stored form of a token: its SHA-256 (a token is 256 random bits, so no salt is needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start_session(db: Database, user: User, client: str = "", now: dt.datetime | None = None) -> tuple[str, Session]:
    """Open a session for `user` (already authenticated); return (token for the cookie, session)."""
    t = _now(now)
    token = secrets.token_urlsafe(32)
    expires = t + dt.timedelta(hours=float(settings.get(db, "session_max_hours")))
    with transaction(db) as conn:
        sid = conn.execute("INSERT INTO sessions (token_sha256, user_id, created_at, last_seen, expires_at, client) "
                           "VALUES (?, ?, ?, ?, ?, ?)", (token_hash(token), user.id, _ts(t), _ts(t), _ts(expires),
                                                         client[:200])).lastrowid
        audit(conn, user.name, "session.started", "session", sid, client=client[:200])
    return token, Session(sid, user, _ts(t), _ts(expires))


def session_for(db: Database, token: str | None, now: dt.datetime | None = None) -> Session | None:
    """Return the live session of `token` with its user as stored now, or None (unknown, revoked,
    expired, idle too long, or the account deactivated). Marks a session that just ran out as ended."""
    if not token:
        return None
    t = _now(now)
    row = db.execute("SELECT s.id, s.created_at, s.last_seen, s.expires_at, s.revoked_at, u.id, u.name, u.roles, "
                     "u.active FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_sha256 = ?",
                     [token_hash(token)]).fetchone()
    if row is None or row[4] is not None:
        return None
    sid, created, last_seen, expires, _, uid, name, roles, active = row
    idle = dt.timedelta(minutes=float(settings.get(db, "session_idle_minutes")))
    why = ("expired" if t >= dt.datetime.fromisoformat(expires) else
           "idle" if t - dt.datetime.fromisoformat(last_seen) > idle else
           "account deactivated" if not active else None)
    if why:
        end_session(db, token, why, now=t)
        return None
    if t - dt.datetime.fromisoformat(last_seen) >= TOUCH_EVERY:
        with transaction(db) as conn:
            conn.execute("UPDATE sessions SET last_seen = ? WHERE id = ? AND revoked_at IS NULL", (_ts(t), sid))
    return Session(sid, User(uid, name, frozenset(r for r in roles.split(",") if r), True), created, expires)


def end_session(db: Database, token: str | None, why: str = "signed out", now: dt.datetime | None = None) -> bool:
    """Revoke the session of `token` (every tab of that browser); return True if one was live."""
    if not token:
        return False
    with transaction(db) as conn:
        row = conn.execute("SELECT s.id, u.name FROM sessions s JOIN users u ON u.id = s.user_id "
                           "WHERE s.token_sha256 = ? AND s.revoked_at IS NULL", (token_hash(token),)).fetchone()
        if row is None:
            return False
        conn.execute("UPDATE sessions SET revoked_at = ?, revoked_why = ? WHERE id = ?", (_ts(_now(now)), why, row[0]))
        audit(conn, row[1], "session.ended", "session", row[0], why=why)
    return True


def end_all_sessions(db: Database, user: User, why: str = "signed out everywhere",
                     now: dt.datetime | None = None) -> int:
    """Revoke every live session of `user` (every browser and device); return how many ended."""
    with transaction(db) as conn:
        n = conn.execute("UPDATE sessions SET revoked_at = ?, revoked_why = ? WHERE user_id = ? AND revoked_at IS NULL",
                         (_ts(_now(now)), why, user.id)).rowcount
        audit(conn, user.name, "session.ended_everywhere", "user", user.id, sessions=n, why=why)
    return n


def live_sessions(db: Database, user: User, now: dt.datetime | None = None) -> list[dict]:
    """Return the user's sessions that have not ended (newest first): id, created_at, last_seen, client."""
    rows = db.execute("SELECT id, created_at, last_seen, client FROM sessions WHERE user_id = ? AND revoked_at IS NULL "
                      "AND expires_at > ? ORDER BY id DESC", [user.id, _ts(_now(now))]).fetchall()
    return [dict(zip(("id", "created_at", "last_seen", "client"), r)) for r in rows]


def sso_session(db: Database, email: str) -> Session | None:
    """The sign-in of a person the hospital's single sign-on vouches for: the active account named
    by their e-mail (compared case-insensitively), or None when they have none. An admin creates
    that account, with its roles, under the e-mail as user name; no password is ever used."""
    row = db.execute("SELECT id, name, roles, active FROM users WHERE lower(name) = lower(?)", [email.strip()]).fetchone()
    if row is None or not row[3]:
        return None
    return Session(None, User(row[0], row[1], frozenset(r for r in row[2].split(",") if r), True), "", "")
