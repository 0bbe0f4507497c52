"""What each role may see of an image. A reader sees only the image they hold, and of it only
what grading needs: never a label, a read, a measurement or a subject code."""
from __future__ import annotations

from dataclasses import dataclass

from db.access import Database
from labeling.accounts.actors import User
from labeling.accounts.permissions import PermissionDenied, require


@dataclass(frozen=True)
class ReaderView:
    """The image a reader is grading: where its pixels are, its movement and orientation, and
    whether to show it flipped (a mirror quality-control item, shown like any other image)."""

    image_id: int
    movement: str
    mirrored: bool
    stored_path: str
    synthetic: bool
    flipped: bool = False


def image_for_reader(db: Database, reader: User, image_id: int) -> ReaderView:
    """Return the reader's view of `image_id`; refused unless the reader holds an open slot of it."""
    require(reader, "read.submit")
    row = db.execute("SELECT i.movement, i.mirrored, i.stored_path, i.synthetic FROM images i JOIN read_slots s "
                     "ON s.image_id = i.id WHERE i.id = ? AND s.reader_id = ? AND s.read_id IS NULL LIMIT 1",
                     [image_id, reader.id]).fetchone()
    if row is None:
        raise PermissionDenied(f"{reader.name} does not hold image {image_id}")
    return ReaderView(image_id, row[0], bool(row[1]), row[2], bool(row[3]))


def view_for_claim(db: Database, reader: User, claim) -> ReaderView:
    """Return the reader's view of what they hold (a read slot's image, or a quality-control
    item's image, flipped for a mirror item); refused unless they hold it."""
    if claim.qc_id is None:
        return image_for_reader(db, reader, claim.image_id)
    require(reader, "read.submit")
    row = db.execute("SELECT i.movement, i.mirrored, i.stored_path, i.synthetic FROM qc_items q JOIN images i "
                     "ON i.id = q.image_id WHERE q.id = ? AND q.reader_id = ?", [claim.qc_id, reader.id]).fetchone()
    if row is None:
        raise PermissionDenied(f"{reader.name} does not hold that image")
    return ReaderView(claim.image_id, row[0], bool(row[1]), row[2], bool(row[3]), flipped=claim.flipped)
