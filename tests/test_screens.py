"""The reader's and adjudicator's screens in Chromium: the Read page fits a 1366 x 657 laptop (the
whole photo, every label, Undo and the message, no scrolling), a reader's images interleave
subjects, and the Adjudicate page shows every piece of evidence at 1400 x 900."""
import uuid

import pytest

from db.access import transaction
from labeling.workflow import settings
from labeling.demo.project import load_demo
from labeling.workflow.queue import ensure_slots
from labeling.accounts.users import add_user
from tests.browser import PASSWORD, chromium, look_and_press, new_page, server, sign_in, wait_for_new_image  # noqa: F401
from tests.conftest import SHELL, read_image

pytestmark = pytest.mark.slow

# Every box the surface draws, in viewport coordinates (the surface lives in a shadow root).
SURFACE_BOXES = """() => {
  const host = [...document.querySelectorAll('*')].find(e => e.shadowRoot && e.shadowRoot.querySelector('.fnp-surface'));
  const root = host.shadowRoot;
  const box = (e) => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  return {img: box(root.querySelector('.fnp-img')), complete: root.querySelector('.fnp-img').complete,
          buttons: [...root.querySelectorAll('.fnp-choices button')].map(b => [b.textContent, ...box(b)]),
          note: box(root.querySelector('.fnp-note')), width: innerWidth, height: innerHeight};
}"""


def _project(db, data_dir, n_subjects):
    """`n_subjects` subjects of seven movements, showing the demo's photos (one subject generated)."""
    load_demo(db, data_dir, subjects=1, seed=7, workers=1, actor=SHELL)
    photos = db.execute("SELECT stored_path, width, height, movement FROM images ORDER BY movement").fetchall()
    with transaction(db) as conn:
        for s in range(1, n_subjects):
            sid = conn.execute("INSERT INTO subjects (code, synthetic, created_at) VALUES (?, 1, 'x')",
                               (f"SYN-EXTRA-{s}",)).lastrowid
            conn.executemany("INSERT INTO images (sha256, subject_id, movement, source, mirrored, width, height, format, "
                             "mode, bytes, stored_path, synthetic, imported_at) VALUES (?, ?, ?, 'hospital', 0, ?, ?, "
                             "'JPEG', 'RGB', 1, ?, 1, 'x')",
                             [(uuid.uuid4().hex, sid, mv, w, h, path) for path, w, h, mv in photos])
    ensure_slots(db)


def _inside(box, width, height):
    left, top, right, bottom = box
    return left >= 0 and top >= 0 and right <= width and bottom <= height


def test_read_fits_a_laptop_and_interleaves_subjects(db, data_dir, server, chromium):  # noqa: F811
    _project(db, data_dir, 10)
    add_user(db, "reader", PASSWORD, ["reader"], actor=SHELL)
    page = new_page(chromium, 1366, 657)
    sign_in(page, server, "reader", path="/read")
    token = None
    for n in range(15):
        token = look_and_press(page, "n", token)
        if n == 1:  # a saved read's message is on screen, beside the labels, covering nothing
            page.wait_for_function("prev => window.__fnpPainted.token !== prev", arg=token)
            page.wait_for_timeout(300)
            boxes = page.evaluate(SURFACE_BOXES)
            assert boxes["complete"]
            assert _inside(boxes["img"], boxes["width"], boxes["height"]), boxes["img"]  # the whole photo
            assert [b[0][1:] for b in boxes["buttons"]] == [
                "L3 · left severe", "L2 · left moderate", "L1 · left mild", "N · normal", "R1 · right mild",
                "R2 · right moderate", "R3 · right severe", "Undo last read"]
            for label, *box in boxes["buttons"]:
                assert _inside(box, boxes["width"], boxes["height"]), label  # every label and Undo, no scrolling
            assert _inside(boxes["note"], boxes["width"], boxes["height"])
            note = page.get_by_text("Saved N. Press U to undo.")
            note.wait_for()
            # Nothing covers Undo: the element at its centre is Undo itself.
            undo = boxes["buttons"][-1]
            hit = page.evaluate("([x, y]) => { const host = [...document.querySelectorAll('*')].find(e => e.shadowRoot "
                                "&& e.shadowRoot.querySelector('.fnp-surface')); const e = host.shadowRoot."
                                "elementFromPoint(x, y); return e && e.closest('button') ? e.closest('button')."
                                "textContent : null; }", [(undo[1] + undo[3]) / 2, (undo[2] + undo[4]) / 2])
            assert hit and hit.endswith("Undo last read")
    page.wait_for_function("prev => window.__fnpPainted.token !== prev", arg=token)
    shown = db.execute("SELECT i.subject_id FROM (SELECT image_id, submitted_at FROM reads WHERE kind = 'read' UNION ALL "
                       "SELECT q.image_id, a.submitted_at FROM qc_answers a JOIN qc_items q ON q.id = a.qc_item_id "
                       "WHERE a.kind = 'answer') x JOIN images i ON i.id = x.image_id ORDER BY x.submitted_at").fetchall()
    subjects = [s for (s,) in shown]
    assert len(subjects) == 15
    assert all(a != b for a, b in zip(subjects, subjects[1:])), subjects  # never one face twice in a row
    assert len(set(subjects[:7])) >= 5


def test_adjudicate_shows_every_piece_of_evidence_at_1400_by_900(db, data_dir, server, chromium):  # noqa: F811
    _project(db, data_dir, 1)
    a = add_user(db, "ra", PASSWORD, ["reader"], actor=SHELL)
    b = add_user(db, "rb", PASSWORD, ["reader"], actor=SHELL)
    add_user(db, "senior", PASSWORD, ["adjudicator"], actor=SHELL)
    settings.change(db, "check2_enabled", False, SHELL)
    ids = [r[0] for r in db.execute("SELECT id FROM images ORDER BY movement")]
    for n, image_id in enumerate(ids):  # MV0 and MV1 disagree; the rest agree
        read_image(db, a, image_id, "L1")
        read_image(db, b, image_id, "R2" if n < 2 else "L1")
    page = new_page(chromium, 1400, 900)
    sign_in(page, server, "senior", path="/adjudicate")
    wait_for_new_image(page, None)
    page.get_by_text("This face, every movement").wait_for()
    page.wait_for_timeout(1000)
    boxes = page.evaluate(SURFACE_BOXES)
    assert _inside(boxes["img"], 1400, 900)
    for label, *box in boxes["buttons"]:
        assert _inside(box, 1400, 900), label
    for text in ("Reader A", "Reader B", "This face, every movement", "Asymmetry (check 2)"):
        el = page.get_by_text(text).first.bounding_box()
        assert el and el["y"] + el["height"] <= 900, text
    thumbs = page.locator("[data-testid='stImage'] img").all()
    assert len(thumbs) == 7 and all(t.bounding_box()["y"] + t.bounding_box()["height"] <= 900 for t in thumbs)
    assert page.get_by_text("MV0 ◀").count() == 1 and page.get_by_text("MV1 ?").count() == 1
    # The photo / landmarks switch is there; the first case decided by its key, the second comes.
    assert [b[0][1:] for b in boxes["buttons"]][-1] == "Undo my last decision"
    look_and_press(page, "d", None)
    page.get_by_text("MV1 ◀").wait_for()
    assert db.execute("SELECT label FROM adjudications").fetchall() == [("L1",)]
