"""Who may do what. Every domain function that writes asks `authorize` inside its own transaction,
so hiding a menu entry or a page is never the only protection.

Two kinds of actor write to a project:
- a `User` (a person signed in to the app, or named with `--as-user` on the command line): their
  roles and active flag are read again from the database inside the write's transaction, so a
  role taken away or an account deactivated applies to the very next action;
- a `SystemActor`: someone with shell access to the data folder acting through the command line
  (or the first-run set-up), recorded in the audit log as `system:...`. It may run the project's
  machinery (import, measure, export, settings, accounts) but never reads or adjudicates: those
  are a neurologist's judgements, made by a named person.
"""
from __future__ import annotations

import sqlite3

from labeling.accounts.actors import Actor, SystemActor, User

# action -> roles allowed. Reads are blind: only readers read; nobody edits a submitted read.
ACTIONS: dict[str, frozenset[str]] = {
    "status.view": frozenset({"reader", "adjudicator", "coordinator", "auditor", "admin"}),
    # Per-state counts move when a read lands, so a reader watching them would learn whether the
    # other read agreed: only roles that are not blinded see them.
    "status.states": frozenset({"adjudicator", "coordinator", "auditor", "admin"}),
    "read.submit": frozenset({"reader"}),
    "adjudicate": frozenset({"adjudicator"}),
    "import": frozenset({"coordinator", "admin"}),
    "demo.load": frozenset({"coordinator", "admin"}),
    "export": frozenset({"coordinator"}),
    "measure": frozenset({"coordinator", "admin"}),
    "quality.override": frozenset({"coordinator"}),
    "ranges.learn": frozenset({"coordinator"}),
    "check2.run": frozenset({"coordinator", "admin"}),
    "predictions.import": frozenset({"coordinator", "admin"}),
    "qc.manage": frozenset({"coordinator"}),
    "landmarks.correct": frozenset({"coordinator", "adjudicator"}),
    "audit.view": frozenset({"auditor", "admin"}),
    "agreement.view": frozenset({"auditor", "coordinator", "admin"}),
    "prediagnosis.view": frozenset({"auditor", "coordinator", "admin", "adjudicator"}),
    "users.manage": frozenset({"admin"}),
    "settings.manage": frozenset({"admin"}),
    "account.own": frozenset({"reader", "adjudicator", "coordinator", "auditor", "admin"}),
}

# What the shell may do through the command line. Never read.submit or adjudicate, nor move
# landmarks (landmarks.correct): those are a named person's judgements.
SYSTEM_ACTIONS = frozenset({"import", "demo.load", "export", "measure", "quality.override", "ranges.learn", "qc.manage",
                            "check2.run", "predictions.import", "users.manage", "settings.manage", "status.view",
                            "status.states", "audit.view", "agreement.view", "prediagnosis.view"})




class PermissionDenied(PermissionError):
    """The actor lacks the role an action needs; the message names both."""


def allowed(actor: Actor | None, action: str) -> bool:
    """Return True when `actor` may perform `action` (unknown actions are refused)."""
    if isinstance(actor, SystemActor):
        return action in SYSTEM_ACTIONS
    return bool(actor and actor.active and actor.roles & ACTIONS.get(action, frozenset()))


def _refusal(actor: Actor | None, action: str) -> PermissionDenied:
    who = actor.name if actor else "nobody signed in"
    if isinstance(actor, SystemActor):
        return PermissionDenied(f"{who} may not {action.replace('.', ' ')} from the command line: "
                                "a named user must (--as-user)")
    need = " or ".join(sorted(ACTIONS.get(action, ()))) or "a role no one has"
    return PermissionDenied(f"{who} may not {action.replace('.', ' ')}: needs {need}")


def require(actor: Actor | None, action: str) -> Actor:
    """Return `actor` when allowed to perform `action`, else raise PermissionDenied (a quick check
    before work; writes confirm it with `authorize` inside their transaction)."""
    if not allowed(actor, action):
        raise _refusal(actor, action)
    return actor


def authorize(conn: sqlite3.Connection, actor: Actor | None, action: str) -> str:
    """Inside a write transaction: check `actor` may perform `action` as the database stands now
    (roles and active flag read again), raise PermissionDenied if not; return the name to audit."""
    if isinstance(actor, User):
        row = conn.execute("SELECT name, roles, active FROM users WHERE id = ?", (actor.id,)).fetchone()
        actor = None if row is None else User(actor.id, row[0], frozenset(r for r in row[1].split(",") if r),
                                              bool(row[2]))
    if not allowed(actor, action):
        raise _refusal(actor, action)
    return actor.name
