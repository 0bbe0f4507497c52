"""The read queue (check 1): who reads which image next. A small policy you can read in one go.

- Every image has as many read slots as its check 1 needs (`images.reads_required`, set from the
  project's `reads_per_image` when the image arrives). A reader claims one slot at a time,
  atomically (BEGIN IMMEDIATE), with a lease that expires; an expired lease frees the slot.
- Reading order: each reader walks the open slots in an order of their own, seeded per reader
  (a start drawn from the reader's id and how many reads they have made, along a fixed, well-spread
  place of every slot), so one face's seven movements are never read back to back and earlier
  labels do not prime later ones; the next image never shows the subject of the last one while
  the queue holds another subject.
- inter mode: a reader never gets a slot of an image they have read or hold.
- intra mode: slot 1 goes to anyone; the next slot is reserved for the reader of the last one and
  opens only after the washout.
- Deliberate reads: a read is refused until the image has been in the reader's hands for the
  minimum viewing time (`key_dwell_ms`), so a double press or a held key never labels an image
  nobody saw; the browser measures the same on screen and the read keeps that figure.
- Nothing here ever returns or reads another read's label: blind by construction.
The reads themselves are append-only events in `reads`; `read_slots` is the mutable queue.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from dataclasses import dataclass

from db.access import Database, audit, transaction
from labeling.vocabulary import CLASSES, MAX_REASON
from labeling.workflow import reader_qc
from labeling.workflow import settings
from labeling.workflow.queue_errors import NotReserved, QueueError, check_showing, duration_ms
from labeling.accounts.actors import User
from labeling.accounts.permissions import authorize, require



@dataclass(frozen=True)
class Claim:
    """What a reader holds: which image, which read number, when it was handed over and until when
    it stays reserved. `token` names this hand-over: a key pressed for another one is stale. A
    quality-control item (labeling/workflow/reader_qc.py) is a claim too, with its `qc_id` (slot 0) and, for a
    mirror item, `flipped`: the reader's page shows it like any other image."""

    image_id: int
    slot: int
    claimed_at: str
    lease_expires: str
    qc_id: int | None = None
    flipped: bool = False

    @property
    def token(self) -> str:
        if self.qc_id is not None:
            return f"q{self.qc_id}.{self.claimed_at}"
        return f"{self.image_id}.{self.slot}.{self.claimed_at}"


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or dt.datetime.now(dt.timezone.utc)


def _ts(t: dt.datetime) -> str:
    return t.isoformat(timespec="milliseconds")


def ensure_slots(db: Database) -> int:
    """Create the missing read slots of every image (one per read it needs); return how many were added."""
    with transaction(db) as conn:
        return _ensure_slots(conn)


def _ensure_slots(conn: sqlite3.Connection) -> int:
    added = 0
    top = conn.execute("SELECT coalesce(max(reads_required), 0) FROM images").fetchone()[0]
    for slot in range(1, top + 1):
        # Images that lost open slots to a lowered requirement are not topped up again: only
        # images with fewer slots (filled or open) than they need get new ones.
        added += conn.execute("INSERT OR IGNORE INTO read_slots (image_id, slot) SELECT i.id, ? FROM images i "
                              "WHERE i.reads_required >= ? AND (SELECT count(*) FROM read_slots s WHERE "
                              "s.image_id = i.id) < i.reads_required", (slot, slot)).rowcount
    return added


_HELD = ("SELECT image_id, slot, claimed_at, lease_expires FROM read_slots WHERE reader_id = ? AND read_id IS NULL "
         "AND lease_expires > ? ORDER BY lease_expires DESC LIMIT 1")


def _qc_claim(row) -> Claim:
    qc_id, image_id, kind, claimed_at, lease_expires = row
    return Claim(image_id, 0, claimed_at, lease_expires, qc_id=qc_id, flipped=kind == "mirror")


def _made(conn, reader: User) -> int:
    """What seeds the reader's next draws: the ids of their latest read (or undo) and latest QC answer,
    summed. It moves with every answer they give, is the same when a project is replayed, and costs
    two index look-ups however many reads the reader has made (a count cost 2 ms a claim on SQLite and
    19 ms on PostgreSQL at 50,000 reads per reader)."""
    return conn.execute("SELECT coalesce((SELECT max(id) FROM reads WHERE reader_id = :me), 0) + "
                        "coalesce((SELECT max(id) FROM qc_answers WHERE reader_id = :me), 0)",
                        {"me": reader.id}).fetchone()[0]


def current_claim(db: Database, reader: User, now: dt.datetime | None = None) -> Claim | None:
    """Return the reader's live claim, if any (a reader holds at most one image)."""
    t = _ts(_now(now))
    row = db.execute(_HELD, [reader.id, t]).fetchone()
    if row:
        return Claim(*row)
    qc = reader_qc.held_item(db.conn, reader, _now(now))
    return _qc_claim(qc) if qc else None


def claim_next(db: Database, reader: User, now: dt.datetime | None = None) -> Claim | None:
    """Claim the next slot for `reader` (or return the one they hold, its lease renewed); None when
    nothing is left for them."""
    require(reader, "read.submit")
    t = _now(now)
    s = settings.snapshot(db)
    lease = dt.timedelta(seconds=int(s["lease_seconds"]))
    intra = s["read_mode"] == "intra"
    share = float(s["qc_share"])
    with transaction(db) as conn:
        authorize(conn, reader, "read.submit")
        held = conn.execute(_HELD, (reader.id, _ts(t))).fetchone()
        if held:
            conn.execute("UPDATE read_slots SET lease_expires = ? WHERE image_id = ? AND slot = ?",
                         (_ts(t + lease), held[0], held[1]))
            return Claim(held[0], held[1], held[2] or _ts(t), _ts(t + lease))
        qc = reader_qc.held_item(conn, reader, t)
        if qc:
            conn.execute("UPDATE qc_items SET lease_expires = ? WHERE id = ?", (_ts(t + lease), qc[0]))
            return _qc_claim((*qc[:4], _ts(t + lease)))
        made = _made(conn, reader)
        last = _last_subject(conn, reader)
        qc = reader_qc.claim_item(conn, reader, t, made, share, lease, avoid_subject=last)
        if qc:
            audit(conn, reader.name, "qc.claimed", "qc_item", qc[0], kind=qc[2])
            return _qc_claim(qc)
        row = _next_slot(conn, reader, t, intra, made, last)
        if row is None:
            return None
        conn.execute("UPDATE read_slots SET reader_id = ?, lease_expires = ?, claimed_at = ? WHERE image_id = ? "
                     "AND slot = ?", (reader.id, _ts(t + lease), _ts(t), row[0], row[1]))
        audit(conn, reader.name, "read.claimed", "image", row[0], slot=row[1])
    return Claim(row[0], row[1], _ts(t), _ts(t + lease))


_ELIGIBLE = """SELECT s.image_id, s.slot, i.subject_id FROM read_slots s JOIN images i ON i.id = s.image_id
    WHERE s.read_id IS NULL AND s.shuffle {side} :start
      AND (s.lease_expires IS NULL OR s.lease_expires <= :now)
      AND (s.reserved_for IS NULL OR s.reserved_for = :me)
      AND (s.available_at IS NULL OR s.available_at <= :now)
      AND (CASE WHEN :intra = 1 THEN (s.slot = 1 OR s.reserved_for = :me)
           ELSE NOT EXISTS (SELECT 1 FROM read_slots o WHERE o.image_id = s.image_id AND o.slot <> s.slot
                            AND o.reader_id = :me AND (o.read_id IS NOT NULL OR o.lease_expires > :now)) END)
      AND NOT EXISTS (SELECT 1 FROM effective_adjudications a WHERE a.image_id = s.image_id)
    ORDER BY s.shuffle LIMIT :look"""
LOOK_AHEAD = 16  # open slots looked at past the reader's start for one of another subject


def reading_start(reader_id: int, made: int) -> int:
    """Where the reader's walk of the reading order starts for their next image: a number in
    [0, 2**32) drawn from their id and how many reads (and undos) they have made, so each reader's
    order is their own, different from every other's, and the same when a project is replayed."""
    digest = hashlib.blake2b(f"fnp-reading-order:{reader_id}:{made}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")


def _last_subject(conn: sqlite3.Connection, reader: User) -> int | None:
    """The subject of the last image the reader answered (a read or a quality-control item)."""
    row = conn.execute(
        "SELECT subject_id FROM (SELECT i.subject_id, r.submitted_at FROM (SELECT image_id, submitted_at FROM reads "
        "WHERE reader_id = :me AND kind = 'read' ORDER BY id DESC LIMIT 1) r JOIN images i ON i.id = r.image_id "
        "UNION ALL SELECT i.subject_id, a.submitted_at FROM (SELECT qc_item_id, submitted_at FROM qc_answers "
        "WHERE reader_id = :me AND kind = 'answer' ORDER BY id DESC LIMIT 1) a JOIN qc_items q ON q.id = a.qc_item_id "
        "JOIN images i ON i.id = q.image_id) latest ORDER BY submitted_at DESC LIMIT 1", {"me": reader.id}).fetchone()
    return row[0] if row else None


def _next_slot(conn: sqlite3.Connection, reader: User, t: dt.datetime, intra: bool, made: int,
               last: int | None):
    """The reader's next open slot in their reading order, passing over the subject they answered
    last for one of the next LOOK_AHEAD open slots in their order when one is of another subject
    (so a claim reads a bounded number of rows however many slots a subject holds)."""
    params = {"now": _ts(t), "me": reader.id, "intra": int(intra), "start": reading_start(reader.id, made),
              "look": LOOK_AHEAD}
    # On PostgreSQL the chosen slot is locked too, and a slot another transaction holds is passed
    # over (writes are serialised already: see db/postgres.py; this keeps the claim right without it).
    lock = " FOR UPDATE OF s SKIP LOCKED" if getattr(conn, "backend", "sqlite") == "postgresql" else ""
    seen: list = []
    for side in (">=", "<"):  # from the start to the end of the order, then from its beginning
        seen += conn.execute(_ELIGIBLE.format(side=side) + lock, {**params, "look": LOOK_AHEAD - len(seen)}).fetchall()
        if len(seen) >= LOOK_AHEAD:
            break
    other = next((row for row in seen if row[2] != last), None)
    row = other or (seen[0] if seen else None)
    return None if row is None else (row[0], row[1])


def release(db: Database, reader: User) -> None:
    """Give back the reader's unread claims (on sign-out), so others can take them at once."""
    with transaction(db) as conn:
        conn.execute("UPDATE read_slots SET lease_expires = NULL, claimed_at = NULL, reader_id = CASE WHEN "
                     "reserved_for IS NULL THEN NULL ELSE reader_id END WHERE reader_id = ? AND read_id IS NULL",
                     (reader.id,))
        conn.execute("UPDATE qc_items SET lease_expires = NULL WHERE reader_id = ? AND lease_expires IS NOT NULL",
                     (reader.id,))


def submit_choice(db: Database, reader: User, token: str, label: str | None = None,
                  cannot_grade: str | None = None, started_at: str | None = None, now: dt.datetime | None = None,
                  shown_ms: int | None = None, simulated: bool = False) -> int:
    """Record the reader's choice for what the page showed under `token` (a read slot's claim or a
    quality-control item's); return the new event's id. The page never needs to know which."""
    if token.startswith("q"):
        require(reader, "read.submit")
        if (label is None) == (cannot_grade is None or not str(cannot_grade).strip()):
            raise QueueError("give either a label or a reason why the image cannot be graded")
        if label is not None and label not in CLASSES:
            raise QueueError(f"unknown label {label!r}: use one of {', '.join(CLASSES)}")
        try:
            qc_id = int(token[1:].split(".", 1)[0])
        except ValueError:
            raise QueueError("that choice names no image; nothing was saved") from None
        reason = None if cannot_grade is None else str(cannot_grade).strip()[:MAX_REASON]
        dwell = dt.timedelta(milliseconds=int(settings.get(db, "key_dwell_ms")))
        return reader_qc.submit_answer(db, reader, qc_id, label, reason, _now(now), dwell, started_at=started_at,
                                       shown_ms=shown_ms, token=token, simulated=simulated)
    try:
        image_id = int(token.split(".", 1)[0])
    except ValueError:
        raise QueueError("that choice names no image; nothing was saved") from None
    return submit_read(db, reader, image_id, label, cannot_grade=cannot_grade, started_at=started_at, now=now,
                       shown_ms=shown_ms, token=token, simulated=simulated)


def submit_read(db: Database, reader: User, image_id: int, label: str | None = None,
                cannot_grade: str | None = None, started_at: str | None = None,
                now: dt.datetime | None = None, simulated: bool = False, shown_ms: int | None = None,
                token: str | None = None) -> int:
    """Record the reader's read of the image they hold; return the new read's id.

    Exactly one of `label` (N, L1-L3, R1-R3) or `cannot_grade` (a reason) is given. Refused when
    the reader does not hold a slot of this image (never claimed, or the lease passed to someone),
    when `token` (the claim the page showed) is not the claim they hold now, and (TooQuick)
    before the image has been theirs for the minimum viewing time. `shown_ms` is how long the
    browser had shown it, kept with the read.
    """
    require(reader, "read.submit")
    if (label is None) == (cannot_grade is None or not str(cannot_grade).strip()):
        raise QueueError("give either a label or a reason why the image cannot be graded")
    if label is not None and label not in CLASSES:
        raise QueueError(f"unknown label {label!r}: use one of {', '.join(CLASSES)}")
    reason = None if cannot_grade is None else str(cannot_grade).strip()[:MAX_REASON]
    t = _now(now)
    s = settings.snapshot(db)
    intra = s["read_mode"] == "intra"
    washout = dt.timedelta(hours=float(s["washout_hours"]))
    dwell = dt.timedelta(milliseconds=int(s["key_dwell_ms"]))
    with transaction(db) as conn:
        who = authorize(conn, reader, "read.submit")
        slot = conn.execute("SELECT slot, claimed_at FROM read_slots WHERE image_id = ? AND reader_id = ? "
                            "AND read_id IS NULL ORDER BY slot LIMIT 1", (image_id, reader.id)).fetchone()
        if slot is None:
            raise NotReserved()
        check_showing(token, f"{image_id}.{slot[0]}.{slot[1]}", slot[1], t, dwell)
        duration = duration_ms(t, started_at)
        read_id = conn.execute(
            "INSERT INTO reads (image_id, reader_id, label, cannot_grade, started_at, submitted_at, duration_ms, "
            "simulated, shown_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (image_id, reader.id, label, reason, started_at, _ts(t), duration, int(simulated), shown_ms)).lastrowid
        conn.execute("UPDATE read_slots SET read_id = ?, lease_expires = NULL WHERE image_id = ? AND slot = ?",
                     (read_id, image_id, slot[0]))
        if intra:
            conn.execute("UPDATE read_slots SET reserved_for = ?, available_at = ? WHERE image_id = ? AND read_id IS NULL "
                         "AND slot = (SELECT min(slot) FROM read_slots WHERE image_id = ? AND read_id IS NULL)",
                         (reader.id, _ts(t + washout), image_id, image_id))
        audit(conn, who, "read.submitted", "image", image_id, slot=slot[0], read_id=read_id,
              cannot_grade=reason is not None)
    return read_id


def undo_last_read(db: Database, reader: User, now: dt.datetime | None = None) -> int:
    """Undo the reader's last read within the undo window; return the image id, held again by them.

    The read stays in the table; a new 'undo' event supersedes it. Refused once the image has
    been adjudicated or the window has passed.
    """
    require(reader, "read.submit")
    t = _now(now)
    s = settings.snapshot(db)
    window = dt.timedelta(seconds=int(s["undo_seconds"]))
    lease = dt.timedelta(seconds=int(s["lease_seconds"]))
    with transaction(db) as conn:
        who = authorize(conn, reader, "read.submit")
        last = conn.execute("SELECT id, image_id, submitted_at FROM effective_reads WHERE reader_id = ? "
                            "ORDER BY id DESC LIMIT 1", (reader.id,)).fetchone()
        qc = conn.execute("SELECT a.id, q.id, q.image_id, a.submitted_at FROM effective_qc_answers a JOIN qc_items q "
                          "ON q.id = a.qc_item_id WHERE a.reader_id = ? ORDER BY a.id DESC LIMIT 1",
                          (reader.id,)).fetchone()
        if qc is not None and (last is None or qc[3] > last[2]):  # their last answer was a QC item's
            if t - dt.datetime.fromisoformat(qc[3]) > window:
                raise QueueError(f"reads can be undone for {int(window.total_seconds())} seconds only")
            conn.execute("UPDATE read_slots SET lease_expires = NULL, claimed_at = NULL, reader_id = CASE WHEN "
                         "reserved_for IS NULL THEN NULL ELSE reader_id END WHERE reader_id = ? AND read_id IS NULL",
                         (reader.id,))
            conn.execute("UPDATE qc_items SET lease_expires = NULL WHERE reader_id = ? AND lease_expires IS NOT NULL",
                         (reader.id,))
            reader_qc.undo_answer(conn, reader, qc[0], qc[1], t, lease, who)
            return qc[2]
        if last is None:
            raise QueueError("there is no read of yours to undo")
        read_id, image_id, submitted = last
        if t - dt.datetime.fromisoformat(submitted) > window:
            raise QueueError(f"reads can be undone for {int(window.total_seconds())} seconds only")
        if conn.execute("SELECT 1 FROM effective_adjudications WHERE image_id = ?", (image_id,)).fetchone():
            raise QueueError("this image has been adjudicated; its reads can no longer be undone")
        conn.execute("INSERT INTO reads (image_id, reader_id, kind, supersedes, submitted_at) VALUES (?, ?, 'undo', ?, ?)",
                     (image_id, reader.id, read_id, _ts(t)))
        # The image they had been handed meanwhile goes back to the queue: they hold this one again.
        conn.execute("UPDATE read_slots SET lease_expires = NULL, claimed_at = NULL, reader_id = CASE WHEN "
                     "reserved_for IS NULL THEN NULL ELSE reader_id END WHERE reader_id = ? AND read_id IS NULL",
                     (reader.id,))
        conn.execute("UPDATE qc_items SET lease_expires = NULL WHERE reader_id = ? AND lease_expires IS NOT NULL",
                     (reader.id,))
        slot = conn.execute("SELECT slot FROM read_slots WHERE read_id = ?", (read_id,)).fetchone()
        if slot:
            conn.execute("UPDATE read_slots SET read_id = NULL, reader_id = ?, lease_expires = ?, claimed_at = ? "
                         "WHERE image_id = ? AND slot = ?", (reader.id, _ts(t + lease), _ts(t), image_id, slot[0]))
            conn.execute("UPDATE read_slots SET reserved_for = NULL, available_at = NULL WHERE image_id = ? AND slot > ? "
                         "AND read_id IS NULL AND reserved_for = ?", (image_id, slot[0], reader.id))
        audit(conn, who, "read.undone", "image", image_id, read_id=read_id)
    return image_id


def reader_progress(db: Database, reader: User, remaining: bool = True) -> dict[str, int]:
    """Return how many reads the reader has done and (unless `remaining` is False: it scans the
    open slots) how many images remain open to them."""
    # Every undo supersedes one of the same reader's reads: their reads minus their undos, counted
    # from the (reader_id, kind) index alone.
    done = db.execute("SELECT (SELECT count(*) FROM reads WHERE reader_id = :me AND kind = 'read') - "
                      "(SELECT count(*) FROM reads WHERE reader_id = :me AND kind = 'undo') + "
                      "(SELECT count(*) FROM qc_answers WHERE reader_id = :me AND kind = 'answer') - "
                      "(SELECT count(*) FROM qc_answers WHERE reader_id = :me AND kind = 'undo')",
                      {"me": reader.id}).fetchone()[0]
    if not remaining:
        return {"done": done}
    intra = settings.get(db, "read_mode") == "intra"
    if intra:
        remaining = db.execute("SELECT count(*) FROM read_slots WHERE read_id IS NULL AND (slot = 1 OR reserved_for = ?)",
                               [reader.id]).fetchone()[0]
    else:
        remaining = db.execute("SELECT count(DISTINCT s.image_id) FROM read_slots s WHERE s.read_id IS NULL AND NOT EXISTS "
                               "(SELECT 1 FROM read_slots o WHERE o.image_id = s.image_id AND o.reader_id = ? AND "
                               "o.read_id IS NOT NULL)", [reader.id]).fetchone()[0]
    return {"done": done, "remaining": remaining}


# ---- changing the plan mid-project ------------------------------------------------------------
