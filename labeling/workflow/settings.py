"""Project settings, declared once: name, default, allowed values and help text (stored in the
`settings` table). The Settings page and the command line are built from these declarations.

Changing a workflow setting mid-project never reopens finished work: a new number of reads per
image applies to images whose check 1 is not complete, and switching the read mode re-plans only
the open read slots. `preview` says what a change will do before `change` does it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from types import MappingProxyType

from db.access import Database, audit, get_setting, put_setting, transaction
from labeling.accounts.actors import Actor
from labeling.workflow import slot_plans
from labeling.accounts.permissions import authorize, require


@dataclass(frozen=True)
class Setting:
    """One project setting: its key, default, what it is called on screen and why it matters."""

    key: str
    default: object
    label: str
    help: str
    bounds: tuple | None = None
    choices: tuple | None = None
    unit: str = ""


DECLARED = (
    Setting("read_mode", "inter", "Read mode",
            "inter: two different neurologists read each image; intra: the same neurologist twice, after the washout.",
            choices=("inter", "intra")),
    Setting("reads_per_image", 2, "Reads per image", "Blind reads per image (the paper: 2). A change applies to "
            "images whose check 1 is not complete.", bounds=(2, 10)),
    Setting("washout_hours", 336, "Washout (intra mode)",
            "Hours before the same reader gets an image again in intra mode (336 = two weeks).", bounds=(0, 24 * 365),
            unit="hours"),
    Setting("check2_enabled", True, "Asymmetry cross-check (check 2)",
            "Cross-check agreed labels against the learned asymmetry ranges."),
    Setting("lease_seconds", 600, "Image reservation",
            "How long an image handed to a reader stays reserved for them.", bounds=(30, 24 * 3600), unit="seconds"),
    Setting("undo_seconds", 120, "Undo window",
            "How long a reader may undo their last read, and an adjudicator their last decision.", bounds=(0, 3600),
            unit="seconds"),
    Setting("key_dwell_ms", 400, "Minimum viewing time",
            "A label key or click counts only once the image has been on screen this long; quicker presses (a "
            "double press, a held key) are ignored.", bounds=(0, 5000), unit="ms"),
    Setting("qc_share", 0.05, "Quality-control share of each queue",
            "The share of each reader's images that are quality-control items: mirror items (a flipped copy of an "
            "image they graded earlier) and gold items (final-labelled images a coordinator marked). Shown like any "
            "other image; never counted as reads.", bounds=(0.0, 0.5)),
    Setting("reveal_readers", False, "Show readers' names to adjudicators",
            "Adjudicators see Reader A / Reader B unless this is on."),
    Setting("pick_best_face", False, "Measure the best face when several are found",
            "When the detector finds several faces, measure the highest-scoring one instead of refusing."),
    Setting("range_lo", 5.0, "Range box: lower percentile", "Lower percentile of the check-2 range boxes.",
            bounds=(0.0, 49.0)),
    Setting("range_hi", 95.0, "Range box: upper percentile", "Upper percentile of the check-2 range boxes.",
            bounds=(51.0, 100.0)),
    Setting("range_min_count", 5, "Range box: fewest images",
            "Fewest consensus images a movement x class cell needs for a range box.", bounds=(1, 1000)),
    Setting("session_idle_minutes", 30, "Sign-out after inactivity",
            "A session idle this long must sign in again.", bounds=(5, 24 * 60), unit="minutes"),
    Setting("session_max_hours", 12, "Longest session",
            "A session ends this long after sign-in, however active.", bounds=(1, 24 * 14), unit="hours"),
)
SETTINGS: dict[str, Setting] = {s.key: s for s in DECLARED}
DEFAULTS: dict[str, object] = {s.key: s.default for s in DECLARED}


class SettingError(ValueError):
    """A setting value is not allowed; the message says which and why."""


def get(db: Database, key: str):
    """Return the project's value of setting `key` (its default when never set)."""
    if key not in SETTINGS:
        raise KeyError(key)
    return get_setting(db, key, SETTINGS[key].default)


def all_settings(db: Database) -> dict[str, object]:
    """Return every setting with its current value."""
    stored = dict(db.execute("SELECT key, value FROM settings").fetchall())
    return {k: json.loads(stored[k]) if k in stored else s.default for k, s in SETTINGS.items()}


def snapshot(db: Database) -> MappingProxyType:
    """Every setting as it stands now, read in one query and read-only: an operation that needs
    several settings reads them once, so it never mixes values from before and after a change."""
    return MappingProxyType(all_settings(db))


def validate(key: str, value):
    """Return `value` converted to the setting's type, or raise SettingError saying what is allowed."""
    if key not in SETTINGS:
        raise SettingError(f"unknown setting {key!r}")
    s = SETTINGS[key]
    kind = type(s.default)
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise ValueError
                value = value.lower() in ("true", "1", "yes", "on")
            value = bool(value)
        elif kind is int:
            number = float(value)
            if number != int(number):
                raise ValueError
            value = int(number)
        else:
            value = kind(value)
    except (TypeError, ValueError):
        raise SettingError(f"{s.label} must be {'a whole number' if kind is int else 'a ' + kind.__name__}; "
                           f"got {value!r}") from None
    if s.choices and value not in s.choices:
        raise SettingError(f"{s.label} must be one of {', '.join(s.choices)}; got {value!r}")
    if s.bounds and not s.bounds[0] <= value <= s.bounds[1]:
        unit = f" {s.unit}" if s.unit else ""
        raise SettingError(f"{s.label} must be between {s.bounds[0]} and {s.bounds[1]}{unit}; got {value}")
    return value


def preview(db: Database, key: str, value) -> str:
    """Return, in a sentence, what changing `key` to `value` would do (nothing is changed)."""
    value = validate(key, value)
    old = get(db, key)
    s = SETTINGS[key]
    if value == old:
        return f"{s.label} is already {value}."
    if key == "reads_per_image":
        return slot_plans.preview_reads_required(db, int(value))
    if key == "read_mode":
        return slot_plans.preview_read_mode(db, str(value), get(db, "washout_hours"))
    return f"{s.label}: {old} → {value}{' ' + s.unit if s.unit else ''}."


def _read(conn, key: str):
    """The value of `key` in force inside a transaction on `conn` (its default when never set)."""
    return get_setting(conn, key, SETTINGS[key].default)


def change(db: Database, key: str, value, actor: Actor) -> str:
    """Validate and store a setting, with what it implies for the read queue, in one audited
    transaction; return what was done (as `preview` said). Needs 'settings.manage'."""
    require(actor, "settings.manage")
    value = validate(key, value)
    with transaction(db) as conn:
        who = authorize(conn, actor, "settings.manage")
        old = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        old = SETTINGS[key].default if old is None else json.loads(old[0])
        if old == value:
            return f"{SETTINGS[key].label} is already {value}: nothing changed."
        put_setting(conn, key, value)
        effect = {}
        if key == "reads_per_image":
            effect = slot_plans.apply_reads_required(conn, int(value), _read(conn, "read_mode") == "intra",
                                                      float(_read(conn, "washout_hours")))
        elif key == "read_mode":
            effect = slot_plans.apply_read_mode(conn, str(value), float(_read(conn, "washout_hours")))
        audit(conn, who, "setting.changed", "setting", key, value=value, before=old, **effect)
    s = SETTINGS[key]
    done = f"{s.label}: {old} → {value}{' ' + s.unit if s.unit else ''}."
    if key == "reads_per_image":
        done += (f" {effect['images_changed']} image(s) not yet through check 1 now need {value} reads; "
                 f"{effect['images_kept']} image(s) whose check 1 is complete keep theirs.")
    elif key == "read_mode":
        done += f" {effect['slots_replanned']} open read slot(s) re-planned."
    return done
