"""Every page x every role under AppTest: allowed pages render without an exception, refused
pages say so and write nothing; the read and adjudication pages work by their buttons."""

import pytest
from streamlit.testing.v1 import AppTest

from labeling.demo.project import load_demo
from labeling.accounts.users import add_user
from ui.menu import PAGES
from tests.conftest import signed_in, SHELL

ROLES = ["reader", "adjudicator", "coordinator", "auditor", "admin"]


def _run(fn_name, module, user):
    at = AppTest.from_string(f"from {module} import {fn_name}\n{fn_name}()\n", default_timeout=60)
    signed_in(at, user)
    return at.run()


def _refused(at):
    return any("You do not have access to this page." in e.value for e in at.error)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    import os

    from db.project import open_project

    folder = tmp_path_factory.mktemp("pages") / "data"
    old = os.environ.get("FNP_DATA_DIR")
    os.environ["FNP_DATA_DIR"] = str(folder)
    db = open_project(folder)
    load_demo(db, folder, subjects=1, seed=9, workers=1, actor=SHELL)
    # Roles and blinding are tested here, not viewing times (tests/test_deliberate.py): reads go at once.
    from labeling.workflow import settings

    settings.change(db, "key_dwell_ms", 0, SHELL)
    users = {role: add_user(db, f"u-{role}", "a long password", [role], actor=SHELL) for role in ROLES}
    yield db, folder, users
    if old is None:
        del os.environ["FNP_DATA_DIR"]
    else:
        os.environ["FNP_DATA_DIR"] = old


@pytest.mark.parametrize("role", ROLES)
def test_every_page_for_every_role(project, role):
    from labeling.accounts.permissions import allowed

    db, _, users = project
    user = users[role]
    before = db.execute("SELECT count(*) FROM reads").fetchone()[0] + db.execute("SELECT count(*) FROM adjudications").fetchone()[0]
    for fn, title, _, _, action in PAGES:
        at = _run(fn.__name__, fn.__module__, user)
        assert not at.exception, f"{title} as {role}: {at.exception}"
        assert _refused(at) != allowed(user, action), f"{title} as {role}"
    after = db.execute("SELECT count(*) FROM reads").fetchone()[0] + db.execute("SELECT count(*) FROM adjudications").fetchone()[0]
    assert after == before  # opening pages writes no read or decision


def test_reader_page_shows_the_held_image_and_takes_a_cannot_grade_with_its_reason(project):
    """The label keys live in the browser (tests/test_readers_server.py drives them); here the page's
    own widgets: the held image's movement, and 'cannot grade', which insists on a reason."""
    db, _, users = project
    reader = add_user(db, "page-reader", "a long password", ["reader"], actor=SHELL)
    at = _run("read_page", "ui.read_page", reader)
    assert not at.exception
    first = db.execute("SELECT image_id, movement FROM read_slots s JOIN images i ON i.id = s.image_id "
                       "WHERE reader_id = ? AND read_id IS NULL", [reader.id]).fetchone()
    assert any(m.value.startswith(f"**{first[1]} —") for m in at.markdown)  # the movement of the held image
    submit = next(b for b in at.button if b.label == "Submit 'cannot grade'")
    submit.click().run()
    assert "Say why the image cannot be graded." in [e.value for e in at.error]
    assert at.expander[0].proto.expanded  # the box the message asks for stays open
    assert db.execute("SELECT count(*) FROM reads WHERE reader_id = ?", [reader.id]).fetchone()[0] == 0
    at.text_input(key="cannot_reason").input("eyes out of frame")
    next(b for b in at.button if b.label == "Submit 'cannot grade'").click().run()
    assert not at.exception
    assert db.execute("SELECT image_id, label, cannot_grade FROM reads WHERE reader_id = ?", [reader.id]).fetchone() == \
        (first[0], None, "eyes out of frame")
    held = db.execute("SELECT image_id FROM read_slots WHERE reader_id = ? AND read_id IS NULL", [reader.id]).fetchone()
    assert held is None or held[0] != first[0]  # the next image, if any is left for this reader


def test_read_page_shows_no_other_read(project):
    """Blind by construction: after another reader's read of an image, nothing of it is on the page."""
    db, _, users = project
    from labeling.workflow.queue import claim_next, submit_read

    a = add_user(db, "blind-a", "a long password", ["reader"], actor=SHELL)
    b = add_user(db, "blind-b", "a long password", ["reader"], actor=SHELL)
    c = claim_next(db, a)
    submit_read(db, a, c.image_id, "R3", cannot_grade=None)
    at = _run("read_page", "ui.read_page", b)
    page_text = " ".join(str(e.value) for e in [*at.markdown, *at.caption, *at.subheader, *at.text, *at.info,
                                                 *at.warning, *at.success] if hasattr(e, "value"))
    assert "R3" not in page_text.replace("R3  [L]", "")  # only the R3 button label itself
    assert "blind-a" not in page_text


# ---- every write, for every role (issue 8) -------------------------------------------------------


def _write_calls(folder):
    """(action the write needs, name, call(db, user)): every domain function that writes (or shows
    what only its role may see), called as the page would. The permission check comes first, so
    preconditions do not matter for a refusal; an allowed call may still fail on one (QueueError...)."""
    from labeling.workflow import settings
    from labeling.auditlog import audit_events
    from labeling.export.crops import correct_crop
    from labeling.export.dataset import export_dataset
    from labeling.workflow.images import image_for_reader
    from labeling.intake.importer import import_uploaded
    from labeling.workflow.landmark_edits import correct_landmarks
    from labeling.workflow.queue import claim_next, submit_read, undo_last_read
    from labeling.workflow.measuring import measure_pending, override_flag
    from labeling.agreement.data import import_predictions
    from labeling.accounts.auth import unlock
    from labeling.workflow.reader_qc import mark_gold
    from labeling.accounts.users import change_own_password, reset_password, set_active, set_roles
    from labeling.workflow.states import adjudicate, adjudication_case, adjudication_queue, learn_and_store_ranges, run_check2

    manifest = b"file,subject,movement,source\n"
    return [
        ("read.submit", "claim_next", lambda db, u: claim_next(db, u)),
        ("read.submit", "submit_read", lambda db, u: submit_read(db, u, 1, "N")),
        ("read.submit", "undo_last_read", lambda db, u: undo_last_read(db, u)),
        ("read.submit", "image_for_reader", lambda db, u: image_for_reader(db, u, 1)),
        ("adjudicate", "adjudication_queue", lambda db, u: adjudication_queue(db, u)),
        ("adjudicate", "adjudication_case", lambda db, u: adjudication_case(db, u, 1)),
        ("adjudicate", "adjudicate", lambda db, u: adjudicate(db, u, 1, "N")),
        ("ranges.learn", "learn_and_store_ranges", lambda db, u: learn_and_store_ranges(db, u)),
        ("import", "import_uploaded", lambda db, u: import_uploaded(db, folder, manifest, "m.csv", {}, actor=u)),
        ("export", "export_dataset", lambda db, u: export_dataset(db, folder, "matrix", actor=u, workers=1)),
        ("export", "correct_crop", lambda db, u: correct_crop(db, u, 1, (10, 10, 200, 200), "matrix")),
        ("landmarks.correct", "correct_landmarks", lambda db, u: correct_landmarks(db, u, 1, [[5.0, 5.0]] * 68)),
        ("settings.manage", "settings.change", lambda db, u: settings.change(db, "undo_seconds", 120, u)),
        ("users.manage", "add_user", lambda db, u: add_user(db, "new-" + u.name.replace(":", "-"), "a long password", ["reader"], actor=u)),
        ("users.manage", "set_roles", lambda db, u: set_roles(db, "no-such-user", ["reader"], actor=u)),
        ("users.manage", "set_active", lambda db, u: set_active(db, "no-such-user", False, actor=u)),
        ("users.manage", "reset_password", lambda db, u: reset_password(db, "no-such-user", "a long password", actor=u)),
        ("users.manage", "unlock", lambda db, u: unlock(db, "no-such-user", actor=u)),
        ("account.own", "change_own_password", lambda db, u: change_own_password(db, u, "wrong", "another password")),
        ("measure", "measure_pending", lambda db, u: measure_pending(db, folder, workers=1, actor=u)),
        ("quality.override", "override_flag", lambda db, u: override_flag(db, 1, "blurry", True, u, "matrix")),
        ("check2.run", "run_check2", lambda db, u: run_check2(db, u)),
        ("predictions.import", "import_predictions", lambda db, u: import_predictions(db, folder / "no-run", actor=u)),
        ("qc.manage", "mark_gold", lambda db, u: mark_gold(db, u, [1])),
        ("audit.view", "audit_events", lambda db, u: audit_events(db, u)),
    ]


def test_every_write_for_every_role_is_allowed_or_refused_as_designed(db, data_dir):
    from labeling.accounts.permissions import ACTIONS, PermissionDenied, allowed
    from labeling.accounts.users import User

    db.execute("INSERT INTO subjects (code, created_at) VALUES ('S1', 'x')")
    db.execute("INSERT INTO images (sha256, subject_id, movement, source, mirrored, width, height, format, mode, bytes, "
               "stored_path, imported_at) VALUES ('h1', 1, 'MV0', 'hospital', 0, 400, 400, 'JPEG', 'RGB', 1, 'x', 'x')")
    users = [add_user(db, f"m-{r}", "a long password", [r], actor=SHELL) for r in ROLES]
    users.append(add_user(db, "m-two-hats", "a long password", ["reader", "coordinator"], actor=SHELL))
    users.append(User(999, "m-disabled", frozenset(ROLES), active=False))
    calls = _write_calls(data_dir)
    assert {a for a, _, _ in calls} >= set(ACTIONS) - {"status.view", "status.states", "demo.load", "agreement.view",
                                                        "prediagnosis.view"}
    from labeling.accounts.actors import SystemActor

    users.append(SystemActor("system:matrix"))  # the shell: the project's machinery, never a read or a decision
    matrix = {}
    for user in users:
        for action, name, call in calls:
            before = db.conn.total_changes
            try:
                call(db, user)
                refused = False
            except PermissionDenied as exc:  # the role check says "NAME may not ACTION: needs ROLE"
                refused = " may not " in str(exc)  # (not "does not hold image 1": that is blinding, below)
            except (ValueError, LookupError):  # allowed, but the data says no (QueueError, WorkflowError, ...)
                refused = False
            matrix[user.name, name] = "refused" if refused else "allowed"
            assert refused != allowed(user, action), f"{name} as {user.name}"
            if isinstance(user, SystemActor):
                # A landmark correction is a person's placement of points on a photo: named users only.
                assert refused == (action in ("read.submit", "adjudicate", "account.own", "landmarks.correct")), name
            if refused:
                assert db.conn.total_changes == before, f"refused {name} as {user.name} still wrote"
    # Spelled out for the reader of this test: who may write what.
    assert [n for (u, n), v in matrix.items() if u == "m-reader" and v == "allowed"] == [
        "claim_next", "submit_read", "undo_last_read", "image_for_reader", "change_own_password"]
    assert not [n for (u, n), v in matrix.items() if u in ("m-auditor", "m-disabled") and v == "allowed"
                and n not in ("audit_events", "change_own_password")]
    assert matrix["m-disabled", "change_own_password"] == "refused"
    assert matrix["m-auditor", "audit_events"] == "allowed" and matrix["m-disabled", "audit_events"] == "refused"


def test_nothing_a_reader_can_reach_shows_another_read(project):
    """Blind reads, beyond the read page: every function a reader may call, the reader's session
    state and the Status page carry nothing of another reader's read."""
    from labeling.workflow.images import image_for_reader
    from labeling.accounts.permissions import PermissionDenied
    from labeling.workflow.queue import claim_next, reader_progress, submit_read
    from labeling.workflow.status import project_summary

    db, _, users = project
    a = add_user(db, "blind2-a", "a long password", ["reader"], actor=SHELL)
    b = add_user(db, "blind2-b", "a long password", ["reader"], actor=SHELL)
    first = claim_next(db, a)
    submit_read(db, a, first.image_id, "R3")
    with pytest.raises(PermissionDenied):
        image_for_reader(db, a, first.image_id)  # read and handed in: no longer a's to look at
    held = claim_next(db, b)
    others = [i for (i,) in db.execute("SELECT id FROM images WHERE id <> ?", [held.image_id])]
    for image_id in others:
        with pytest.raises(PermissionDenied):
            image_for_reader(db, b, image_id)
    for role in ("adjudicator", "coordinator", "auditor", "admin"):
        with pytest.raises(PermissionDenied):
            image_for_reader(db, users[role], held.image_id)  # only readers look through the reader's view
    reachable = [claim_next(db, b), image_for_reader(db, b, held.image_id), reader_progress(db, b), project_summary(db)]
    text = repr(reachable)
    assert "'R3'" not in text and "blind2-a" not in text

    at = _run("read_page", "ui.read_page", b)
    state = at.session_state.to_dict()
    # The label as a value ('R3'), not two characters a random session token may hold.
    assert "'R3'" not in repr(list(state.values())) and "blind2-a" not in repr(state)
    at = _run("status_page", "ui.status_page", b)
    assert not at.exception
    shown = " ".join(str(m.label) + str(m.value) for m in at.metric) + " ".join(str(d.value) for d in at.dataframe)
    assert "adjudication" not in shown.lower() and "agreed" not in shown.lower() and "blind2-a" not in shown
    assert {m.label for m in at.metric} == {"Your reads", "Images left for you"}
    at = _run("status_page", "ui.status_page", users["coordinator"])  # an unblinded role sees the states
    assert "Awaiting adjudication" in {m.label for m in at.metric}
