"""Users (admins): add accounts and see who holds which role."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from labeling.permissions import require
from labeling.users import MIN_PASSWORD, ROLES, UserError, add_user, list_users
from ui.common import database, guard


def users_page() -> None:
    user = guard("users.manage")
    db = database()
    st.title("Users")
    st.dataframe(pd.DataFrame([{"name": u.name, "roles": ", ".join(sorted(u.roles)), "active": u.active}
                               for u in list_users(db)]), hide_index=True, use_container_width=True)
    st.subheader("Add a user")
    with st.form("add_user", clear_on_submit=True):
        name = st.text_input("User name")
        roles = st.multiselect("Roles", ROLES, default=["reader"])
        pw = st.text_input(f"Initial password (at least {MIN_PASSWORD} characters)", type="password")
        go = st.form_submit_button("Add user", type="primary")
    if go:
        require(user, "users.manage")
        try:
            new = add_user(db, name, pw, roles, actor=user)
        except UserError as exc:
            st.error(str(exc))
        else:
            st.success(f"{new.name} added with role(s) {', '.join(sorted(new.roles))}.")
