"""Project settings (admins): read mode, reads per image, checks, leases, viewing time, sessions.

Every setting comes from its declaration in labeling/workflow/settings.py (label, help, allowed range). A
change is previewed in words before it is saved, and out-of-range values are refused with a
message naming the range, never silently clamped.
"""
from __future__ import annotations

import streamlit as st

from labeling.workflow import settings
from ui.common import database, guard


def _input(key: str, value):
    s = settings.SETTINGS[key]
    label = s.label + (f" ({s.unit})" if s.unit else "")
    help_text = s.help + (f" Allowed: {s.bounds[0]}–{s.bounds[1]}." if s.bounds else "")
    if s.choices:
        opts = list(s.choices)
        return st.selectbox(label, opts, index=opts.index(value), help=help_text, key=f"set_{key}")
    if isinstance(s.default, bool):
        return st.toggle(label, value=bool(value), help=help_text, key=f"set_{key}")
    if isinstance(s.default, int):  # no min/max on the widget: a value out of range gets a message
        return st.number_input(label, value=int(value), step=1, help=help_text, key=f"set_{key}")
    return st.number_input(label, value=float(value), help=help_text, key=f"set_{key}")


def settings_page() -> None:
    user = guard("settings.manage")
    db = database()
    st.title("Project settings")
    current = settings.all_settings(db)
    values = {key: _input(key, value) for key, value in current.items()}
    changed = {k: v for k, v in values.items() if v != current[k]}
    if not changed:
        st.caption("Change a value to see what it would do before saving it.")
        return
    st.subheader("What saving will do")
    problems = []
    for key, value in changed.items():
        try:
            st.markdown("- " + settings.preview(db, key, value))
        except settings.SettingError as exc:
            problems.append(str(exc))
    for p in problems:
        st.error(p)
    if st.button("Save these changes", type="primary", disabled=bool(problems)):
        done = []
        for key, value in changed.items():
            try:
                done.append(settings.change(db, key, value, user))
            except settings.SettingError as exc:
                st.error(str(exc))
        for line in done:
            st.success(line)
