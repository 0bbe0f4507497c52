"""Project settings (admins): read mode, reads per image, checks, leases, blinding."""
from __future__ import annotations

import streamlit as st

from labeling import settings
from labeling.permissions import require
from labeling.queue import ensure_slots
from ui.common import database, guard

HELP = {
    "read_mode": "inter: two different neurologists read each image; intra: the same neurologist twice, after the washout.",
    "reads_per_image": "Blind reads per image (the paper: 2).",
    "washout_hours": "intra mode: hours before the same reader gets an image again.",
    "check2_enabled": "Cross-check agreed labels against the learned asymmetry ranges.",
    "lease_seconds": "How long a claimed image stays reserved for its reader.",
    "undo_seconds": "How long a reader may undo their last read.",
    "reveal_readers": "Show adjudicators the readers' names instead of Reader A / Reader B.",
    "pick_best_face": "When the detector finds several faces, measure the highest-scoring one.",
    "range_lo": "Lower percentile of the range boxes.",
    "range_hi": "Upper percentile of the range boxes.",
    "range_min_count": "Fewest consensus images a movement × class cell needs for a box.",
}


def settings_page() -> None:
    user = guard("settings.manage")
    db = database()
    st.title("Project settings")
    current = settings.all_settings(db)
    with st.form("settings"):
        values = {}
        for key, value in current.items():
            if key in settings.CHOICES:
                opts = list(settings.CHOICES[key])
                values[key] = st.selectbox(key, opts, index=opts.index(value), help=HELP.get(key))
            elif isinstance(settings.DEFAULTS[key], bool):
                values[key] = st.toggle(key, value=bool(value), help=HELP.get(key))
            elif isinstance(settings.DEFAULTS[key], int):
                lo, hi = settings.BOUNDS.get(key, (0, 10**9))
                values[key] = st.number_input(key, min_value=int(lo), max_value=int(hi), value=int(value), help=HELP.get(key))
            else:
                lo, hi = settings.BOUNDS.get(key, (0.0, 1e9))
                values[key] = st.number_input(key, min_value=float(lo), max_value=float(hi), value=float(value),
                                              help=HELP.get(key))
        save = st.form_submit_button("Save", type="primary")
    if save:
        require(user, "settings.manage")
        changed = []
        for key, value in values.items():
            if value != current[key]:
                try:
                    settings.change(db, key, value, user)
                    changed.append(key)
                except settings.SettingError as exc:
                    st.error(str(exc))
        if "reads_per_image" in changed:
            ensure_slots(db)
        st.success(f"Saved: {', '.join(changed)}." if changed else "Nothing changed.")
