"""Reading order: each reader's queue interleaves subjects and movements at random, seeded per
reader, and never shows one subject twice in a row while another is available."""
import pytest
import datetime as dt
import uuid

from db.access import transaction
from labeling.workflow.queue import claim_next, ensure_slots, submit_choice
from labeling.accounts.users import add_user
from tests.conftest import SHELL

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL (tests/conftest.py)

T0 = dt.datetime(2026, 5, 4, 9, 0, tzinfo=dt.timezone.utc)


def subjects(db, n_subjects, movements=7):
    with transaction(db) as conn:
        for s in range(n_subjects):
            sid = conn.execute("INSERT INTO subjects (code, created_at) VALUES (?, 'x')", (f"S{s}",)).lastrowid
            for m in range(movements):
                conn.execute("INSERT INTO images (sha256, subject_id, movement, source, mirrored, width, height, format, "
                             "mode, bytes, stored_path, imported_at) VALUES (?, ?, ?, 'hospital', 0, 9, 9, 'JPEG', "
                             "'RGB', 1, 'x', 'x')", (uuid.uuid4().hex, sid, f"MV{m}"))
    ensure_slots(db)


def sequence(db, reader, n):
    """The (subject, movement) of the reader's next `n` images, read one after another."""
    out = []
    for k in range(n):
        t = T0 + dt.timedelta(seconds=5 * k)
        c = claim_next(db, reader, now=t)
        if c is None:
            break
        out.append(db.execute("SELECT subject_id, movement FROM images WHERE id = ?", [c.image_id]).fetchone())
        submit_choice(db, reader, c.token, "N", now=t + dt.timedelta(seconds=2))  # a read, or a QC item's answer
    return out


def test_no_subject_twice_in_a_row_and_subjects_interleaved(db):
    subjects(db, 10)
    readers = [add_user(db, f"r{i}", "a long password", ["reader"], actor=SHELL) for i in range(3)]
    runs = [sequence(db, r, 15) for r in readers]
    for seq in runs:
        assert len(seq) == 15
        assert all(a[0] != b[0] for a, b in zip(seq, seq[1:])), seq  # never the same face back to back
        assert len({s for s, _ in seq[:7]}) >= 5  # the first seven images come from at least five faces
        assert len({m for _, m in seq}) >= 5  # and movements are mixed
    assert runs[0] != runs[1] != runs[2]  # each reader's order is their own


def test_the_order_is_seeded_per_reader(tmp_path):
    from db.project import open_project

    orders = []
    for attempt in range(2):  # the same project built twice: the same reader gets the same order
        db = open_project(tmp_path / f"p{attempt}")
        subjects(db, 6)
        reader = add_user(db, "ann", "a long password", ["reader"], actor=SHELL)
        orders.append(sequence(db, reader, 10))
        db.close()
    assert orders[0] == orders[1]


def test_the_last_images_of_one_subject_still_come_when_nothing_else_is_left(db):
    subjects(db, 1, movements=3)
    reader = add_user(db, "ann", "a long password", ["reader"], actor=SHELL)
    assert len(sequence(db, reader, 5)) == 3  # one subject only: all of it, back to back
