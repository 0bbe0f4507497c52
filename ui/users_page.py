"""Users (admins): add accounts, change roles, reset passwords, deactivate and reactivate, unlock."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from labeling.accounts import auth
from labeling.accounts import sessions
from labeling.accounts import users
from labeling.accounts.permissions import PermissionDenied
from ui.common import database, guard


def _run(action, done: str) -> None:
    try:
        action()
    except (users.UserError, PermissionDenied) as exc:
        st.error(str(exc))
    else:
        st.success(done)


def users_page() -> None:
    admin = guard("users.manage")
    db = database()
    st.title("Users")
    locked = set(auth.locked_names(db))
    everyone = users.list_users(db)
    st.dataframe(pd.DataFrame([{"Name": u.name, "Roles": ", ".join(sorted(u.roles)),
                                "Account": "active" if u.active else "deactivated",
                                "Sign-in": "locked out (too many wrong passwords)" if u.name.lower() in locked else "ok",
                                "Open sessions": len(sessions.live_sessions(db, u))}
                               for u in everyone]), hide_index=True, width="stretch")
    add, change = st.tabs(["Add a user", "Change a user"])
    with add, st.form("add_user", clear_on_submit=True):
        name = st.text_input("User name")
        roles = st.multiselect("Roles", users.ROLES, default=["reader"])
        pw = st.text_input(f"Initial password (at least {users.MIN_PASSWORD} characters)", type="password")
        if st.form_submit_button("Add user", type="primary"):
            _run(lambda: users.add_user(db, name, pw, roles, actor=admin), f"{name} added with role(s) {', '.join(roles)}.")
    with change:
        if not everyone:
            return
        target = st.selectbox("User", [u.name for u in everyone], key="manage_user")
        who = next(u for u in everyone if u.name == target)
        with st.form("roles"):
            new_roles = st.multiselect("Roles", users.ROLES, default=sorted(who.roles))
            if st.form_submit_button("Save roles"):
                _run(lambda: users.set_roles(db, who.name, new_roles, actor=admin),
                     f"{who.name} now has role(s) {', '.join(sorted(new_roles))}; it applies to their next action.")
        with st.form("reset", clear_on_submit=True):
            pw = st.text_input(f"New password for {who.name}", type="password")
            if st.form_submit_button("Reset password"):
                _run(lambda: users.reset_password(db, who.name, pw, actor=admin),
                     f"Password of {who.name} reset; their open sessions ended.")
        cols = st.columns(3)
        if who.active and cols[0].button("Deactivate", help="Signs them out everywhere; their reads stay."):
            _run(lambda: users.set_active(db, who.name, False, actor=admin), f"{who.name} deactivated.")
        if not who.active and cols[0].button("Reactivate"):
            _run(lambda: users.set_active(db, who.name, True, actor=admin), f"{who.name} reactivated.")
        if who.name.lower() in locked and cols[1].button("Unlock sign-in"):
            _run(lambda: auth.unlock(db, who.name, actor=admin), f"{who.name} may sign in again.")
        if cols[2].button("Sign out everywhere", help="Ends every open session of this user."):
            _run(lambda: sessions.end_all_sessions(db, who, f"signed out by {admin.name}"),
                 f"Every session of {who.name} ended.")
