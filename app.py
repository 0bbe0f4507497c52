"""FNP TripleCheck — Streamlit entry point.

Research annotation tool for facial nerve paralysis photos (Song et al. 2018 triple-check
protocol); not a diagnostic device. Pages live in ui/; each checks the user's role on the
server before it shows or writes anything.
"""
from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="FNP TripleCheck", page_icon="🩺", layout="wide")

from labeling.permissions import allowed  # noqa: E402
from labeling.queue import release  # noqa: E402
from labeling.users import list_users  # noqa: E402
from ui.auth_pages import login_page, setup_page  # noqa: E402
from ui.common import NOTICE, current_user, database, report_error, sign_out  # noqa: E402
from ui.menu import PAGES  # noqa: E402


def main() -> None:
    try:
        db = database()
        if not list_users(db):
            st.navigation([st.Page(setup_page, title="Set-up", url_path="setup")], position="hidden").run()
            return
        user = current_user()
        if user is None:
            st.navigation([st.Page(login_page, title="Sign in", url_path="login")], position="hidden").run()
            return
        pages = [st.Page(fn, title=title, icon=icon, url_path=path, default=(path == "home"))
                 for fn, title, icon, path, action in PAGES if allowed(user, action)]
        with st.sidebar:
            st.markdown(f"Signed in as **{user.name}**  \n{', '.join(sorted(user.roles))}")
            if st.button("Sign out", icon=":material/logout:"):
                release(db, user)  # give back any image this reader held, at once
                sign_out("You are signed out.")
                st.rerun()
            st.caption(NOTICE)
        st.navigation(pages).run()
    except Exception as exc:  # the last line of defence: never a traceback for the user
        report_error(exc)


main()
