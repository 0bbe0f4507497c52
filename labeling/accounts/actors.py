"""Who acts on a project: a signed-in `User`, or a `SystemActor` working from the shell."""
from __future__ import annotations

import getpass
from dataclasses import dataclass


@dataclass(frozen=True)
class User:
    """A person with an account: id, name and the set of roles they hold."""

    id: int
    name: str
    roles: frozenset[str]
    active: bool = True

    def has(self, *roles: str) -> bool:
        """Return True when the user holds any of `roles`."""
        return bool(self.roles.intersection(roles))


@dataclass(frozen=True)
class SystemActor:
    """Someone acting from the shell on the data folder; `name` is what the audit log records.

    They hold the whole data folder already, so they may run the project's machinery (import,
    measure, export, settings, accounts), but never read or adjudicate: those are a neurologist's
    judgements, made by a named person.
    """

    name: str

    def __post_init__(self):
        if not self.name.startswith("system:"):
            raise ValueError("a system actor's name starts with 'system:'")

    @classmethod
    def command_line(cls, command: str = "cli") -> SystemActor:
        """The command line run by this operating-system user, e.g. `system:cli (alice)`."""
        try:
            who = getpass.getuser()
        except (KeyError, OSError):  # no name for this uid (containers)
            who = "unknown"
        return cls(f"system:{command} ({who})")


Actor = User | SystemActor
