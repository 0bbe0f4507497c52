"""Project settings with their defaults and validation (stored in the `settings` table)."""
from __future__ import annotations

import sqlite_utils

from db.access import get_setting, set_setting
from labeling.permissions import actor_name
from labeling.users import User

DEFAULTS: dict[str, object] = {
    "read_mode": "inter",        # inter: two different readers; intra: the same reader twice
    "reads_per_image": 2,
    "washout_hours": 336,        # intra mode: two weeks between a reader's two reads of an image
    "check2_enabled": True,      # the asymmetry cross-check
    "lease_seconds": 600,        # how long a claimed image stays reserved for its reader
    "undo_seconds": 120,         # how long a reader may undo their last read
    "reveal_readers": False,     # adjudicators see "Reader A / Reader B" unless this is on
    "pick_best_face": False,     # several faces: measure the highest-scoring one instead of refusing
    "range_lo": 5.0,             # percentiles of the range boxes
    "range_hi": 95.0,
    "range_min_count": 5,        # fewer consensus images in a movement x class cell: no box
}

CHOICES = {"read_mode": ("inter", "intra")}
BOUNDS = {"reads_per_image": (2, 10), "washout_hours": (0, 24 * 365), "lease_seconds": (30, 24 * 3600),
          "undo_seconds": (0, 3600), "range_lo": (0.0, 49.0), "range_hi": (51.0, 100.0), "range_min_count": (1, 1000)}


class SettingError(ValueError):
    """A setting value is not allowed; the message says which and why."""


def get(db: sqlite_utils.Database, key: str):
    """Return the project's value of setting `key` (its default when never set)."""
    if key not in DEFAULTS:
        raise KeyError(key)
    return get_setting(db, key, DEFAULTS[key])


def all_settings(db: sqlite_utils.Database) -> dict[str, object]:
    """Return every setting with its current value."""
    return {k: get(db, k) for k in DEFAULTS}


def change(db: sqlite_utils.Database, key: str, value, actor: User | str) -> None:
    """Validate and store a setting (audited). A `User` actor needs 'settings.manage'."""
    actor = actor_name(actor, "settings.manage")
    if key not in DEFAULTS:
        raise SettingError(f"unknown setting {key!r}")
    default = DEFAULTS[key]
    try:
        value = type(default)(value) if not isinstance(default, bool) else bool(value)
    except (TypeError, ValueError):
        raise SettingError(f"{key} must be a {type(default).__name__}") from None
    if key in CHOICES and value not in CHOICES[key]:
        raise SettingError(f"{key} must be one of {', '.join(CHOICES[key])}")
    if key in BOUNDS and not BOUNDS[key][0] <= value <= BOUNDS[key][1]:
        raise SettingError(f"{key} must be between {BOUNDS[key][0]} and {BOUNDS[key][1]}")
    set_setting(db, key, value, actor)
