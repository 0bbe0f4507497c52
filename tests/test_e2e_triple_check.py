"""End to end in Debian's Chromium: two readers label the demo by keyboard, a coordinator runs
check 2, an adjudicator settles the rest by keyboard, and every image ends with a final label."""
import pytest

from labeling import settings
from labeling.demo import load_demo
from labeling.users import add_user
from labeling.workflow import final_labels, state_counts
from tests.test_browser import page, server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow


def _sign_in(page, url, name, password):
    page.goto(url)
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(f"Signed in as {name}").wait_for()


def _sign_out(page):
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in").wait_for()


def _read_all(page, keys):
    page.get_by_role("link", name="Read").click()
    for n, key in enumerate(keys, 1):
        page.get_by_text(f"{n - 1} read ·").wait_for()
        page.get_by_role("button", name="N · normal").wait_for()
        page.wait_for_timeout(300)  # the shortcut listeners attach after the buttons render
        page.keyboard.press(key)
    page.get_by_text("Nothing left for you to read right now").wait_for()


def test_three_checks_to_final_labels(db, data_dir, server, page):  # noqa: F811
    load_demo(db, data_dir, subjects=1, seed=21, workers=1)
    for name, role in (("reader-a", "reader"), ("reader-b", "reader"), ("senior", "adjudicator"), ("coord", "coordinator")):
        add_user(db, name, "a long password", [role])
    settings.change(db, "range_min_count", 1, "test")  # 7 images: one per cell

    _sign_in(page, server, "reader-a", "a long password")
    _read_all(page, ["n"] * 7)
    _sign_out(page)
    _sign_in(page, server, "reader-b", "a long password")
    _read_all(page, ["n"] * 4 + ["j"] * 3)  # disagrees on the last three
    _sign_out(page)
    assert state_counts(db)["agreed"] == 4 and state_counts(db)["awaiting_adjudication"] == 3

    _sign_in(page, server, "coord", "a long password")
    page.get_by_role("link", name="Status").click()
    page.get_by_role("button", name="Measure new images and run check 2").click()
    page.get_by_text("Measured:").wait_for(timeout=120_000)
    page.get_by_role("button", name="Re-learn the range table (new version)").click()
    page.get_by_text("learned; check 2").wait_for(timeout=60_000)
    _sign_out(page)
    counts = state_counts(db)
    assert counts["accepted"] == 4, counts

    _sign_in(page, server, "senior", "a long password")
    page.get_by_role("link", name="Adjudicate").click()
    for left in (3, 2, 1):
        page.get_by_text(f"{left} image(s) waiting").wait_for()
        page.get_by_role("button", name="R1").wait_for()
        page.wait_for_timeout(300)
        page.keyboard.press("j")
    page.get_by_text("No image is waiting for adjudication").wait_for()
    assert "Traceback" not in page.content()

    finals = final_labels(db)
    assert len(finals) == 7
    assert sorted(finals.how.value_counts().items()) == [("adjudication", 3), ("check 2", 4)]
    assert set(finals[finals.how == "adjudication"].final_label) == {"R1"}
