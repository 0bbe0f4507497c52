"""Deliberate reads and decisions, in the domain functions themselves (the browser's share is in
tests/test_readers_server.py): nothing is saved for an image shown less than the minimum viewing
time, a choice made for one showing never lands on another, and an adjudicator can undo."""
import datetime as dt
import uuid

import pytest

from db.access import transaction
from labeling.workflow import settings
from labeling.workflow.queue import claim_next, ensure_slots, submit_read
from labeling.workflow.queue_errors import QueueError, TooQuick
from labeling.accounts.users import add_user
from labeling.workflow.states import WorkflowError, adjudicate, image_states, undo_last_adjudication
from tests.conftest import SHELL

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL (tests/conftest.py)

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
MS = dt.timedelta(milliseconds=1)


def images(db, n):
    with transaction(db) as conn:
        conn.execute("INSERT OR IGNORE INTO subjects (code, created_at) VALUES ('S1', 'x')")
        for _ in range(n):
            conn.execute("INSERT INTO images (sha256, subject_id, movement, source, mirrored, width, height, format, "
                         "mode, bytes, stored_path, imported_at) VALUES (?, 1, 'MV0', 'hospital', 0, 9, 9, 'JPEG', "
                         "'RGB', 1, 'x', 'x')", (uuid.uuid4().hex,))
    ensure_slots(db)


@pytest.fixture
def people(db):
    mk = lambda name, role: add_user(db, name, "a long password", [role], actor=SHELL)  # noqa: E731
    return {"a": mk("ann", "reader"), "b": mk("bob", "reader"), "judge": mk("jud", "adjudicator"),
            "judge2": mk("joe", "adjudicator")}


def test_a_read_before_the_viewing_time_is_refused_and_changes_nothing(db, people):
    images(db, 2)
    dwell = settings.get(db, "key_dwell_ms")
    assert dwell == 400  # the default
    c = claim_next(db, people["a"], now=T0)
    for too_soon in (0, 1, dwell - 1):
        with pytest.raises(TooQuick, match="too quick"):
            submit_read(db, people["a"], c.image_id, "N", now=T0 + too_soon * MS)
    assert db.execute("SELECT count(*) FROM reads").fetchone()[0] == 0
    assert claim_next(db, people["a"], now=T0 + 10 * MS).image_id == c.image_id  # still theirs, same showing
    submit_read(db, people["a"], c.image_id, "N", now=T0 + dwell * MS, shown_ms=dwell + 20)
    assert db.execute("SELECT label, shown_ms FROM reads").fetchall() == [("N", dwell + 20)]


def test_a_double_press_never_labels_the_next_image(db, people):
    """The second press of a double press arrives for the next image 60 ms after it was handed over."""
    images(db, 2)
    first = claim_next(db, people["a"], now=T0)
    submit_read(db, people["a"], first.image_id, "L2", now=T0 + dt.timedelta(seconds=2), token=first.token)
    nxt = claim_next(db, people["a"], now=T0 + dt.timedelta(seconds=2))
    # The page binds the press to the image it was made on: the first image, already saved.
    with pytest.raises(QueueError, match="no longer reserved"):
        submit_read(db, people["a"], first.image_id, "L2", now=T0 + dt.timedelta(seconds=2, milliseconds=60),
                    token=first.token)
    # Even if a press reached the next image's claim, it comes before the viewing time.
    with pytest.raises(TooQuick):
        submit_read(db, people["a"], nxt.image_id, "L2", now=T0 + dt.timedelta(seconds=2, milliseconds=60),
                    token=nxt.token)
    assert [r[0] for r in db.execute("SELECT image_id FROM reads")] == [first.image_id]


def test_a_choice_made_for_an_earlier_showing_is_refused(db, people):
    images(db, 1)
    c = claim_next(db, people["a"], now=T0)
    stale = c.token.replace(c.claimed_at, (T0 - dt.timedelta(hours=1)).isoformat(timespec="milliseconds"))
    with pytest.raises(QueueError, match="earlier showing"):
        submit_read(db, people["a"], c.image_id, "N", now=T0 + dt.timedelta(seconds=1), token=stale)
    submit_read(db, people["a"], c.image_id, "N", now=T0 + dt.timedelta(seconds=1), token=c.token)


def test_the_viewing_time_is_a_setting_and_zero_turns_it_off(db, people):
    images(db, 1)
    settings.change(db, "key_dwell_ms", 0, SHELL)
    c = claim_next(db, people["a"], now=T0)
    submit_read(db, people["a"], c.image_id, "N", now=T0)
    with pytest.raises(settings.SettingError, match="between 0 and 5000 ms"):
        settings.change(db, "key_dwell_ms", 9000, SHELL)


def _disagreed(db, people, n=1):
    images(db, n)
    for reader, label in ((people["a"], "L1"), (people["b"], "R1")):
        for _ in range(n):
            c = claim_next(db, reader, now=T0)
            submit_read(db, reader, c.image_id, label, now=T0 + dt.timedelta(seconds=1))
    return list(image_states(db).image_id)


def test_an_adjudication_before_the_viewing_time_is_refused(db, people):
    (img,) = _disagreed(db, people)
    shown = (T0 + dt.timedelta(seconds=5)).isoformat(timespec="milliseconds")
    with pytest.raises(TooQuick):
        adjudicate(db, people["judge"], img, "L1", shown_since=shown, now_=T0 + dt.timedelta(seconds=5, milliseconds=200))
    assert db.execute("SELECT count(*) FROM adjudications").fetchone()[0] == 0
    adjudicate(db, people["judge"], img, "L1", shown_since=shown, now_=T0 + dt.timedelta(seconds=6), shown_ms=900)
    assert db.execute("SELECT label, shown_ms FROM adjudications").fetchall() == [("L1", 900)]


def test_an_adjudicator_undoes_their_last_decision_within_the_window(db, people):
    one, two = _disagreed(db, people, 2)
    t = dt.datetime.now(dt.timezone.utc)
    adjudicate(db, people["judge"], one, "L1")
    adjudicate(db, people["judge"], two, exclude_reason="eyes closed in MV0")
    assert undo_last_adjudication(db, people["judge"]) == two  # the last one first
    states = image_states(db).set_index("image_id").state
    assert states[two] == "awaiting_adjudication" and states[one] == "final"
    assert undo_last_adjudication(db, people["judge"]) == one
    assert (image_states(db).state == "awaiting_adjudication").all()
    # The decisions stay on record; the undos are events beside them.
    assert db.execute("SELECT count(*) FROM adjudications").fetchone()[0] == 2
    assert db.execute("SELECT count(*) FROM adjudication_undos").fetchone()[0] == 2
    with pytest.raises(WorkflowError, match="no decision of yours"):
        undo_last_adjudication(db, people["judge"])
    adjudicate(db, people["judge"], one, "R1")
    with pytest.raises(WorkflowError, match="seconds only"):
        undo_last_adjudication(db, people["judge"], now_=t + dt.timedelta(hours=1))
    # Another adjudicator's later decision on the same image cannot be taken back by the first.
    adjudicate(db, people["judge2"], one, "L2")
    with pytest.raises(WorkflowError, match="another adjudicator"):
        undo_last_adjudication(db, people["judge"])
    assert image_states(db).set_index("image_id").final_label[one] == "L2"


def test_an_undone_adjudication_gives_the_image_back_to_nobody_but_the_adjudicators(db, people):
    """An image adjudicated and then undone is not handed to readers again: its reads are complete."""
    (img,) = _disagreed(db, people)
    adjudicate(db, people["judge"], img, "L1")
    undo_last_adjudication(db, people["judge"])
    assert claim_next(db, people["a"], now=T0 + dt.timedelta(minutes=1)) is None
    assert image_states(db).state.tolist() == ["awaiting_adjudication"]
