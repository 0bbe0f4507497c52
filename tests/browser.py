"""What the browser tests share: the real server (`streamlit run app.py`, the command users run) on
loopback, Debian's Chromium (never a downloaded one), and the steps a person takes in it."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
PASSWORD = "a long password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `streamlit run app.py` process on a free loopback port; `url` is where it answers."""

    def __init__(self, data_dir: Path, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(data_dir).parent / f"server-{self.port}.log"
        env = {**os.environ, "FNP_DATA_DIR": str(data_dir), **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1", "--server.port",
             str(self.port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"))
        for _ in range(240):
            try:
                urllib.request.urlopen(self.url + "/_stcore/health", timeout=1)
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.25)
        self.stop()
        pytest.fail("streamlit did not start: " + self.log.read_text()[-2000:])

    def errors(self) -> list[str]:
        """Lines of the server log that tell of an error (tracebacks, exceptions)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [line for line in text.splitlines()
                if "Traceback" in line or "unhandled error" in line or "OperationalError" in line]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:  # a loaded machine: a busy server may not stop in time
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def server(data_dir):
    """The URL of a real server on the test's data folder."""
    s = Server(data_dir)
    yield s.url
    s.stop()


@pytest.fixture
def chromium():
    """A headless Debian Chromium (one browser; tests open as many contexts, i.e. people, as they need)."""
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), "Debian chromium is missing: `make browser` installs it"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def new_page(browser, width: int = 1280, height: int = 900):
    """A page in a fresh browser context: its own cookies, i.e. another person at another desk."""
    pg = browser.new_context(viewport={"width": width, "height": height}).new_page()
    pg.set_default_timeout(60_000)
    return pg


@pytest.fixture
def page(chromium):
    return new_page(chromium)


def sign_in(page, url: str, name: str, password: str = PASSWORD, path: str = "/") -> None:
    """Open `path`; the gate sends the browser to the sign-in form; sign in and land on `path`."""
    page.goto(url + path)
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(f"Signed in as {name}").wait_for()


def sign_out(page, everywhere: bool = False) -> None:
    """Sign out with the sidebar's button; end on the sign-in form."""
    page.get_by_role("button", name="Sign out everywhere" if everywhere else "Sign out", exact=True).click()
    page.get_by_role("button", name="Sign in").wait_for()


def settled(page, timeout: float = 60_000) -> None:
    """Wait until the page's script run is over (Streamlit's status widget shows no running icon), as
    a person waits for a page to finish before pressing its next button."""
    page.wait_for_function("() => !document.querySelector('[data-testid^=stStatusWidgetRunning]')", timeout=timeout)
    page.wait_for_timeout(200)
    page.wait_for_function("() => !document.querySelector('[data-testid^=stStatusWidgetRunning]')", timeout=timeout)


def painted(page) -> str | None:
    """The token of the decision surface's image now painted, or None."""
    return page.evaluate("window.__fnpPainted ? window.__fnpPainted.token : null")


def wait_for_new_image(page, previous: str | None, timeout: float = 60_000) -> str:
    """Wait until the decision surface paints an image other than `previous`; return its token."""
    page.wait_for_function("prev => window.__fnpPainted && window.__fnpPainted.token !== prev", arg=previous,
                           timeout=timeout)
    return painted(page)


def look_and_press(page, key: str, previous: str | None, look_ms: int = 600) -> str:
    """Wait for the next image, look at it for `look_ms` (past the minimum viewing time), press `key`;
    return the token of the image the key was pressed on."""
    token = wait_for_new_image(page, previous)
    page.wait_for_timeout(look_ms)
    page.keyboard.press(key)
    return token
