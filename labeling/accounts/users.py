"""Accounts: create, list, change roles, reset passwords, deactivate and reactivate. Passwords are
stored only as argon2 hashes. Every change is audited in the same transaction, and the last active
admin can never be taken away (deactivated or stripped of the admin role)."""
from __future__ import annotations

import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from db.access import Database, audit, now, transaction
from labeling.accounts.actors import Actor, SystemActor, User
from labeling.accounts.permissions import authorize, require

ROLES = ("reader", "adjudicator", "coordinator", "auditor", "admin")
MIN_PASSWORD = 10
_hasher = PasswordHasher()

__all__ = ["MIN_PASSWORD", "ROLES", "User", "UserError", "add_simulated_user", "add_user", "change_own_password",
           "check_password", "create_first_admin",
           "get_user", "has_admin", "has_users", "list_users", "reset_password", "set_active", "set_roles", "validate_password"]


class UserError(ValueError):
    """A user could not be created or changed; the message says why."""


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash to verify against for unknown names, so their answer takes as long as a real one."""
    return _hasher.hash(secrets.token_urlsafe(16))


def _row_to_user(row) -> User:
    return User(row[0], row[1], frozenset(r for r in row[2].split(",") if r), bool(row[3]))


def validate_name(name: str) -> str:
    """Return the cleaned user name or raise UserError."""
    name = (name or "").strip()
    if not (2 <= len(name) <= 64) or not all(ch.isalnum() or ch in "._-@" for ch in name):
        raise UserError("user names are 2-64 characters: letters, digits and . _ - @")
    return name


def validate_password(password: str | None) -> str:
    """Return `password` when long enough, else raise UserError."""
    if password is None or len(password) < MIN_PASSWORD:
        raise UserError(f"passwords need at least {MIN_PASSWORD} characters")
    return password


def _validate_roles(roles) -> list[str]:
    roles = sorted(set(roles or ()))
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise UserError(f"roles must be some of {', '.join(ROLES)}; got {', '.join(roles) or 'none'}")
    return roles


def add_user(db: Database, name: str, password: str | None, roles, actor: Actor) -> User:
    """Create a user with argon2-hashed `password` (None: a random one no one knows); return it.

    The actor needs 'users.manage' (an admin, or the shell). The very first account of a project
    may also be created by first-run set-up (`SystemActor("system:first-run set-up")`).
    """
    require(actor, "users.manage")
    name = validate_name(name)
    roles = _validate_roles(roles)
    if password is not None:
        validate_password(password)
    hashed = _hasher.hash(password if password is not None else secrets.token_urlsafe(32))
    with transaction(db) as conn:
        who = authorize(conn, actor, "users.manage")
        if conn.execute("SELECT 1 FROM users WHERE lower(name) = lower(?)", (name,)).fetchone():
            raise UserError(f"a user named {name!r} already exists")
        uid = conn.execute("INSERT INTO users (name, password_hash, roles, created_at) VALUES (?, ?, ?, ?)",
                           (name, hashed, ",".join(roles), now())).lastrowid
        audit(conn, who, "user.created", "user", uid, name=name, roles=roles)
    return User(uid, name, frozenset(roles))


def add_simulated_user(db: Database, name: str, role: str, actor: Actor) -> User:
    """Return the SYNTHETIC demo's simulated reader or adjudicator `name`, creating it when missing.

    Its password is random and never shown, so no one can sign in as it; it only acts through
    labeling/demo/project.py on synthetic images. Whoever may load the demo ('demo.load': a coordinator, an
    admin or the shell) may create it, audited as a simulated account.
    """
    require(actor, "demo.load")
    existing = get_user(db, name)
    if existing is not None:
        return existing
    name = validate_name(name)
    roles = _validate_roles([role])
    hashed = _hasher.hash(secrets.token_urlsafe(32))
    with transaction(db) as conn:
        who = authorize(conn, actor, "demo.load")
        row = conn.execute("SELECT id, name, roles, active FROM users WHERE name = ?", (name,)).fetchone()
        if row:
            return _row_to_user(row)
        uid = conn.execute("INSERT INTO users (name, password_hash, roles, created_at) VALUES (?, ?, ?, ?)",
                           (name, hashed, ",".join(roles), now())).lastrowid
        audit(conn, who, "user.created", "user", uid, name=name, roles=roles, simulated=True)
    return User(uid, name, frozenset(roles))


FIRST_RUN = SystemActor("system:first-run set-up")


def create_first_admin(db: Database, name: str, password: str, extra_roles=()) -> User:
    """First-run set-up: create an admin (with `extra_roles`) while the project has no active admin;
    refused (UserError) once it has one. The check and the insert are one transaction, so two
    browsers finishing set-up at once create one admin, not two."""
    name = validate_name(name)
    roles = _validate_roles(["admin", *extra_roles])
    hashed = _hasher.hash(validate_password(password))
    with transaction(db) as conn:
        if conn.execute("SELECT 1 FROM users WHERE active = 1 AND ',' || roles || ',' LIKE '%,admin,%'").fetchone():
            raise UserError("set-up is already done: sign in instead")
        if conn.execute("SELECT 1 FROM users WHERE lower(name) = lower(?)", (name,)).fetchone():
            raise UserError(f"a user named {name!r} already exists")
        uid = conn.execute("INSERT INTO users (name, password_hash, roles, created_at) VALUES (?, ?, ?, ?)",
                           (name, hashed, ",".join(roles), now())).lastrowid
        audit(conn, FIRST_RUN.name, "user.created", "user", uid, name=name, roles=roles)
    return User(uid, name, frozenset(roles))


def get_user(db: Database, name: str) -> User | None:
    """Return the user called `name` (case-insensitive), or None."""
    row = db.execute("SELECT id, name, roles, active FROM users WHERE lower(name) = lower(?)", [(name or "").strip()]).fetchone()
    return _row_to_user(row) if row else None


def user_by_id(db: Database, user_id: int) -> User | None:
    """Return the user with id `user_id`, or None."""
    row = db.execute("SELECT id, name, roles, active FROM users WHERE id = ?", [user_id]).fetchone()
    return _row_to_user(row) if row else None


def list_users(db: Database) -> list[User]:
    """Return every user, by name."""
    return [_row_to_user(r) for r in db.execute("SELECT id, name, roles, active FROM users ORDER BY name")]


def has_users(db: Database) -> bool:
    """Return True once the project has any account (first-run set-up is over)."""
    return db.execute("SELECT EXISTS (SELECT 1 FROM users)").fetchone()[0] == 1


def has_admin(db: Database) -> bool:
    """Return True once the project has an active admin (first-run set-up stays open until then,
    so a project made from the command line, e.g. the demo with its simulated readers, can still
    get its first admin in the browser)."""
    return db.execute("SELECT EXISTS (SELECT 1 FROM users WHERE active = 1 AND ',' || roles || ',' LIKE '%,admin,%')"
                      ).fetchone()[0] == 1


def check_password(db: Database, name: str, password: str) -> User | None:
    """Return the active user when `password` is theirs, else None (same cost either way)."""
    row = db.execute("SELECT id, name, roles, active, password_hash FROM users WHERE lower(name) = lower(?)",
                     [(name or "").strip()]).fetchone()
    stored = row[4] if row else _dummy_hash()
    try:
        _hasher.verify(stored, password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    return _row_to_user(row[:4]) if row and row[3] else None


def _target(conn, name: str) -> User:
    row = conn.execute("SELECT id, name, roles, active FROM users WHERE lower(name) = lower(?)", ((name or "").strip(),)).fetchone()
    if row is None:
        raise UserError(f"no user named {name!r}")
    return _row_to_user(row)


def _other_active_admins(conn, user_id: int) -> int:
    return conn.execute("SELECT count(*) FROM users WHERE active = 1 AND id <> ? AND ',' || roles || ',' LIKE "
                        "'%,admin,%'", (user_id,)).fetchone()[0]


def _revoke_sessions(conn, user_id: int, why: str) -> int:
    return conn.execute("UPDATE sessions SET revoked_at = ?, revoked_why = ? WHERE user_id = ? AND revoked_at IS NULL",
                        (now(), why, user_id)).rowcount


def set_roles(db: Database, name: str, roles, actor: Actor) -> User:
    """Give user `name` exactly `roles`; return the user. Applies at once to their open sessions
    (roles are read again on every action). The last active admin keeps the admin role."""
    require(actor, "users.manage")
    roles = _validate_roles(roles)
    with transaction(db) as conn:
        who = authorize(conn, actor, "users.manage")
        user = _target(conn, name)
        if "admin" in user.roles and "admin" not in roles and user.active and not _other_active_admins(conn, user.id):
            raise UserError(f"{user.name} is the last active admin: make someone else admin first")
        conn.execute("UPDATE users SET roles = ? WHERE id = ?", (",".join(roles), user.id))
        audit(conn, who, "user.roles_changed", "user", user.id, name=user.name, before=sorted(user.roles), after=roles)
    return User(user.id, user.name, frozenset(roles), user.active)


def set_active(db: Database, name: str, active: bool, actor: Actor) -> User:
    """Deactivate (signing them out everywhere) or reactivate user `name`; return the user. Their
    reads and decisions stay; the last active admin cannot be deactivated."""
    require(actor, "users.manage")
    with transaction(db) as conn:
        who = authorize(conn, actor, "users.manage")
        user = _target(conn, name)
        if not active and "admin" in user.roles and user.active and not _other_active_admins(conn, user.id):
            raise UserError(f"{user.name} is the last active admin and cannot be deactivated")
        conn.execute("UPDATE users SET active = ? WHERE id = ?", (int(active), user.id))
        ended = 0 if active else _revoke_sessions(conn, user.id, "account deactivated")
        if not active:  # give back any image they held, so other readers can take it at once
            conn.execute("UPDATE read_slots SET lease_expires = NULL, claimed_at = NULL, reader_id = CASE WHEN "
                         "reserved_for IS NULL THEN NULL ELSE reader_id END WHERE reader_id = ? AND read_id IS NULL",
                         (user.id,))
        audit(conn, who, "user.activated" if active else "user.deactivated", "user", user.id, name=user.name,
              sessions_ended=ended)
    return User(user.id, user.name, user.roles, active)


def reset_password(db: Database, name: str, password: str, actor: Actor) -> int:
    """Set a new password for user `name` (an admin's reset); end every session of theirs; return
    how many sessions ended."""
    require(actor, "users.manage")
    hashed = _hasher.hash(validate_password(password))
    with transaction(db) as conn:
        who = authorize(conn, actor, "users.manage")
        user = _target(conn, name)
        conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (hashed, user.id))
        ended = _revoke_sessions(conn, user.id, "password reset")
        audit(conn, who, "user.password_reset", "user", user.id, name=user.name, sessions_ended=ended)
    return ended


def change_own_password(db: Database, user: User, current: str, new: str, keep_session: int | None = None) -> int:
    """Change the signed-in user's own password after checking the current one; every other
    session of theirs ends (session `keep_session`, the one asking, stays); return how many ended."""
    require(user, "account.own")
    validate_password(new)
    if check_password(db, user.name, current) is None:
        raise UserError("the current password is wrong")
    hashed = _hasher.hash(new)
    with transaction(db) as conn:
        authorize(conn, user, "account.own")
        conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (hashed, user.id))
        ended = conn.execute("UPDATE sessions SET revoked_at = ?, revoked_why = 'password changed' WHERE user_id = ? "
                             "AND revoked_at IS NULL AND id IS NOT ?", (now(), user.id, keep_session)).rowcount
        audit(conn, user.name, "user.password_changed", "user", user.id, name=user.name, sessions_ended=ended)
    return ended
