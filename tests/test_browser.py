"""End to end in a real headless Chromium (Debian's, never a downloaded one) against the real
server on loopback: first-run set-up, sign-in, loading the synthetic demo and carrying it on to
final labels as `labeling demo --final` does."""
import pytest

from tests.browser import chromium, page, server, settled, sign_in  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow


def test_first_run_sign_in_and_demo(server, page):  # noqa: F811
    page.goto(server + "/status")
    page.get_by_text("First-run set-up").wait_for()
    page.get_by_label("Admin user name").fill("boss")
    page.get_by_label("Password (at least 10 characters)").fill("correct horse battery")
    page.get_by_label("Password again").fill("correct horse battery")
    page.get_by_role("button", name="Create admin").click()
    page.get_by_text("Admin account created").wait_for()
    sign_in(page, server, "boss", "correct horse battery")
    page.get_by_text("This project is empty").wait_for()
    page.get_by_label("Synthetic subjects (7 photos each)").fill("7")
    page.get_by_label("Synthetic subjects (7 photos each)").press("Enter")
    page.get_by_role("button", name="Load the synthetic demo project").click()
    page.get_by_text("are SYNTHETIC").wait_for(timeout=180_000)
    # 7 subjects: one image per movement x class cell, and the demo said it set the minimum to match.
    page.get_by_text('"Range box: fewest images" is now 1 (was 5)').wait_for()
    page.get_by_text("7 synthetic subjects give 1 image(s) in the smallest movement x class cell").wait_for()
    settled(page)  # the load's rerun is over: a click now is the next action, not part of the last one
    page.get_by_role("button", name="Carry the demo on to final labels (simulated readers and adjudicator)").click()
    page.get_by_text("49 of 49 image(s) now have a final label").wait_for(timeout=240_000)
    assert "Traceback" not in page.content()
    assert page.get_by_text("Research tool, not a diagnostic device").count() >= 1
