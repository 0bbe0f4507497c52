"""What each role may see of an image. A reader sees only the image they hold, and of it only
what grading needs: never a label, a read, a measurement or a subject code."""
from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils

from labeling.permissions import PermissionDenied, require
from labeling.users import User


@dataclass(frozen=True)
class ReaderView:
    """The image a reader is grading: where its pixels are, its movement and orientation."""

    image_id: int
    movement: str
    mirrored: bool
    stored_path: str
    synthetic: bool


def image_for_reader(db: sqlite_utils.Database, reader: User, image_id: int) -> ReaderView:
    """Return the reader's view of `image_id`; refused unless the reader holds an open slot of it."""
    require(reader, "read.submit")
    row = db.execute("SELECT i.movement, i.mirrored, i.stored_path, i.synthetic FROM images i JOIN read_slots s "
                     "ON s.image_id = i.id WHERE i.id = ? AND s.reader_id = ? AND s.read_id IS NULL LIMIT 1",
                     [image_id, reader.id]).fetchone()
    if row is None:
        raise PermissionDenied(f"{reader.name} does not hold image {image_id}")
    return ReaderView(image_id, row[0], bool(row[1]), row[2], bool(row[3]))
