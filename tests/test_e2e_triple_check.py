"""End to end in Debian's Chromium: two readers label the demo by keyboard, a coordinator runs
check 2, an adjudicator settles the rest by keyboard, and every image ends with a final label."""
import pytest

from labeling.workflow import settings
from labeling.demo.project import load_demo
from labeling.accounts.users import add_user
from labeling.workflow.states import final_labels, state_counts
from tests.browser import chromium, look_and_press, page, server, sign_in, sign_out  # noqa: F401 - fixtures
from tests.conftest import SHELL

pytestmark = pytest.mark.slow


def _read_all(page, keys):
    page.get_by_role("link", name="Read").click()
    token = None
    for n, key in enumerate(keys, 1):
        page.get_by_text(f"{n - 1} read ·").wait_for()
        token = look_and_press(page, key, token)
    page.get_by_text("Nothing left for you to read right now").wait_for()


def test_three_checks_to_final_labels(db, data_dir, server, page):  # noqa: F811
    load_demo(db, data_dir, subjects=1, seed=21, workers=1, actor=SHELL)
    for name, role in (("reader-a", "reader"), ("reader-b", "reader"), ("senior", "adjudicator"), ("coord", "coordinator")):
        add_user(db, name, "a long password", [role], actor=SHELL)
    settings.change(db, "range_min_count", 1, SHELL)  # 7 images: one per cell

    sign_in(page, server, "reader-a")
    _read_all(page, ["n"] * 7)
    sign_out(page)
    sign_in(page, server, "reader-b")
    _read_all(page, ["n"] * 4 + ["j"] * 3)  # disagrees on the last three
    sign_out(page)
    assert state_counts(db)["agreed"] == 4 and state_counts(db)["awaiting_adjudication"] == 3

    sign_in(page, server, "coord")
    page.get_by_role("link", name="Status").click()
    page.get_by_role("button", name="Measure new images and run check 2").click()
    page.get_by_text("7 images measured:").wait_for(timeout=120_000)
    page.get_by_role("button", name="Re-learn the range table (new version)").click()
    page.get_by_text("learned; check 2").wait_for(timeout=60_000)
    sign_out(page)
    counts = state_counts(db)
    assert counts["accepted"] == 4, counts

    sign_in(page, server, "senior")
    page.get_by_role("link", name="Adjudicate").click()
    token = None
    for left in (3, 2, 1):
        page.get_by_text(f"{left} image(s) waiting").wait_for()
        token = look_and_press(page, "j", token)
    page.get_by_text("No image is waiting for adjudication").wait_for()
    assert "Traceback" not in page.content()

    finals = final_labels(db)
    assert len(finals) == 7
    assert sorted(finals.how.value_counts().items()) == [("adjudication", 3), ("check 2", 4)]
    assert set(finals[finals.how == "adjudication"].final_label) == {"R1"}
    shown = [r[0] for r in db.execute("SELECT shown_ms FROM reads WHERE kind = 'read'")]
    assert len(shown) == 14 and min(shown) >= settings.get(db, "key_dwell_ms")  # every read after the viewing time
