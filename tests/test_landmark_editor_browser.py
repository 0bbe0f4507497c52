"""The landmark editor in real Chromium (Debian's) against a real `streamlit run` server: an
adjudicator fixes a misplaced mouth corner with three clicks and sees the indices change. The
photos are SYNTHETIC (the demo generator)."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from tests.browser import PASSWORD, chromium, page, server, sign_in  # noqa: F401  (fixtures)
from tests.conftest import SHELL

pytestmark = pytest.mark.slow


@pytest.fixture
def prepared(data_dir):
    """A project whose first image waits for adjudication (the two reads disagree), measured."""
    from labeling.workflow.measuring import measure_pending
    from db.access import transaction
    from db.project import open_project
    from labeling.demo.project import load_demo
    from labeling.accounts.users import add_user

    db = open_project(data_dir)
    load_demo(db, data_dir, subjects=1, seed=5, workers=1, actor=SHELL)
    measure_pending(db, data_dir, workers=1, actor=SHELL)
    add_user(db, "boss", PASSWORD, ["admin"], actor=SHELL)
    jud = add_user(db, "jud", PASSWORD, ["adjudicator"], actor=SHELL)
    readers = [add_user(db, f"reader{i}", PASSWORD, ["reader"], actor=SHELL) for i in (1, 2)]
    image_id = db.execute("SELECT image_id FROM measurements WHERE status = 'ok' ORDER BY image_id LIMIT 1").fetchone()[0]
    with transaction(db) as c:
        for reader, label in zip(readers, ("L1", "R2")):
            c.execute("INSERT INTO reads (image_id, reader_id, label, submitted_at) VALUES (?,?,?,?)",
                      (image_id, reader.id, label, "2026-01-01T00:00:00.000+00:00"))
    db.conn.close()
    return data_dir, image_id, jud


def test_an_adjudicator_moves_a_mouth_corner_and_sees_the_indices_change(prepared, server, page):  # noqa: F811
    from db.project import open_project
    from labeling.workflow.landmark_edits import landmark_state

    data_dir, image_id, _ = prepared
    sign_in(page, server, "jud", path="/adjudicate")
    page.get_by_text("1 image(s) waiting").wait_for()
    started = time.monotonic()
    page.get_by_text("Correct the landmarks").click()
    editor = page.locator("[data-testid=landmark-editor]")
    editor.wait_for()
    editor.scroll_into_view_if_needed()
    corner = page.locator('circle.lm-hit[data-point="54"]')
    corner.click()  # select the mouth corner (image right) ...
    page.get_by_text("Point 54 (mouth corner, image right) selected").wait_for()
    # ... and click its place, lower and further out. The click is placed relative to the editor,
    # which Playwright waits to hold still, so a page that scrolls or reflows in between cannot
    # turn "lower" into "higher".
    at = corner.evaluate("""c => { const a = c.getBoundingClientRect(),
                                          s = c.ownerSVGElement.getBoundingClientRect();
                                    return {x: a.x + a.width / 2 - s.x, y: a.y + a.height / 2 - s.y}; }""")
    editor.click(position={"x": at["x"] + 12, "y": at["y"] + 18})
    page.get_by_text("1 point(s) moved, not saved yet").wait_for()
    page.get_by_role("button", name="Save correction").click()
    page.get_by_text("Correction 1 saved: point(s) 54 moved").wait_for()
    elapsed = time.monotonic() - started
    assert elapsed < 30, f"the fix took {elapsed:.1f} s"
    text = page.get_by_text("Correction 1 saved").inner_text()
    before, after = (float(v) for v in text.split("Signed RgAs ")[1].split(",")[0].split(" → "))
    assert after != before
    assert "Traceback" not in page.content()
    # What the server stored: the corner moved down-right, everything else in place.
    db = open_project(data_dir)
    state = landmark_state(db, image_id)
    moved = state.points - state.auto_points
    assert np.flatnonzero(np.hypot(*moved.T) > 0.01).tolist() == [54]
    assert moved[54, 0] > 0 and moved[54, 1] > 0
    assert state.indices["rgas_signed"] == pytest.approx(after, abs=1e-3)
    assert json.loads(db.execute("SELECT detail FROM audit_log WHERE action = 'landmarks.corrected'").fetchone()[0]
                      )["moved"] == [54]
    # The overlay now shows dlib's point beside the corrected one; the editor shows it as a ring.
    page.get_by_text("Corrected by hand 1 time(s)").wait_for()
    assert page.locator("circle.lm-auto").count() == 1
    db.conn.close()
