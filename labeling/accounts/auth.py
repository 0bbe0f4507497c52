"""Sign-in rules: password check with throttling, and an admin's unlock.

Plain functions over the database, so the app's sign-in form, the tests and any future API enforce
the same rules. Failed attempts are counted from the audit log (append-only), so throttling
survives a restart and cannot be reset by editing a table.

Throttling is per name *and* client address: five wrong passwords from one address lock that
name for that address only, so a colleague typing someone's name five times locks themselves out,
not the owner. A name attacked from many addresses at once (twenty failures in the window) is
locked for everyone until the window passes or an admin unlocks it.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from db.access import Database, audit, transaction
from labeling.accounts.actors import Actor, User
from labeling.accounts.permissions import authorize, require
from labeling.accounts.users import UserError, check_password

MAX_FAILURES = 5            # per name and client address
MAX_FAILURES_ANY = 20       # per name, from all addresses together
LOCKOUT = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in attempt: the user, or a message to show."""

    user: User | None
    message: str = ""


def _since(db: Database, key: str, now: dt.datetime) -> str:
    """Failures count from the later of: the window's start, the last success, an admin's unlock."""
    since = (now - LOCKOUT).isoformat(timespec="milliseconds")
    last = db.execute("SELECT max(at) FROM audit_log WHERE action IN ('login.ok', 'login.unlocked') AND entity_id = ?",
                      [key]).fetchone()[0]
    return max(since, last or "")


def recent_failures(db: Database, name: str, client: str | None = None, now: dt.datetime | None = None) -> int:
    """Return failed sign-ins for `name` (from `client` only, when given) that still count."""
    now = now or dt.datetime.now(dt.timezone.utc)
    key = (name or "").strip().lower()
    sql = "SELECT count(*) FROM audit_log WHERE action = 'login.failed' AND entity_id = ? AND at > ?"
    params = [key, _since(db, key, now)]
    if client is not None:
        sql += " AND json_extract(detail, '$.client') = ?"
        params.append(client)
    return db.execute(sql, params).fetchone()[0]


def locked(db: Database, name: str, client: str = "", now: dt.datetime | None = None) -> bool:
    """Return True while `name` may not sign in from `client`."""
    return (recent_failures(db, name, client, now) >= MAX_FAILURES
            or recent_failures(db, name, None, now) >= MAX_FAILURES_ANY)


def sign_in(db: Database, name: str, password: str, client: str = "", now: dt.datetime | None = None) -> SignIn:
    """Check `name`/`password` from `client` (its address); return the user or a message."""
    key = (name or "").strip().lower()
    if not key or not password:
        return SignIn(None, "Enter your user name and password.")
    if locked(db, key, client, now):
        with transaction(db) as conn:
            audit(conn, key, "login.locked", "login", key, client=client)
        return SignIn(None, f"Too many failed attempts. Try again in {int(LOCKOUT.total_seconds() // 60)} minutes "
                            "or ask an admin to unlock your account.")
    user = check_password(db, key, password)
    with transaction(db) as conn:
        audit(conn, key, "login.ok" if user else "login.failed", "login", key, client=client)
    if user is None:
        return SignIn(None, "Wrong user name or password.")
    return SignIn(user)


def unlock(db: Database, name: str, actor: Actor) -> None:
    """Lift a sign-in lockout of `name` at once (an admin's action, audited)."""
    require(actor, "users.manage")
    key = (name or "").strip().lower()
    with transaction(db) as conn:
        who = authorize(conn, actor, "users.manage")
        if not conn.execute("SELECT 1 FROM users WHERE lower(name) = lower(?)", (key,)).fetchone():
            raise UserError(f"no user named {name!r}")
        audit(conn, who, "login.unlocked", "login", key)


def locked_names(db: Database, now: dt.datetime | None = None) -> list[str]:
    """Return the user names that had a sign-in refused for too many failures within the window
    and have not signed in or been unlocked since (for the admins' Users page)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    since = (now - LOCKOUT).isoformat(timespec="milliseconds")
    rows = db.execute("SELECT DISTINCT entity_id FROM audit_log WHERE action IN ('login.failed', 'login.locked') "
                      "AND at > ?", [since]).fetchall()
    out = []
    for (key,) in rows:
        if key and recent_failures(db, key, None, now) >= MAX_FAILURES:
            out.append(key)
    return sorted(out)
