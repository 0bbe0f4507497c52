"""Users and roles. Passwords are stored only as argon2 hashes."""
from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass

import sqlite_utils
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from db.access import audit, now, transaction

ROLES = ("reader", "adjudicator", "coordinator", "auditor", "admin")
MIN_PASSWORD = 10
_hasher = PasswordHasher()


class UserError(ValueError):
    """A user could not be created or changed; the message says why."""


@dataclass(frozen=True)
class User:
    """A signed-up person: id, name and the set of roles they hold."""

    id: int
    name: str
    roles: frozenset[str]
    active: bool = True

    def has(self, *roles: str) -> bool:
        """Return True when the user holds any of `roles`."""
        return bool(self.roles.intersection(roles))


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


def add_user(db: sqlite_utils.Database, name: str, password: str | None, roles, actor: User | str | None = None) -> User:
    """Create a user with argon2-hashed `password` (None: a random one no one knows); return it.

    A `User` actor needs 'users.manage' (admins); a plain name is first-run set-up or the command line.
    """
    from labeling.permissions import actor_name  # permissions imports User from here

    actor = actor_name(actor, "users.manage")
    name = validate_name(name)
    roles = sorted(set(roles))
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise UserError(f"roles must be some of {', '.join(ROLES)}; got {', '.join(roles) or 'none'}")
    if password is not None and len(password) < MIN_PASSWORD:
        raise UserError(f"passwords need at least {MIN_PASSWORD} characters")
    hashed = _hasher.hash(password if password is not None else secrets.token_urlsafe(32))
    with transaction(db) as conn:
        if conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
            raise UserError(f"a user named {name!r} already exists")
        uid = conn.execute("INSERT INTO users (name, password_hash, roles, created_at) VALUES (?, ?, ?, ?)",
                           (name, hashed, ",".join(roles), now())).lastrowid
        audit(conn, actor, "user.created", "user", uid, name=name, roles=roles)
    return User(uid, name, frozenset(roles))


def get_user(db: sqlite_utils.Database, name: str) -> User | None:
    """Return the user called `name` (case-insensitive), or None."""
    row = db.execute("SELECT id, name, roles, active FROM users WHERE name = ?", [name.strip()]).fetchone()
    return _row_to_user(row) if row else None


def list_users(db: sqlite_utils.Database) -> list[User]:
    """Return every user, by name."""
    return [_row_to_user(r) for r in db.execute("SELECT id, name, roles, active FROM users ORDER BY name")]


def check_password(db: sqlite_utils.Database, name: str, password: str) -> User | None:
    """Return the active user when `password` is theirs, else None (same cost either way)."""
    row = db.execute("SELECT id, name, roles, active, password_hash FROM users WHERE name = ?",
                     [(name or "").strip()]).fetchone()
    stored = row[4] if row else _dummy_hash()
    try:
        _hasher.verify(stored, password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    return _row_to_user(row[:4]) if row and row[3] else None
