"""My account (everyone): change your own password, see where you are signed in."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from labeling.accounts import sessions
from labeling.accounts import users
from ui.common import current_session, database, guard, sign_out


def account_page() -> None:
    user = guard("account.own")
    db = database()
    st.title("My account")
    st.markdown(f"**{user.name}** · {', '.join(sorted(user.roles))}")
    live = sessions.live_sessions(db, user)
    st.subheader("Where you are signed in")
    st.dataframe(pd.DataFrame([{"Signed in": s["created_at"][:16].replace("T", " ") + " UTC",
                                "Last active": s["last_seen"][:16].replace("T", " ") + " UTC",
                                "From": s["client"] or "—"} for s in live]), hide_index=True, width="stretch")
    st.button("Sign out everywhere", on_click=sign_out, args=(True,), key="account_sign_out_everywhere")
    st.subheader("Change your password")
    with st.form("own_password", clear_on_submit=True):
        current = st.text_input("Current password", type="password")
        new = st.text_input(f"New password (at least {users.MIN_PASSWORD} characters)", type="password")
        again = st.text_input("New password again", type="password")
        if st.form_submit_button("Change password", type="primary"):
            if new != again:
                st.error("The two new passwords differ.")
            else:
                session = current_session()
                try:
                    ended = users.change_own_password(db, user, current, new, keep_session=session.id if session else None)
                except users.UserError as exc:
                    st.error(str(exc).capitalize() + ".")
                else:
                    st.success("Password changed." + (f" {ended} other session(s) ended." if ended else ""))
