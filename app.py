"""FNP TripleCheck — Streamlit entry point: `streamlit run app.py`.

Research annotation tool for facial nerve paralysis photos (Song et al. 2018 triple-check
protocol); not a diagnostic device.

This one file is both halves of the server. Imported by `streamlit run` it is the ASGI app
(`st.App`): Streamlit plus the sign-in routes and the gate of ui/web.py. Run by Streamlit for each
browser session it is the page script: it finds the session from the cookie, builds the menu for
the user's roles and runs the page, each of which checks the role again on the server.
"""
from __future__ import annotations

import logging
import time

import streamlit as st

log = logging.getLogger("fnp")


def main() -> None:
    st.set_page_config(page_title="FNP TripleCheck", page_icon="🩺", layout="wide")
    from labeling.accounts.permissions import allowed
    from labeling.accounts.users import has_users
    from ui.common import NOTICE, current_session, database, report_error, sign_out, signed_out_notice
    from ui.menu import PAGES
    from ui.nav import go, link

    started, cpu_started = time.perf_counter(), time.thread_time()
    try:
        db = database()
        if not has_users(db):
            st.title("FNP TripleCheck")
            st.info("No account exists yet: open the first-run set-up to create the first admin.")
            link("First-run set-up", "/setup", key="to_setup", primary=True)
            return
        leaving = st.session_state.pop("leave_to", None)
        if leaving:  # signed out by the button just pressed: this tab goes to the sign-in form
            go(leaving)
            return
        session = current_session()
        if session is None:
            signed_out_notice()
            return
        user = session.user
        pages = {path: st.Page(fn, title=title, icon=icon, url_path=path, default=(path == "home"))
                 for fn, title, icon, path, _ in PAGES}
        nav = st.navigation(list(pages.values()), position="hidden")
        with st.sidebar:
            for _, title, _, path, action in PAGES:
                if allowed(user, action):
                    st.page_link(pages[path], label=title, icon=pages[path].icon)
            st.divider()
            st.markdown(f"Signed in as **{user.name}**  \n{', '.join(sorted(user.roles))}")
            st.button("Sign out", icon=":material/logout:", on_click=sign_out, key="sign_out")
            st.button("Sign out everywhere", icon=":material/devices:", on_click=sign_out, args=(True,),
                      key="sign_out_everywhere", help="Ends your sessions on every computer and browser.")
            st.caption(NOTICE)
        nav.run()
    except Exception as exc:  # the last line of defence: never a traceback for the user
        report_error(exc)
    finally:
        log.debug("page run %.1f ms", (time.perf_counter() - started) * 1000)
        from ui.timing import record_run

        record_run(time.perf_counter() - started, time.thread_time() - cpu_started)


if __name__ == "__main__":  # Streamlit runs the script of each browser session as __main__
    main()
else:  # `streamlit run app.py` imports this module and serves the ASGI app below
    from starlette.middleware import Middleware

    from ui.web import SignInGate, routes

    app = st.App(__file__, routes=routes(), middleware=[Middleware(SignInGate)])
