"""What changing reads per image or the read mode does to the open read slots: said beforehand
(`preview_*`) and done inside the settings change's transaction (`apply_*`). The settings module
calls these with the values in force; nothing here reads a setting itself."""
from __future__ import annotations

import datetime as dt
import sqlite3

from db.access import Database

__all__ = ["apply_read_mode", "apply_reads_required", "preview_read_mode", "preview_reads_required"]

# Images whose check 1 is not complete: fewer effective reads than they need, not adjudicated.
_OPEN_IMAGES = """SELECT i.id, i.reads_required, coalesce(s.n, 0) FROM images i
    LEFT JOIN image_read_summary s ON s.image_id = i.id
    WHERE coalesce(s.n, 0) < i.reads_required
      AND NOT EXISTS (SELECT 1 FROM effective_adjudications a WHERE a.image_id = i.id)"""


def preview_reads_required(db: Database, k: int) -> str:
    """Say what setting reads per image to `k` would do (nothing changes)."""
    rows = db.execute(_OPEN_IMAGES).fetchall()
    changing = [r for r in rows if r[1] != k]
    started = sum(1 for r in changing if r[2] > 0)
    reaching = sum(1 for r in changing if r[2] >= k)
    total = db.execute("SELECT count(*) FROM images").fetchone()[0]
    kept = total - len(rows)
    parts = [f"{len(changing)} image(s) not yet through check 1 will need {k} reads"
             + (f" ({started} of them already have a read)" if started else "")]
    if reaching:
        parts.append(f"{reaching} of them already have {k} or more reads and complete check 1 at once")
    parts.append(f"{kept} image(s) whose check 1 is complete (or adjudicated) keep their reads and their state")
    return "Reads per image → " + str(k) + ": " + "; ".join(parts) + "."


def apply_reads_required(conn: sqlite3.Connection, k: int, intra: bool, washout_hours: float) -> dict[str, int]:
    """Inside the settings change's transaction: give every image whose check 1 is not complete a
    requirement of `k` reads and exactly the open slots it still needs (`intra`: the read mode in
    force, whose washout is `washout_hours`); return counts."""
    rows = conn.execute(_OPEN_IMAGES).fetchall()
    total = conn.execute("SELECT count(*) FROM images").fetchone()[0]
    changed = [(image_id, n) for image_id, required, n in rows if required != k]
    for image_id, n in changed:
        conn.execute("UPDATE images SET reads_required = ? WHERE id = ?", (k, image_id))
        need = max(0, k - n)
        open_slots = [r[0] for r in conn.execute("SELECT slot FROM read_slots WHERE image_id = ? AND read_id IS NULL "
                                                 "ORDER BY slot", (image_id,))]
        if len(open_slots) > need:  # the highest open slots go; a holder's read of one is refused
            conn.executemany("DELETE FROM read_slots WHERE image_id = ? AND slot = ?",
                             [(image_id, s) for s in open_slots[need:]])
        else:
            top = conn.execute("SELECT coalesce(max(slot), 0) FROM read_slots WHERE image_id = ?", (image_id,)).fetchone()[0]
            conn.executemany("INSERT INTO read_slots (image_id, slot) VALUES (?, ?)",
                             [(image_id, top + i) for i in range(1, need - len(open_slots) + 1)])
    if intra:
        _reserve_for_last_reader(conn, [image_id for image_id, _ in changed], washout_hours)
    return {"images_changed": len(changed), "images_kept": total - len(rows)}


def preview_read_mode(db: Database, mode: str, hours: float) -> str:
    """Say what switching the read mode to `mode` (washout `hours`) would do (nothing changes)."""
    started = sum(1 for r in db.execute(_OPEN_IMAGES).fetchall() if r[2] > 0)
    if mode == "intra":
        return (f"Read mode → intra: every image not yet read is read twice by the same neurologist, the second time "
                f"after the {hours}-hour washout; the {started} image(s) with some reads but not all wait for their "
                "last reader's next read after the washout. Finished images are not touched.")
    return (f"Read mode → inter: every open read goes to a neurologist who has not read that image; the {started} "
            "image(s) with some reads but not all are open to any other reader now. Finished images are not touched.")


def apply_read_mode(conn: sqlite3.Connection, mode: str, washout_hours: float) -> dict[str, int]:
    """Inside the settings change's transaction: re-plan the open slots for `mode`; return counts."""
    if mode == "inter":
        n = conn.execute("UPDATE read_slots SET reserved_for = NULL, available_at = NULL WHERE read_id IS NULL "
                         "AND reserved_for IS NOT NULL").rowcount
        return {"slots_replanned": n}
    started = [r[0] for r in conn.execute(_OPEN_IMAGES).fetchall() if r[2] > 0]
    return {"slots_replanned": _reserve_for_last_reader(conn, started, washout_hours)}


def _reserve_for_last_reader(conn: sqlite3.Connection, image_ids: list[int], washout_hours: float) -> int:
    """intra mode: reserve the lowest open slot of each image for the reader of its latest read,
    after the washout (the queue then serves it as it serves a second read)."""
    washout = dt.timedelta(hours=float(washout_hours))
    n = 0
    for image_id in image_ids:
        last = conn.execute("SELECT reader_id, submitted_at FROM effective_reads WHERE image_id = ? ORDER BY id DESC "
                            "LIMIT 1", (image_id,)).fetchone()
        if last is None:
            continue
        n += conn.execute("UPDATE read_slots SET reserved_for = ?, available_at = ? WHERE image_id = ? AND read_id IS NULL "
                          "AND slot = (SELECT min(slot) FROM read_slots WHERE image_id = ? AND read_id IS NULL)",
                          (last[0], (dt.datetime.fromisoformat(last[1]) + washout).isoformat(timespec="milliseconds"), image_id, image_id)).rowcount
    return n
