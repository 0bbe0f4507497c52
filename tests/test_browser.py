"""End to end in a real headless Chromium (Debian's, never a downloaded one) against the real
Streamlit server on loopback: first-run set-up, sign-in, loading the synthetic demo."""
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(data_dir):
    port = _free_port()
    env = {**os.environ, "FNP_DATA_DIR": str(data_dir)}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
                             "--server.port", str(port), "--server.headless", "true",
                             "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=1)
            break
        except OSError:
            time.sleep(0.25)
    else:
        proc.kill()
        pytest.fail("streamlit did not start: " + proc.stderr.read().decode()[-2000:])
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:  # a loaded machine: a busy server may not stop in time
        proc.kill()
        proc.wait()


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), "Debian chromium is missing: `make browser` installs it"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        pg.set_default_timeout(60_000)
        yield pg
        browser.close()


def test_first_run_sign_in_and_demo(server, page):
    page.goto(server)
    page.get_by_text("first-run set-up").wait_for()
    page.get_by_label("Admin user name").fill("boss")
    page.get_by_label("Password (at least 10 characters)").fill("correct horse battery")
    page.get_by_label("Password again").fill("correct horse battery")
    page.get_by_role("button", name="Create admin").click()
    page.get_by_role("button", name="Sign in").wait_for()
    page.get_by_label("User name").fill("boss")
    page.get_by_label("Password", exact=True).fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("This project is empty").wait_for()
    page.get_by_label("Synthetic subjects (7 photos each)").fill("7")
    page.get_by_label("Synthetic subjects (7 photos each)").press("Enter")
    page.get_by_role("button", name="Load the synthetic demo project").click()
    page.get_by_text("are SYNTHETIC").wait_for(timeout=180_000)
    assert "Traceback" not in page.content()
    assert page.get_by_text("Research tool, not a diagnostic device").count() >= 1
