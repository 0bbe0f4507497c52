"""Changing workflow settings mid-project: finished check 1 is never reopened, open images take the
new plan, no read slot is left that nobody can take, and bad values are refused with a message."""
import datetime as dt
import uuid

import pytest

from db.access import transaction
from labeling.workflow import settings
from labeling.cli import main as cli
from labeling.workflow.queue import claim_next, ensure_slots, submit_read
from labeling.accounts.users import add_user
from labeling.workflow.states import adjudicate, image_states
from tests.conftest import SHELL, read_image

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL (tests/conftest.py)

T0 = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.timezone.utc)


def images(db, n):
    with transaction(db) as conn:
        conn.execute("INSERT OR IGNORE INTO subjects (code, created_at) VALUES ('S1', 'x')")
        ids = [conn.execute("INSERT INTO images (sha256, subject_id, movement, source, mirrored, width, height, format, "
                            "mode, bytes, stored_path, imported_at) VALUES (?, 1, 'MV0', 'hospital', 0, 9, 9, 'JPEG', "
                            "'RGB', 1, 'x', 'x')", (uuid.uuid4().hex,)).lastrowid for _ in range(n)]
    ensure_slots(db)
    return ids


@pytest.fixture
def readers(db):
    return [add_user(db, f"r{i}", "a long password", ["reader"], actor=SHELL) for i in range(4)]


def read(db, reader, label, t):
    c = claim_next(db, reader, now=t)
    if c is None:
        return None
    submit_read(db, reader, c.image_id, label, now=t + dt.timedelta(seconds=1))
    return c.image_id


def states(db):
    return image_states(db).set_index("image_id")


def drain(db, readers, label="N", t=T0 + dt.timedelta(hours=1)):
    """Every reader reads whatever the queue still gives them; return how many reads that took."""
    n = 0
    for r in readers:
        while read(db, r, label, t + dt.timedelta(seconds=2 * n)) is not None:
            n += 1
    return n


def test_more_reads_per_image_apply_only_to_images_not_through_check_1(db, readers):
    settings.change(db, "check2_enabled", False, SHELL)
    ids = images(db, 6)
    a, b, c, d = readers
    # ids[0], ids[1]: agreed (accepted, as check 2 is off); ids[2]: disagreed; ids[3]: one read; ids[4:]: none.
    for image_id, first, second in ((ids[0], "N", "N"), (ids[1], "N", "N"), (ids[2], "L1", "R1"), (ids[3], "L2", None)):
        read_image(db, a, image_id, first, now=T0)
        if second:
            read_image(db, b, image_id, second, now=T0)
    before = states(db)
    assert before.state[ids[0]] == before.state[ids[1]] == "accepted"
    assert before.state[ids[2]] == "awaiting_adjudication" and before.state[ids[3]] == "awaiting_read_2"

    said = settings.preview(db, "reads_per_image", 3)
    assert "3 image(s) not yet through check 1 will need 3 reads (1 of them already have a read)" in said
    assert "3 image(s) whose check 1 is complete" in said
    done = settings.change(db, "reads_per_image", 3, SHELL)
    assert "3 image(s) not yet through check 1 now need 3 reads" in done
    after = states(db)
    for finished in ids[:3]:  # accepted and disagreed images keep their state and their two reads
        assert after.state[finished] == before.state[finished] and after.reads_required[finished] == 2
    assert after.state[ids[3]] == "awaiting_read_2" and after.reads_required[ids[3]] == 3
    assert drain(db, readers) == 2 + 3 + 3  # ids[3] needs two more reads, ids[4] and ids[5] three each
    final = states(db)
    assert (final.n_reads == final.reads_required).all()
    assert final.state[ids[0]] == "accepted" and final.n_reads[ids[3]] == 3  # L2, then N and N: to the adjudicator
    assert db.execute("SELECT count(*) FROM read_slots WHERE read_id IS NULL").fetchone()[0] == 0

    # Back to 2: nothing changes for anything finished, and nothing is left open.
    settings.change(db, "reads_per_image", 2, SHELL)
    assert states(db).equals(final)


def test_fewer_reads_per_image_completes_images_that_already_have_enough(db, readers):
    settings.change(db, "reads_per_image", 3, SHELL)
    ids = images(db, 2)
    a, b, c, _ = readers
    read_image(db, a, ids[0], "N", now=T0)
    read_image(db, b, ids[0], "N", now=T0 + dt.timedelta(seconds=5))  # ids[0]: 2 of 3 reads
    assert states(db).state[ids[0]] == "awaiting_read_3"
    settings.change(db, "reads_per_image", 2, SHELL)
    assert states(db).state[ids[0]] == "agreed"
    assert db.execute("SELECT count(*) FROM read_slots WHERE image_id = ? AND read_id IS NULL", [ids[0]]).fetchone()[0] == 0
    assert drain(db, readers) == 2  # ids[1]: two reads, not three
    assert db.execute("SELECT count(*) FROM read_slots WHERE read_id IS NULL").fetchone()[0] == 0


def test_switching_the_read_mode_leaves_no_slot_nobody_can_take(db, readers):
    settings.change(db, "washout_hours", 1, SHELL)
    images(db, 4)
    a, b, *_ = readers
    first = read(db, a, "N", T0)  # one image has its first read, by a (inter mode)
    assert "wait for their last reader's next read after the washout" in settings.preview(db, "read_mode", "intra")
    settings.change(db, "read_mode", "intra", SHELL)
    # intra: that image's second read is a's, after the washout, and nobody else's.
    second = read(db, b, "N", T0 + dt.timedelta(hours=2))
    assert second not in (None, first)
    assert claim_next(db, a, now=T0 + dt.timedelta(minutes=30)).image_id != first  # not before the washout
    db.execute("UPDATE read_slots SET lease_expires = NULL, reader_id = NULL, claimed_at = NULL WHERE read_id IS NULL "
               "AND reserved_for IS NULL")  # a puts it back
    drain(db, [b], "L1", t=T0 + dt.timedelta(hours=4))  # after the washout: b's own second read comes too
    readers_of = db.execute("SELECT reader_id FROM effective_reads WHERE image_id = ?", [second]).fetchall()
    assert readers_of == [(b.id,), (b.id,)]
    assert states(db).n_reads[first] == 1  # still a's, waiting for a
    # Back to inter: b's reservations go; every open slot can be taken by someone who has not read it.
    settings.change(db, "read_mode", "inter", SHELL)
    assert drain(db, readers, t=T0 + dt.timedelta(days=1)) > 0
    assert db.execute("SELECT count(*) FROM read_slots WHERE read_id IS NULL").fetchone()[0] == 0
    assert (states(db).n_reads == 2).all()


@pytest.mark.parametrize("key, value, message", [
    ("reads_per_image", 1, "Reads per image must be between 2 and 10; got 1"),
    ("reads_per_image", 2.5, "Reads per image must be a whole number"),
    ("lease_seconds", 10, "between 30 and 86400 seconds"),
    ("read_mode", "both", "must be one of inter, intra"),
    ("range_hi", 40, "between 51.0 and 100.0"),
    ("nonsense", 1, "unknown setting"),
])
def test_out_of_range_values_are_refused_with_a_message(db, key, value, message):
    with pytest.raises(settings.SettingError, match=message):
        settings.change(db, key, value, SHELL)
    assert db.execute("SELECT count(*) FROM settings WHERE key = ?", [key]).fetchone()[0] == 0


def test_settings_command_previews_then_applies_and_audits(db, data_dir, capsys):
    images(db, 1)
    assert cli(["settings", "set", "reads_per_image", "3"]) == 0
    out = capsys.readouterr().out
    assert "will need 3 reads" in out and "nothing changed: add --yes" in out
    assert settings.get(db, "reads_per_image") == 2
    assert cli(["settings", "set", "reads_per_image", "3", "--yes"]) == 0
    assert settings.get(db, "reads_per_image") == 3
    actor, detail = db.execute("SELECT actor, detail FROM audit_log WHERE action = 'setting.changed'").fetchone()
    assert actor.startswith("system:settings (") and '"before": 2' in detail and '"images_changed": 1' in detail
    assert cli(["settings", "set", "reads_per_image", "0", "--yes"]) == 2
    assert "between 2 and 10" in capsys.readouterr().err


def test_adjudicated_images_are_never_reopened(db, readers):
    ids = images(db, 1)
    a, b, *_ = readers
    read(db, a, "L1", T0)
    read(db, b, "R1", T0 + dt.timedelta(seconds=5))
    judge = add_user(db, "judge", "a long password", ["adjudicator"], actor=SHELL)
    adjudicate(db, judge, ids[0], "L1")
    settings.change(db, "reads_per_image", 4, SHELL)
    assert states(db).state[ids[0]] == "final"
    assert claim_next(db, readers[2], now=T0 + dt.timedelta(hours=1)) is None
