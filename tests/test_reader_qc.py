"""Reader quality control: mirror and gold items come in each reader's queue like any image, are
scored (mirror consistency, gold accuracy, side bias, drift), and are never reads: no image's state
moves, nothing is exported, the agreement between readers does not see them."""
import datetime as dt
import uuid

import pytest

from db.access import transaction
from labeling.workflow import settings
from labeling.accounts.permissions import PermissionDenied
from labeling.workflow.queue import claim_next, ensure_slots, submit_choice, undo_last_read
from labeling.workflow.reader_qc import MIRROR_GAP, QCError, load_qc, mark_gold, mirror_label, reader_qc
from labeling.accounts.users import add_user
from labeling.workflow.states import image_states
from tests.conftest import SHELL, read_image

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL (tests/conftest.py)

T0 = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.timezone.utc)


def images(db, n_subjects):
    with transaction(db) as conn:
        for s in range(n_subjects):
            sid = conn.execute("INSERT INTO subjects (code, created_at) VALUES (?, 'x')", (f"S{s}",)).lastrowid
            for m in range(7):
                conn.execute("INSERT INTO images (sha256, subject_id, movement, source, mirrored, width, height, format, "
                             "mode, bytes, stored_path, imported_at) VALUES (?, ?, ?, 'hospital', 0, 9, 9, 'JPEG', "
                             "'RGB', 1, 'x', 'x')", (uuid.uuid4().hex, sid, f"MV{m}"))
    ensure_slots(db)
    return [r[0] for r in db.execute("SELECT id FROM images ORDER BY id")]


def read_on(db, reader, labels, n, start=T0):
    """Let `reader` take `n` things from the queue, answering with labels[image_id] (mirrored for a
    mirror item, as a consistent reader does); return the claims."""
    claims = []
    for k in range(n):
        t = start + dt.timedelta(seconds=10 * k)
        c = claim_next(db, reader, now=t)
        if c is None:
            break
        label = mirror_label(labels[c.image_id]) if c.flipped else labels[c.image_id]
        submit_choice(db, reader, c.token, label, now=t + dt.timedelta(seconds=2), shown_ms=900)
        claims.append(c)
    return claims


def test_mirror_items_come_after_the_gap_are_flipped_and_scored_never_reads(db):
    ids = images(db, 6)
    labels = {i: ["N", "L1", "R2", "L3", "R1", "N", "L2"][i % 7] for i in ids}
    settings.change(db, "qc_share", 0.5, SHELL)
    ann = add_user(db, "ann", "a long password", ["reader"], actor=SHELL)
    claims = read_on(db, ann, labels, 30)
    qc = [c for c in claims if c.qc_id is not None]
    reads = [c for c in claims if c.qc_id is None]
    assert all(c.slot == 0 and c.flipped and c.token.startswith("q") for c in qc)
    assert len(qc) >= 5 and claims.index(qc[0]) >= MIRROR_GAP  # not before the reader has read MIRROR_GAP images
    mirrored = [c.image_id for c in qc]
    assert set(mirrored) <= {c.image_id for c in reads} and len(set(mirrored)) == len(mirrored)
    # Never reads: the stored reads are exactly the read claims, and no image state moved for a QC answer.
    assert db.execute("SELECT count(*) FROM reads").fetchone()[0] == len(reads)
    assert (image_states(db).n_reads <= 1).all()
    results = reader_qc(load_qc(db)).set_index("reader")
    assert results.mirror_n["ann"] == len(qc) and results.mirror_p["ann"] == 1.0
    assert 0 < results.mirror_lo["ann"] < 1.0 == results.mirror_hi["ann"]  # a 100% never gets a point interval


def test_an_inconsistent_reader_is_seen_and_side_bias_is_measured(db):
    ids = images(db, 6)
    truth = {i: ["L1", "L2", "R1", "R2", "N", "L3", "R3"][i % 7] for i in ids}
    settings.change(db, "qc_share", 0.5, SHELL)
    settings.change(db, "check2_enabled", False, SHELL)
    bob = add_user(db, "bob", "a long password", ["reader"], actor=SHELL)
    cat = add_user(db, "cat", "a long password", ["reader"], actor=SHELL)
    # bob calls every face's left; and answers mirror items with his own label, not the mirrored one.
    for k in range(60):
        t = T0 + dt.timedelta(seconds=10 * k)
        c = claim_next(db, bob, now=t)
        if c is None:
            break
        said = "L" + truth[c.image_id][1:] if truth[c.image_id] != "N" else "N"
        submit_choice(db, bob, c.token, said, now=t + dt.timedelta(seconds=2))
    for i in ids:  # cat reads every image as the truth: final labels where bob agreed
        if not db.execute("SELECT 1 FROM reads WHERE image_id = ? AND reader_id = ?", [i, cat.id]).fetchone():
            read_image(db, cat, i, truth[i])
    r = reader_qc(load_qc(db)).set_index("reader")
    assert r.mirror_n["bob"] > 0 and r.mirror_p["bob"] < 0.5  # the same side on the flipped face: inconsistent
    assert r.side_bias["bob"] == 0  # where bob agrees with cat there is a final label, and bob's side is right
    assert r.side_bias["cat"] == 0


def test_gold_items_need_final_labels_are_shown_to_readers_who_did_not_read_them(db):
    ids = images(db, 2)
    settings.change(db, "check2_enabled", False, SHELL)
    a = add_user(db, "ra", "a long password", ["reader"], actor=SHELL)
    b = add_user(db, "rb", "a long password", ["reader"], actor=SHELL)
    coord = add_user(db, "coord", "a long password", ["coordinator"], actor=SHELL)
    for i in ids[:7]:  # subject 0 read twice, agreeing: final (check 2 off)
        read_image(db, a, i, "R1")
        read_image(db, b, i, "R1")
    with pytest.raises(QCError, match="final label"):
        mark_gold(db, coord, [ids[0], ids[8]])  # ids[8] has no final label
    with pytest.raises(PermissionDenied):
        mark_gold(db, a, [ids[0]])
    assert mark_gold(db, coord, ids[:7]) == 7
    settings.change(db, "qc_share", 0.5, SHELL)
    dan = add_user(db, "dan", "a long password", ["reader"], actor=SHELL)
    claims = read_on(db, dan, {i: "R1" if i in ids[:7] else "N" for i in ids}, 12)
    gold = [c for c in claims if c.qc_id is not None]
    assert gold and all(c.image_id in ids[:7] and not c.flipped for c in gold)  # gold: not flipped, final-labelled
    more = read_on(db, a, {i: "N" for i in ids}, 7, start=T0 + dt.timedelta(hours=1))
    assert more and not [c for c in more if c.qc_id is not None and not c.flipped]  # a read the gold: never gold for a
    r = reader_qc(load_qc(db)).set_index("reader")
    assert r.gold_n["dan"] == len(gold) and r.gold_p["dan"] == 1.0


def test_a_qc_answer_is_undone_like_a_read(db):
    from labeling.workflow.queue import current_claim

    ids = images(db, 3)
    settings.change(db, "qc_share", 0.5, SHELL)
    ann = add_user(db, "ann", "a long password", ["reader"], actor=SHELL)
    t = T0
    for _ in range(40):  # read until the queue hands over a quality-control item, and answer it
        c = claim_next(db, ann, now=t)
        submit_choice(db, ann, c.token, "N", now=t + dt.timedelta(seconds=2))
        t += dt.timedelta(seconds=10)
        if c.qc_id is not None:
            break
    assert c.qc_id is not None
    reads = db.execute("SELECT count(*) FROM reads").fetchone()[0]
    assert undo_last_read(db, ann, now=t) == c.image_id
    assert db.execute("SELECT kind, supersedes IS NOT NULL FROM qc_answers ORDER BY id DESC LIMIT 1").fetchone() == \
        ("undo", 1)
    assert db.execute("SELECT count(*) FROM reads").fetchone()[0] == reads  # no read touched
    held = current_claim(db, ann, now=t)
    assert held.qc_id == c.qc_id  # the reader holds that item again, to answer it anew
    submit_choice(db, ann, held.token, "L1", now=t + dt.timedelta(seconds=2))
    assert db.execute("SELECT label FROM effective_qc_answers WHERE qc_item_id = ?", [c.qc_id]).fetchall() == [("L1",)]
    assert ids
