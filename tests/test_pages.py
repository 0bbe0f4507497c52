"""Every page x every role under AppTest: allowed pages render without an exception, refused
pages say so and write nothing; the read and adjudication pages work by their buttons."""
import datetime as dt

import pytest
from streamlit.testing.v1 import AppTest

from labeling.demo import load_demo
from labeling.users import add_user
from ui.menu import PAGES

ROLES = ["reader", "adjudicator", "coordinator", "auditor", "admin"]


def _run(fn_name, module, user):
    at = AppTest.from_string(f"from {module} import {fn_name}\n{fn_name}()\n", default_timeout=60)
    at.session_state["user"] = user
    at.session_state["last_seen"] = dt.datetime.now(dt.timezone.utc)
    return at.run()


def _refused(at):
    return any("You do not have access to this page." in e.value for e in at.error)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    import os

    from db.access import open_project

    folder = tmp_path_factory.mktemp("pages") / "data"
    old = os.environ.get("FNP_DATA_DIR")
    os.environ["FNP_DATA_DIR"] = str(folder)
    db = open_project(folder)
    load_demo(db, folder, subjects=1, seed=9, workers=1)
    users = {role: add_user(db, f"u-{role}", "a long password", [role]) for role in ROLES}
    yield db, folder, users
    if old is None:
        del os.environ["FNP_DATA_DIR"]
    else:
        os.environ["FNP_DATA_DIR"] = old


@pytest.mark.parametrize("role", ROLES)
def test_every_page_for_every_role(project, role):
    from labeling.permissions import allowed

    db, _, users = project
    user = users[role]
    before = db.execute("SELECT count(*) FROM reads").fetchone()[0] + db.execute("SELECT count(*) FROM adjudications").fetchone()[0]
    for fn, title, _, _, action in PAGES:
        at = _run(fn.__name__, fn.__module__, user)
        assert not at.exception, f"{title} as {role}: {at.exception}"
        assert _refused(at) != allowed(user, action), f"{title} as {role}"
    after = db.execute("SELECT count(*) FROM reads").fetchone()[0] + db.execute("SELECT count(*) FROM adjudications").fetchone()[0]
    assert after == before  # opening pages writes no read or decision


def test_reader_labels_with_the_buttons_and_gets_the_next_image(project):
    db, _, users = project
    reader = add_user(db, "keyboard-reader", "a long password", ["reader"])
    at = _run("read_page", "ui.read_page", reader)
    assert not at.exception
    assert at.subheader[0].value.startswith("MV")  # the movement of the held image
    assert at.get("image"), "the image is shown"
    first = db.execute("SELECT image_id FROM read_slots WHERE reader_id = ? AND read_id IS NULL", [reader.id]).fetchone()[0]
    at.button(key="btn_L2").click().run()
    assert not at.exception
    row = db.execute("SELECT image_id, label FROM reads WHERE reader_id = ?", [reader.id]).fetchone()
    assert row == (first, "L2")
    held = db.execute("SELECT image_id FROM read_slots WHERE reader_id = ? AND read_id IS NULL", [reader.id]).fetchone()[0]
    assert held != first
    # Undo brings the first image back to this reader; the read stays in the table, superseded.
    at.button[0].click().run()
    assert db.execute("SELECT count(*) FROM reads WHERE reader_id = ? AND kind = 'undo'", [reader.id]).fetchone()[0] == 1


def test_read_page_shows_no_other_read(project):
    """Blind by construction: after another reader's read of an image, nothing of it is on the page."""
    db, _, users = project
    from labeling.queue import claim_next, submit_read

    a = add_user(db, "blind-a", "a long password", ["reader"])
    b = add_user(db, "blind-b", "a long password", ["reader"])
    c = claim_next(db, a)
    submit_read(db, a, c.image_id, "R3", cannot_grade=None)
    at = _run("read_page", "ui.read_page", b)
    page_text = " ".join(str(e.value) for e in [*at.markdown, *at.caption, *at.subheader, *at.text, *at.info,
                                                 *at.warning, *at.success] if hasattr(e, "value"))
    assert "R3" not in page_text.replace("R3  [L]", "")  # only the R3 button label itself
    assert "blind-a" not in page_text
