"""The Streamlit app under AppTest: first-run set-up, sign-in, role-filtered pages, no tracebacks."""
import datetime as dt

import pytest
from streamlit.testing.v1 import AppTest

from labeling.users import add_user, get_user
from tests.conftest import ROOT
from ui.menu import PAGES

APP = str(ROOT / "app.py")


def _app(user=None, page=None):
    at = AppTest.from_file(APP, default_timeout=60)
    if user is not None:
        at.session_state["user"] = user
        at.session_state["last_seen"] = dt.datetime.now(dt.timezone.utc)
    if page:
        at.switch_page(page)
    return at.run()


def _texts(at):
    return " ".join([*(e.value for e in at.markdown), *(e.value for e in at.error), *(e.value for e in at.info),
                     *(e.value for e in at.warning), *(e.value for e in at.success), *(e.value for e in at.title), *(e.value for e in at.subheader),
                     *(e.value for e in at.caption)])


def test_first_run_creates_the_admin_then_asks_to_sign_in(data_dir):
    at = _app()
    assert not at.exception
    assert "first-run set-up" in _texts(at)
    at.text_input[0].input("boss")
    at.text_input[1].input("correct horse battery")
    at.text_input[2].input("correct horse battery")
    at.button[0].click().run()
    assert not at.exception
    assert "Sign in" in [b.label for b in at.button]
    at.text_input(key="login_name").input("boss")
    at.text_input(key="login_password").input("correct horse battery")
    at.button[0].click().run()
    assert not at.exception
    assert "This project is empty" in _texts(at)


def test_wrong_password_and_lockout(db):
    add_user(db, "reader1", "a long password", ["reader"])
    at = _app()
    for _ in range(5):
        at.text_input(key="login_name").input("reader1")
        at.text_input(key="login_password").input("nope")
        at.button[0].click().run()
        assert "Wrong user name or password" in _texts(at)
    at.text_input(key="login_password").input("a long password")
    at.button[0].click().run()
    assert "Too many failed attempts" in _texts(at)


def test_idle_session_expires(db):
    user = add_user(db, "reader1", "a long password", ["reader"])
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["user"] = user
    at.session_state["last_seen"] = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)
    at.run()
    assert "session expired" in _texts(at)


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
    user = add_user(db, "someone", "a long password", roles)
    at = AppTest.from_string(_page_script(module, fn), default_timeout=60)
    at.session_state["user"] = user
    at.session_state["last_seen"] = dt.datetime.now(dt.timezone.utc)
    at.run()
    assert not at.exception
    refused = "You do not have access to this page." in _texts(at)
    assert refused != ok


@pytest.mark.parametrize("roles, offered, hidden", [
    (["reader"], {"Home"}, {"Import", "Users"}),
    (["coordinator"], {"Home", "Import"}, {"Users"}),
    (["admin"], {"Home", "Import", "Users"}, set()),
])
def test_menu_offers_only_the_pages_of_the_roles(db, roles, offered, hidden):
    from labeling.permissions import allowed

    user = add_user(db, "someone", "a long password", roles)
    titles = {title for _, title, _, _, action in PAGES if allowed(user, action)}
    assert offered <= titles and not (hidden & titles)


def test_empty_project_offers_the_demo_to_a_coordinator(db):
    user = add_user(db, "coord", "a long password", ["coordinator"])
    at = _app(user)
    assert not at.exception
    assert any("synthetic demo" in b.label for b in at.button)
