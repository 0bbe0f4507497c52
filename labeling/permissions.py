"""Who may do what. Pages and domain functions both ask `require`, so hiding a menu entry is
never the only protection."""
from __future__ import annotations

from labeling.users import User

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
    "ranges.learn": frozenset({"coordinator"}),
    "landmarks.correct": frozenset({"coordinator", "adjudicator"}),
    "audit.view": frozenset({"auditor", "admin"}),
    "agreement.view": frozenset({"auditor", "coordinator", "admin"}),
    "prediagnosis.view": frozenset({"auditor", "coordinator", "admin", "adjudicator"}),
    "users.manage": frozenset({"admin"}),
    "settings.manage": frozenset({"admin"}),
}


class PermissionDenied(PermissionError):
    """The user lacks the role an action needs; the message names both."""


def allowed(user: User | None, action: str) -> bool:
    """Return True when `user` may perform `action` (unknown actions are refused)."""
    return bool(user and user.active and user.roles & ACTIONS.get(action, frozenset()))


def require(user: User | None, action: str) -> User:
    """Return `user` when allowed to perform `action`, else raise PermissionDenied."""
    if not allowed(user, action):
        who = user.name if user else "nobody signed in"
        need = " or ".join(sorted(ACTIONS.get(action, ()))) or "a role no one has"
        raise PermissionDenied(f"{who} may not {action.replace('.', ' ')}: needs {need}")
    return user


def actor_name(actor: User | str | None, action: str) -> str | None:
    """Return the name to record for a write: a `User` must be allowed `action` (PermissionDenied
    otherwise); a plain name is a caller outside the app that already holds the data folder (the
    command line, the demo loader, first-run set-up), recorded as given. Pages always pass the User."""
    if isinstance(actor, User):
        return require(actor, action).name
    return actor
