"""The Streamlit app under AppTest: what it shows without an account, without a session and with
one; role-filtered pages; no tracebacks. (Signing in through the browser, with the session cookie,
is tests/test_sessions_server.py: it needs the real server.)"""
import datetime as dt

import pytest
from streamlit.testing.v1 import AppTest

from labeling.accounts.users import add_user
from tests.conftest import ROOT, SHELL, signed_in

APP = str(ROOT / "app.py")


def _app(user=None, page=None):
    at = AppTest.from_file(APP, default_timeout=60)
    if user is not None:
        signed_in(at, user)
    if page:
        at.switch_page(page)
    return at.run()


def _texts(at):
    return " ".join([*(e.value for e in at.markdown), *(e.value for e in at.error), *(e.value for e in at.info),
                     *(e.value for e in at.warning), *(e.value for e in at.success), *(e.value for e in at.title),
                     *(e.value for e in at.subheader), *(e.value for e in at.caption)])


def test_a_project_without_accounts_points_to_first_run_set_up(data_dir):
    at = _app()
    assert not at.exception
    assert "No account exists yet" in _texts(at)


def test_without_a_session_nothing_but_the_way_to_sign_in(db):
    add_user(db, "reader1", "a long password", ["reader"], actor=SHELL)
    at = _app()
    assert not at.exception
    assert "You are signed out" in _texts(at)
    assert not at.sidebar.markdown  # no menu, no name


def test_idle_session_ends(db):
    user = add_user(db, "reader1", "a long password", ["reader"], actor=SHELL)
    at = signed_in(AppTest.from_file(APP, default_timeout=60), user)
    db.execute("UPDATE sessions SET last_seen = ?", [(dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2))
                                                     .isoformat(timespec="milliseconds")])
    at.run()
    assert "You are signed out" in _texts(at)
    assert db.execute("SELECT revoked_why FROM sessions").fetchone()[0] == "idle"


def _page_script(module: str, fn: str) -> str:
    return f"from {module} import {fn}\n{fn}()\n"


@pytest.mark.parametrize("roles, module, fn, ok", [
    (["reader"], "ui.import_page", "import_page", False),
    (["auditor"], "ui.import_page", "import_page", False),
    (["coordinator"], "ui.import_page", "import_page", True),
    (["reader", "coordinator"], "ui.users_page", "users_page", False),
    (["admin"], "ui.users_page", "users_page", True),
])
def test_each_page_checks_the_role_itself(db, roles, module, fn, ok):
    """Opening a page directly (not through the menu) is refused without the role."""
    user = add_user(db, "someone", "a long password", roles, actor=SHELL)
    at = signed_in(AppTest.from_string(_page_script(module, fn), default_timeout=60), user)
    at.run()
    assert not at.exception
    refused = "You do not have access to this page." in _texts(at)
    assert refused != ok


@pytest.mark.parametrize("roles, offered, hidden", [
    (["reader"], {"Home", "Read", "My account"}, {"Import", "Users"}),
    (["coordinator"], {"Home", "Import"}, {"Users", "Read"}),
    (["admin"], {"Home", "Import", "Users"}, {"Read"}),
])
def test_menu_offers_only_the_pages_of_the_roles(db, roles, offered, hidden):
    user = add_user(db, "someone", "a long password", roles, actor=SHELL)
    at = _app(user)
    assert not at.exception
    links = {link.label for link in at.sidebar.get("page_link")}
    assert offered <= links and not (hidden & links), links


def test_a_role_taken_away_applies_to_the_next_page_run(db):
    from labeling.accounts.users import set_roles

    user = add_user(db, "someone", "a long password", ["coordinator", "reader"], actor=SHELL)
    at = _app(user)
    assert "Import" in {link.label for link in at.sidebar.get("page_link")}
    set_roles(db, "someone", ["reader"], actor=SHELL)
    at.run()
    assert "Import" not in {link.label for link in at.sidebar.get("page_link")}


def test_empty_project_offers_the_demo_to_a_coordinator(db):
    user = add_user(db, "coord", "a long password", ["coordinator"], actor=SHELL)
    at = _app(user)
    assert not at.exception
    assert any("synthetic demo" in b.label for b in at.button)

