"""The workflow engine: every state transition of the triple check, the queue's leases and
blinding, undo, exclusion and re-learned ranges. Images here are bare database rows (the
engine never looks at pixels); measurements are set by hand to known values."""
import datetime as dt
import json
import uuid

import pandas as pd
import pytest

from asymmetry.indices import INDEX_VERSION
from asymmetry.measure import LANDMARK_VERSION
from db.access import now, transaction
from labeling.workflow import settings
from labeling.accounts.permissions import PermissionDenied
from labeling.workflow.queue import QueueError, claim_next, ensure_slots, submit_read, undo_last_read
from labeling.accounts.users import add_user
from labeling.workflow.states import (WorkflowError, adjudicate, adjudication_case, adjudication_queue, image_states,
                               learn_and_store_ranges, run_check2, state_counts)
from tests.conftest import SHELL, read_image

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL (tests/conftest.py)

T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.timezone.utc)


def make_images(db, n, movement="MV4"):
    with transaction(db) as conn:
        conn.execute("INSERT OR IGNORE INTO subjects (code, created_at) VALUES ('S1', 'x')")
        ids = []
        for i in range(n):
            ids.append(conn.execute(
                "INSERT INTO images (sha256, subject_id, movement, source, mirrored, width, height, format, mode, bytes, "
                "stored_path, imported_at) VALUES (?, 1, ?, 'hospital', 0, 100, 100, 'JPEG', 'RGB', 1, 'x', 'x')",
                (uuid.uuid4().hex, movement)).lastrowid)
    ensure_slots(db)
    return ids


def measure(db, image_id, rgas, anas, status="ok"):
    with transaction(db) as conn:
        conn.execute("INSERT INTO measurements (image_id, landmark_version, index_version, status, rgas_signed, "
                     "anas_signed, measured_at) VALUES (?,?,?,?,?,?,?)",
                     (image_id, LANDMARK_VERSION, INDEX_VERSION, status, rgas, anas, now()))


@pytest.fixture
def team(db):
    mk = lambda name, roles: add_user(db, name, "a long password", roles, actor=SHELL)  # noqa: E731
    return {"a": mk("ann", ["reader"]), "b": mk("bob", ["reader"]), "c": mk("cat", ["reader"]),
            "judge": mk("jud", ["adjudicator"]), "coord": mk("coo", ["coordinator"]), "aud": mk("aud", ["auditor"])}


LOOK = dt.timedelta(seconds=3)  # how long a test reader looks at an image before labelling it


def read(db, reader, label, t=T0, cannot=None):
    claim = claim_next(db, reader, now=t - LOOK)
    assert claim is not None
    submit_read(db, reader, claim.image_id, label, cannot_grade=cannot, started_at=(t - LOOK).isoformat(), now=t)
    return claim.image_id


def state(db, image_id):
    return image_states(db, [image_id]).iloc[0]


def test_two_agreeing_reads_make_agreed_then_check2_accepts(db, team):
    (img,) = make_images(db, 1)
    assert state(db, img).state == "awaiting_read_1"
    read(db, team["a"], "L2")
    assert state(db, img).state == "awaiting_read_2"
    read(db, team["b"], "L2")
    s = state(db, img)
    assert (s.state, s.consensus) == ("agreed", "L2")


def test_disagreement_and_cannot_grade_go_to_adjudication(db, team):
    one, two = make_images(db, 2)
    read_image(db, team["a"], one, "L2", now=T0)
    read_image(db, team["b"], one, "L3", now=T0)
    assert (state(db, one).state, state(db, one).reason) == ("awaiting_adjudication", "check 1: the reads disagree")
    read_image(db, team["a"], two, cannot_grade="eyes not visible: glasses glare", now=T0)
    read_image(db, team["b"], two, "N", now=T0)
    assert state(db, two).reason == "a reader could not grade it"
    assert set(adjudication_queue(db, team["judge"]).image_id) == {one, two}


def test_inter_mode_never_gives_a_reader_the_same_image_twice(db, team):
    imgs = make_images(db, 3)
    seen = [read(db, team["a"], "N") for _ in range(3)]
    assert sorted(seen) == imgs
    assert claim_next(db, team["a"], now=T0) is None  # only second reads are left, all of his own images
    assert claim_next(db, team["b"], now=T0).image_id in imgs


def test_a_claim_is_held_not_duplicated_and_leases_expire(db, team):
    make_images(db, 2)
    c1 = claim_next(db, team["a"], now=T0)
    assert claim_next(db, team["a"], now=T0 + dt.timedelta(seconds=5)).image_id == c1.image_id  # a rerun: same image
    c_other = claim_next(db, team["b"], now=T0)
    assert (c_other.image_id, c_other.slot) != (c1.image_id, c1.slot)
    # A's lease runs out; C takes the slot; A's late answer is refused and not recorded.
    later = T0 + dt.timedelta(seconds=5 + int(settings.DEFAULTS["lease_seconds"]) + 1)  # after the renewed lease
    c3 = claim_next(db, team["c"], now=later)
    assert (c3.image_id, c3.slot) == (c1.image_id, c1.slot)
    with pytest.raises(QueueError, match="no longer reserved"):
        submit_read(db, team["a"], c1.image_id, "N", now=later)
    assert db.execute("SELECT count(*) FROM reads").fetchone()[0] == 0


def test_submit_validation(db, team):
    make_images(db, 1)
    c = claim_next(db, team["a"], now=T0)
    with pytest.raises(QueueError):
        submit_read(db, team["a"], c.image_id, "X9", now=T0)
    with pytest.raises(QueueError):
        submit_read(db, team["a"], c.image_id, None, cannot_grade="   ", now=T0)
    with pytest.raises(QueueError):
        submit_read(db, team["a"], c.image_id, "N", cannot_grade="both", now=T0)


def test_undo_is_a_new_event_and_the_reader_gets_the_image_back(db, team):
    (img,) = make_images(db, 1)
    read(db, team["a"], "L1")
    back = undo_last_read(db, team["a"], now=T0 + dt.timedelta(seconds=10))
    assert back == img
    rows = db.execute("SELECT kind, label, supersedes FROM reads ORDER BY id").fetchall()
    assert rows[0][:2] == ("read", "L1") and rows[1][0] == "undo" and rows[1][2] is not None
    assert state(db, img).state == "awaiting_read_1"
    c = claim_next(db, team["a"], now=T0 + dt.timedelta(seconds=11))
    assert c.image_id == img
    submit_read(db, team["a"], img, "L2", now=T0 + dt.timedelta(seconds=12))
    read(db, team["b"], "L2", t=T0 + dt.timedelta(seconds=13))
    assert state(db, img).consensus == "L2"


def test_undo_window_and_adjudicated_images(db, team):
    (img,) = make_images(db, 1)
    read(db, team["a"], "L1")
    with pytest.raises(QueueError, match="seconds only"):
        undo_last_read(db, team["a"], now=T0 + dt.timedelta(hours=1))
    read(db, team["b"], "L3", t=T0 + dt.timedelta(seconds=1))
    adjudicate(db, team["judge"], img, "L2")
    with pytest.raises(QueueError, match="adjudicated"):
        undo_last_read(db, team["b"], now=T0 + dt.timedelta(seconds=2))
    with pytest.raises(QueueError, match="no read of yours"):
        undo_last_read(db, team["c"], now=T0)


def test_intra_mode_same_reader_after_washout(db, team):
    settings.change(db, "read_mode", "intra", SHELL)
    settings.change(db, "washout_hours", 24, SHELL)
    (img,) = make_images(db, 1)
    read(db, team["a"], "R2")
    assert claim_next(db, team["a"], now=T0 + dt.timedelta(hours=1)) is None  # washout
    assert claim_next(db, team["b"], now=T0 + dt.timedelta(days=3)) is None  # reserved for ann
    c = claim_next(db, team["a"], now=T0 + dt.timedelta(hours=25))
    assert (c.image_id, c.slot) == (img, 2)
    submit_read(db, team["a"], img, "R2", now=T0 + dt.timedelta(hours=25, seconds=2))
    assert state(db, img).state == "agreed"


def _agreed(db, team, labels_and_points, movement="MV4"):
    ids = make_images(db, len(labels_and_points), movement)
    for img, (label, rgas, anas) in zip(ids, labels_and_points):
        read_image(db, team["a"], img, label, now=T0)
        read_image(db, team["b"], img, label, now=T0)
        if rgas is not None:
            measure(db, img, rgas, anas)
    return ids


def test_check2_accepts_rejects_and_ranges_are_versioned(db, team):
    settings.change(db, "range_min_count", 3, SHELL)
    pts = [("N", 0.00, 0.1), ("N", 0.01, 0.2), ("N", -0.01, 0.0), ("N", 0.02, 0.1),
           ("L3", 0.30, 8.0), ("L3", 0.32, 9.0), ("L3", 0.28, 7.5), ("L3", 0.31, 8.5)]
    ids = _agreed(db, team, pts)
    assert run_check2(db, SHELL) == {}  # no ranges yet: images stay agreed
    assert set(image_states(db).state) == {"agreed"}
    with pytest.raises(PermissionDenied):
        learn_and_store_ranges(db, team["a"])
    v1 = learn_and_store_ranges(db, team["coord"])
    assert run_check2(db, SHELL) == {"accepted": 8}
    assert set(image_states(db).state) == {"accepted"}
    # A new image whose reads say N but whose asymmetry sits in the L3 box: check-2 mismatch.
    (odd,) = _agreed(db, team, [("N", 0.30, 8.2)])
    assert run_check2(db, SHELL) == {"mismatch": 1}
    s = state(db, odd)
    assert (s.state, s.range_class) == ("awaiting_adjudication", "L3") and "check 2" in s.reason
    # An unmeasurable face goes to adjudication too.
    (blind,) = _agreed(db, team, [("N", None, None)])
    measure(db, blind, None, None, status="no_face")
    assert run_check2(db, SHELL) == {"undetermined": 1}
    # Re-learning makes a new version; earlier results keep the version they used.
    extra = _agreed(db, team, [("N", 0.03, 0.3)])
    v2 = learn_and_store_ranges(db, team["coord"])
    assert v2.version != v1.version
    run_check2(db, SHELL)
    versions = dict(db.execute("SELECT image_id, range_version FROM check2_results").fetchall())
    assert versions[ids[0]] == v1.version and versions[extra[0]] == v2.version
    assert db.execute("SELECT count(*) FROM range_tables").fetchone()[0] == 2


def test_ranges_of_an_older_index_version_are_never_applied(db, team, monkeypatch):
    import labeling.workflow.states as workflow

    settings.change(db, "range_min_count", 3, SHELL)
    _agreed(db, team, [("N", 0.00, 0.1), ("N", 0.01, 0.2), ("N", -0.01, 0.0)])
    learned = learn_and_store_ranges(db, team["coord"])
    assert workflow.latest_ranges(db).version == learned.version and not workflow.ranges_stale(db)
    params = json.loads(db.execute("SELECT params FROM range_tables").fetchone()[0])
    assert params["index_version"] == INDEX_VERSION
    # The formula changes: the stored table describes indices no longer computed.
    monkeypatch.setattr(workflow, "INDEX_VERSION", "asym-test-next")
    assert workflow.latest_ranges(db) is None and workflow.ranges_stale(db)
    _agreed(db, team, [("N", 0.02, 0.1)])
    assert run_check2(db, SHELL) == {}  # waits for ranges of the current formula


def test_the_same_ranges_learned_under_a_new_formula_are_stored_anew(db, team, monkeypatch):
    import labeling.workflow.states as workflow

    first = learn_and_store_ranges(db, team["coord"])  # no consensus yet: an empty table
    assert learn_and_store_ranges(db, team["coord"]).version == first.version  # same rows, same version
    monkeypatch.setattr(workflow, "INDEX_VERSION", "asym-test-next")
    again = learn_and_store_ranges(db, team["coord"])  # the same (empty) cells, another formula
    assert again.version != first.version and workflow.latest_ranges(db).version == again.version
    assert not workflow.ranges_stale(db)
    assert db.execute("SELECT count(*) FROM range_tables").fetchone()[0] == 2


def test_adjudication_final_and_exclusion(db, team):
    one, two, three = make_images(db, 3)
    for _ in range(3):
        read(db, team["a"], "L1")
    for _ in range(3):
        read(db, team["b"], "L2")
    with pytest.raises(PermissionDenied):
        adjudicate(db, team["a"], one, "L1")
    adjudicate(db, team["judge"], one, "L2")
    adjudicate(db, team["judge"], two, exclude_reason="wrong movement: patient smiled during MV1")
    assert state(db, one).state == "final" and state(db, one).final_label == "L2"
    assert state(db, two).state == "excluded"
    with pytest.raises(WorkflowError):
        adjudicate(db, team["judge"], three)
    counts = state_counts(db)
    assert counts["final"] == 1 and counts["excluded"] == 1 and counts["awaiting_adjudication"] == 1
    assert sum(counts.values()) == 3


def test_adjudication_not_allowed_before_reads_are_in(db, team):
    (img,) = make_images(db, 1)
    read(db, team["a"], "N")
    with pytest.raises(WorkflowError, match="awaiting read 2"):
        adjudicate(db, team["judge"], img, "N")


def test_adjudicator_sees_reader_a_b_unless_revealed(db, team):
    (img,) = make_images(db, 1)
    read(db, team["a"], "L1")
    read(db, team["b"], "L3")
    case = adjudication_case(db, team["judge"], img)
    assert [r["reader"] for r in case.reads] == ["Reader A", "Reader B"]
    assert [r["label"] for r in case.reads] == ["L1", "L3"]
    settings.change(db, "reveal_readers", True, SHELL)
    assert [r["reader"] for r in adjudication_case(db, team["judge"], img).reads] == ["ann", "bob"]
    with pytest.raises(PermissionDenied):
        adjudication_case(db, team["a"], img)


def test_auditors_and_coordinators_cannot_read(db, team):
    make_images(db, 1)
    for who in ("aud", "coord", "judge"):
        with pytest.raises(PermissionDenied):
            claim_next(db, team[who], now=T0)


def test_read_summary_kept_by_the_database_equals_a_full_recount(db, team):
    import random

    rng = random.Random(4)
    make_images(db, 12)
    t = T0
    for step in range(60):
        t += dt.timedelta(seconds=1)
        who = team[rng.choice("abc")]
        if rng.random() < 0.2:
            try:
                undo_last_read(db, who, now=t)
            except QueueError:
                pass
            continue
        c = claim_next(db, who, now=t)
        if c is not None:
            label = rng.choice(["N", "L1", None])
            submit_read(db, who, c.image_id, label, cannot_grade=None if label else "blurred",
                        now=t + dt.timedelta(milliseconds=500))
    kept = db.execute("SELECT image_id, n, lo, hi, labelled, last_read FROM image_read_summary ORDER BY image_id").fetchall()
    full = db.execute("SELECT image_id, count(*), min(label), max(label), count(label), max(submitted_at) FROM reads r "
                      "WHERE r.kind = 'read' AND NOT EXISTS (SELECT 1 FROM reads u WHERE u.supersedes = r.id) "
                      "GROUP BY image_id ORDER BY image_id").fetchall()
    assert [k for k in kept if k[1] > 0] == full
    assert db.execute("SELECT count(*) FROM reads WHERE kind = 'undo'").fetchone()[0] > 0


def test_the_adjudication_queue_orders_and_the_evidence_in_words(db, team):
    from asymmetry.ranges import learn_ranges
    from labeling.workflow.states import range_explanation, subject_images

    one, two, three = make_images(db, 3)
    read_image(db, team["a"], one, "L1", now=T0 + dt.timedelta(minutes=5))
    read_image(db, team["b"], one, "R1", now=T0 + dt.timedelta(minutes=5))
    read_image(db, team["a"], two, "N", now=T0)
    read_image(db, team["b"], two, "N", now=T0)
    measure(db, two, None, None, status="no_face")
    settings.change(db, "range_min_count", 1, SHELL)
    learn_and_store_ranges(db, team["coord"])
    run_check2(db, SHELL)  # two: agreed, but the face cannot be measured: to the adjudicator
    waiting = adjudication_queue(db, team["judge"])
    assert list(waiting.image_id) == [two, one]  # waiting longest first
    assert list(adjudication_queue(db, team["judge"], "disagreement").image_id) == [one, two]
    assert list(adjudication_queue(db, team["judge"], "mismatch").image_id) == [two, one]
    assert set(waiting.subject) == {"S1"}
    face = subject_images(db, team["judge"], one)
    assert list(face.image_id) == [one, two, three] and list(face.state) == [
        "awaiting_adjudication", "awaiting_adjudication", "awaiting_read_1"]
    with pytest.raises(PermissionDenied):
        subject_images(db, team["a"], one)
    table = learn_ranges(pd.DataFrame({"movement": ["MV4"] * 4, "label": ["N", "N", "L3", "L3"],
                                       "rgas_signed": [0.0, 0.02, 0.3, 0.32], "anas_signed": [0.1, 0.2, 8.0, 9.0]}),
                         min_count=2)
    assert range_explanation(table, "MV4", 0.01, 0.15, "ok") == ("N", "N: the point lies inside the N box of MV4.")
    cls, why = range_explanation(table, "MV4", 0.9, 20.0, "ok")
    assert cls == "L3" and "outside every box of MV4; L3's is the nearest" in why
    assert range_explanation(table, "MV4", None, None, "no_face")[1] == \
        "No range class: the face could not be measured (no face)."
    assert "no range table has been learned yet" in range_explanation(None, "MV4", 0.0, 0.0, "ok")[1]
    assert "not been measured yet" in range_explanation(table, "MV4", None, None, None)[1]
