"""The read queue (check 1): who reads which image next. A small policy you can read in one go.

- Every image has `reads_per_image` slots. A reader claims one slot at a time, atomically
  (BEGIN IMMEDIATE), with a lease that expires; an expired lease frees the slot for others.
- Slots are served image by image (lowest image id first), so images complete their reads
  soon after they start and reach check 2 early.
- inter mode: a reader never gets a slot of an image they have read or hold.
- intra mode: slot 1 goes to anyone; slot k+1 is reserved for the reader of slot k and opens
  only after the washout.
- Nothing here ever returns or reads another read's label: blind by construction.
The reads themselves are append-only events in `reads`; `read_slots` is the mutable queue,
which `rebuild_slots` can recreate from the events.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlite_utils

from db.access import audit, transaction
from db.migrations import CLASSES
from labeling import settings
from labeling.permissions import require
from labeling.users import User

MAX_REASON = 500


class QueueError(ValueError):
    """A queue action cannot be done (lease lost, nothing to undo…); the message says why."""


@dataclass(frozen=True)
class Claim:
    """A slot held by a reader: which image, which read number, and when the lease ends."""

    image_id: int
    slot: int
    claimed_at: str
    lease_expires: str


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or dt.datetime.now(dt.timezone.utc)


def _ts(t: dt.datetime) -> str:
    return t.isoformat(timespec="milliseconds")


def ensure_slots(db: sqlite_utils.Database) -> int:
    """Create the missing read slots of every image; return how many were added."""
    k = int(settings.get(db, "reads_per_image"))
    with transaction(db) as conn:
        before = conn.total_changes
        for slot in range(1, k + 1):
            conn.execute("INSERT OR IGNORE INTO read_slots (image_id, slot) SELECT id, ? FROM images", (slot,))
        return conn.total_changes - before


def rebuild_slots(db: sqlite_utils.Database) -> None:
    """Recreate the queue from the read events (after a crash or a manual repair)."""
    with transaction(db) as conn:
        conn.execute("DELETE FROM read_slots")
    ensure_slots(db)
    with transaction(db) as conn:
        rows = conn.execute("SELECT r.id, r.image_id, r.reader_id FROM reads r WHERE r.kind = 'read' AND NOT EXISTS "
                            "(SELECT 1 FROM reads u WHERE u.supersedes = r.id) ORDER BY r.id").fetchall()
        for read_id, image_id, reader_id in rows:
            conn.execute("UPDATE read_slots SET read_id = ?, reader_id = ? WHERE rowid = (SELECT rowid FROM read_slots "
                         "WHERE image_id = ? AND read_id IS NULL ORDER BY slot LIMIT 1)", (read_id, reader_id, image_id))


def current_claim(db: sqlite_utils.Database, reader: User, now: dt.datetime | None = None) -> Claim | None:
    """Return the reader's live claim, if any (a reader holds at most one image)."""
    row = db.execute("SELECT image_id, slot, lease_expires FROM read_slots WHERE reader_id = ? AND read_id IS NULL "
                     "AND lease_expires > ? ORDER BY lease_expires DESC LIMIT 1", [reader.id, _ts(_now(now))]).fetchone()
    return Claim(row[0], row[1], "", row[2]) if row else None


def claim_next(db: sqlite_utils.Database, reader: User, now: dt.datetime | None = None) -> Claim | None:
    """Claim the next slot for `reader` (or return the one they hold); None when nothing is left."""
    require(reader, "read.submit")
    t = _now(now)
    lease = dt.timedelta(seconds=int(settings.get(db, "lease_seconds")))
    intra = settings.get(db, "read_mode") == "intra"
    with transaction(db) as conn:
        held = conn.execute("SELECT image_id, slot FROM read_slots WHERE reader_id = ? AND read_id IS NULL "
                            "AND lease_expires > ? ORDER BY lease_expires DESC LIMIT 1", (reader.id, _ts(t))).fetchone()
        if held:
            conn.execute("UPDATE read_slots SET lease_expires = ? WHERE image_id = ? AND slot = ?",
                         (_ts(t + lease), held[0], held[1]))
            return Claim(held[0], held[1], _ts(t), _ts(t + lease))
        row = conn.execute(
            """SELECT s.image_id, s.slot FROM read_slots s
               WHERE s.read_id IS NULL
                 AND (s.lease_expires IS NULL OR s.lease_expires <= :now)
                 AND (s.reserved_for IS NULL OR s.reserved_for = :me)
                 AND (s.available_at IS NULL OR s.available_at <= :now)
                 AND (CASE WHEN :intra THEN (s.slot = 1 OR s.reserved_for = :me)
                      ELSE NOT EXISTS (SELECT 1 FROM read_slots o WHERE o.image_id = s.image_id AND o.slot <> s.slot
                                       AND o.reader_id = :me AND (o.read_id IS NOT NULL OR o.lease_expires > :now)) END)
                 AND NOT EXISTS (SELECT 1 FROM adjudications a WHERE a.image_id = s.image_id)
               ORDER BY s.image_id, s.slot LIMIT 1""",
            {"now": _ts(t), "me": reader.id, "intra": int(intra)}).fetchone()
        if row is None:
            return None
        conn.execute("UPDATE read_slots SET reader_id = ?, lease_expires = ? WHERE image_id = ? AND slot = ?",
                     (reader.id, _ts(t + lease), row[0], row[1]))
        audit(conn, reader.name, "read.claimed", "image", row[0], slot=row[1])
    return Claim(row[0], row[1], _ts(t), _ts(t + lease))


def release(db: sqlite_utils.Database, reader: User) -> None:
    """Give back the reader's unread claims (on sign-out), so others can take them at once."""
    with transaction(db) as conn:
        conn.execute("UPDATE read_slots SET lease_expires = NULL, reader_id = CASE WHEN reserved_for IS NULL THEN NULL "
                     "ELSE reader_id END WHERE reader_id = ? AND read_id IS NULL", (reader.id,))


def submit_read(db: sqlite_utils.Database, reader: User, image_id: int, label: str | None = None,
                cannot_grade: str | None = None, started_at: str | None = None,
                now: dt.datetime | None = None, simulated: bool = False) -> int:
    """Record the reader's read of the image they hold; return the new read's id.

    Exactly one of `label` (N, L1-L3, R1-R3) or `cannot_grade` (a reason) is given. Refused when
    the reader does not hold a slot of this image (never claimed, or the lease passed to someone).
    """
    require(reader, "read.submit")
    if (label is None) == (cannot_grade is None or not str(cannot_grade).strip()):
        raise QueueError("give either a label or a reason why the image cannot be graded")
    if label is not None and label not in CLASSES:
        raise QueueError(f"unknown label {label!r}: use one of {', '.join(CLASSES)}")
    reason = None if cannot_grade is None else str(cannot_grade).strip()[:MAX_REASON]
    t = _now(now)
    intra = settings.get(db, "read_mode") == "intra"
    washout = dt.timedelta(hours=float(settings.get(db, "washout_hours")))
    with transaction(db) as conn:
        slot = conn.execute("SELECT slot FROM read_slots WHERE image_id = ? AND reader_id = ? AND read_id IS NULL "
                            "ORDER BY slot LIMIT 1", (image_id, reader.id)).fetchone()
        if slot is None:
            raise QueueError("this image is no longer reserved for you (the lease expired and it went to someone "
                             "else); your read was not recorded")
        duration = None
        if started_at:
            try:
                duration = max(0, int((t - dt.datetime.fromisoformat(started_at)).total_seconds() * 1000))
            except ValueError:
                duration = None
        read_id = conn.execute(
            "INSERT INTO reads (image_id, reader_id, label, cannot_grade, started_at, submitted_at, duration_ms, simulated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (image_id, reader.id, label, reason, started_at, _ts(t), duration, int(simulated))).lastrowid
        conn.execute("UPDATE read_slots SET read_id = ?, lease_expires = NULL WHERE image_id = ? AND slot = ?",
                     (read_id, image_id, slot[0]))
        if intra:
            conn.execute("UPDATE read_slots SET reserved_for = ?, available_at = ? WHERE image_id = ? AND slot = ? "
                         "AND read_id IS NULL", (reader.id, _ts(t + washout), image_id, slot[0] + 1))
        audit(conn, reader.name, "read.submitted", "image", image_id, slot=slot[0], read_id=read_id,
              cannot_grade=reason is not None)
    return read_id


def undo_last_read(db: sqlite_utils.Database, reader: User, now: dt.datetime | None = None) -> int:
    """Undo the reader's last read within the undo window; return the image id, held again by them.

    The read stays in the table; a new 'undo' event supersedes it. Refused once the image has
    been adjudicated or the window has passed.
    """
    require(reader, "read.submit")
    t = _now(now)
    window = dt.timedelta(seconds=int(settings.get(db, "undo_seconds")))
    lease = dt.timedelta(seconds=int(settings.get(db, "lease_seconds")))
    with transaction(db) as conn:
        last = conn.execute("SELECT r.id, r.image_id, r.submitted_at FROM reads r WHERE r.reader_id = ? AND r.kind = 'read' "
                            "AND NOT EXISTS (SELECT 1 FROM reads u WHERE u.supersedes = r.id) ORDER BY r.id DESC LIMIT 1",
                            (reader.id,)).fetchone()
        if last is None:
            raise QueueError("there is no read of yours to undo")
        read_id, image_id, submitted = last
        if t - dt.datetime.fromisoformat(submitted) > window:
            raise QueueError(f"reads can be undone for {int(window.total_seconds())} seconds only")
        if conn.execute("SELECT 1 FROM adjudications WHERE image_id = ?", (image_id,)).fetchone():
            raise QueueError("this image has been adjudicated; its reads can no longer be undone")
        conn.execute("INSERT INTO reads (image_id, reader_id, kind, supersedes, submitted_at) VALUES (?, ?, 'undo', ?, ?)",
                     (image_id, reader.id, read_id, _ts(t)))
        slot = conn.execute("SELECT slot FROM read_slots WHERE read_id = ?", (read_id,)).fetchone()
        if slot:
            conn.execute("UPDATE read_slots SET read_id = NULL, reader_id = ?, lease_expires = ? WHERE image_id = ? "
                         "AND slot = ?", (reader.id, _ts(t + lease), image_id, slot[0]))
            conn.execute("UPDATE read_slots SET reserved_for = NULL, available_at = NULL WHERE image_id = ? AND slot > ? "
                         "AND read_id IS NULL AND reserved_for = ?", (image_id, slot[0], reader.id))
        audit(conn, reader.name, "read.undone", "image", image_id, read_id=read_id)
    return image_id


def reader_progress(db: sqlite_utils.Database, reader: User) -> dict[str, int]:
    """Return how many reads the reader has done and how many slots remain open to them."""
    done = db.execute("SELECT count(*) FROM reads r WHERE r.reader_id = ? AND r.kind = 'read' AND NOT EXISTS "
                      "(SELECT 1 FROM reads u WHERE u.supersedes = r.id)", [reader.id]).fetchone()[0]
    intra = settings.get(db, "read_mode") == "intra"
    if intra:
        remaining = db.execute("SELECT count(*) FROM read_slots WHERE read_id IS NULL AND (slot = 1 OR reserved_for = ?)",
                               [reader.id]).fetchone()[0]
    else:
        remaining = db.execute("SELECT count(DISTINCT s.image_id) FROM read_slots s WHERE s.read_id IS NULL AND NOT EXISTS "
                               "(SELECT 1 FROM read_slots o WHERE o.image_id = s.image_id AND o.reader_id = ? AND "
                               "o.read_id IS NOT NULL)", [reader.id]).fetchone()[0]
    return {"done": done, "remaining": remaining}
