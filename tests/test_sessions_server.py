"""The sign-in routes of the real server, over HTTP: the gate, the session cookie's flags, the form's
CSRF and origin checks, where `next` may lead, and hostile input echoed as text."""
import http.client
import re
import urllib.parse

import pytest

from labeling.accounts.users import add_user
from tests.browser import Server
from tests.conftest import SHELL


class Client:
    """A browser without the browser: keeps cookies, never follows a redirect by itself."""

    def __init__(self, url):
        self.host, self.port = urllib.parse.urlsplit(url).netloc.split(":")
        self.cookies: dict[str, str] = {}

    def request(self, method, path, form=None, headers=None):
        conn = http.client.HTTPConnection(self.host, int(self.port), timeout=30)
        h = {"Accept": "text/html", **(headers or {})}
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            h["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        text = r.read().decode("utf-8", "replace")
        set_cookies = r.headers.get_all("set-cookie") or []
        for c in set_cookies:
            name, value = c.split(";", 1)[0].split("=", 1)
            if "max-age=0" in c.lower() or 'expires=thu, 01 jan 1970' in c.lower():
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        conn.close()
        return r.status, r.headers, text, set_cookies

    def csrf(self, path="/signin"):
        status, _, text, _ = self.request("GET", path)
        return re.search(r'name="csrf" value="([^"]+)"', text).group(1)


@pytest.fixture
def served(db, data_dir):
    add_user(db, "reader1", "a long password", ["reader"], actor=SHELL)
    server = Server(data_dir)
    yield server
    server.stop()


def test_the_gate_sends_a_deep_link_to_sign_in_and_back(served):
    c = Client(served.url)
    status, headers, _, _ = c.request("GET", "/read?x=1")
    assert status == 303 and headers["location"] == "/signin?next=/read%3Fx%3D1"
    assert c.request("GET", "/_stcore/health")[0] == 200  # Streamlit's own machinery is never stopped
    token = c.csrf("/signin?next=/read%3Fx%3D1")
    status, headers, _, cookies = c.request("POST", "/signin", {"name": "reader1", "password": "a long password",
                                                                "next": "/read?x=1", "csrf": token})
    assert status == 303 and headers["location"] == "/read?x=1"
    session = [x for x in cookies if x.startswith("fnp_session=")][0].lower()
    assert "httponly" in session and "samesite=lax" in session and "path=/" in session
    assert c.request("GET", "/read")[0] == 200  # signed in: the page itself


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "/signin?next=/x",
                                    "javascript:alert(1)"])
def test_next_never_leads_off_the_app(served, target):
    c = Client(served.url)
    token = c.csrf()
    status, headers, _, _ = c.request("POST", "/signin", {"name": "reader1", "password": "a long password",
                                                          "next": target, "csrf": token})
    assert status == 303 and headers["location"] == "/"


def test_forms_need_their_csrf_token_and_our_origin(served):
    c = Client(served.url)
    token = c.csrf()
    form = {"name": "reader1", "password": "a long password", "next": "/", "csrf": token}
    assert c.request("POST", "/signin", {**form, "csrf": "forged-token-forged-token"})[0] == 400
    assert c.request("POST", "/signin", form, headers={"Origin": "https://evil.example"})[0] == 400
    stranger = Client(served.url)  # a page elsewhere posting with no cookie of ours
    assert stranger.request("POST", "/signin", form)[0] == 400
    assert "fnp_session" not in c.cookies and "fnp_session" not in stranger.cookies
    assert c.request("POST", "/signin", form)[0] == 303


def test_wrong_passwords_lock_and_hostile_names_come_back_as_text(served):
    c = Client(served.url)
    token = c.csrf()
    evil = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    status, _, text, _ = c.request("POST", "/signin", {"name": evil, "password": "x", "next": "/", "csrf": token})
    assert status == 401 and "Wrong user name or password" in text
    assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)" in text
    for _ in range(5):
        c.request("POST", "/signin", {"name": "reader1", "password": "wrong", "next": "/", "csrf": token})
    status, _, text, _ = c.request("POST", "/signin", {"name": "reader1", "password": "a long password", "next": "/",
                                                       "csrf": token})
    assert status == 401 and "Too many failed attempts" in text


def test_first_run_set_up_creates_one_admin_then_closes(data_dir):
    server = Server(data_dir)
    try:
        c = Client(server.url)
        assert c.request("GET", "/")[1]["location"] == "/setup"
        token = c.csrf("/setup")
        form = {"name": "boss", "password": "correct horse battery", "password2": "correct horse battery",
                "role": "coordinator", "csrf": token}
        status, headers, _, _ = c.request("POST", "/setup", form)
        assert status == 303 and headers["location"] == "/signin?why=created"
        status, headers, _, _ = c.request("POST", "/setup", {**form, "name": "intruder"})
        assert status == 303 and headers["location"] == "/signin"  # set-up is over: no second admin
        from db.project import open_project

        db = open_project(data_dir)
        assert [r[0] for r in db.execute("SELECT name FROM users")] == ["boss"]
        assert db.execute("SELECT roles FROM users").fetchone()[0] == "admin,coordinator"
        db.close()
    finally:
        server.stop()


def test_a_project_without_an_admin_still_gets_one_in_the_browser(served, db):
    """A project made from the command line (the demo and its simulated readers, say) has accounts
    but no admin: the sign-in page points to set-up, which creates one admin and then closes."""
    c = Client(served.url)
    status, _, text, _ = c.request("GET", "/signin")
    assert status == 200 and "no admin yet" in text and 'href="/setup"' in text
    token = c.csrf("/setup")
    form = {"name": "boss", "password": "correct horse battery", "password2": "correct horse battery", "csrf": token}
    assert c.request("POST", "/setup", form)[1]["location"] == "/signin?why=created"
    assert c.request("GET", "/setup")[1]["location"] == "/signin"
    assert "no admin yet" not in c.request("GET", "/signin")[2]
    assert [r[0] for r in db.execute("SELECT roles FROM users WHERE name = 'boss'")] == ["admin"]
