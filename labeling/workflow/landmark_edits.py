"""Landmarks corrected by hand: a coordinator or adjudicator moves any of an image's 68 points.

dlib errs more on palsied faces than on healthy ones, and an index is only as good as its points.
A correction is an append-only event (`landmark_corrections`: who, when, the 68 points after and
before, which moved, why); the image's current measurement then holds the corrected points and the
indices computed from them, with dlib's own points kept beside them (`auto_points`). Check 2, the
adjudicator's evidence and the export crop all read that measurement, so they use the corrected
points; check 2 runs again on the image at once (an older check-2 result no longer counts, see
labeling/workflow/states.py). A later landmark model keeps the correction (asymmetry/measure.py).
"""
from __future__ import annotations

import datetime as dt

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from asymmetry.indices import INDEX_VERSION, compute_indices
from asymmetry.measure import LANDMARK_VERSION
from db.access import Database, audit, now, transaction
from labeling.accounts.actors import SystemActor, User
from labeling.accounts.permissions import authorize, require
from labeling.vocabulary import MAX_REASON
from labeling.workflow.measuring import index_values, points_json

# A point counts as moved when it moved at least this far (pixels of the original photo).
MOVED_PX = 0.01


class LandmarkEditError(ValueError):
    """A correction cannot be stored; the message says why in one line."""


@dataclass(frozen=True)
class LandmarkState:
    """An image's landmarks as the workflow uses them.

    `points`: the current 68 points (full-resolution pixels of the stored photo, EXIF applied), the
    corrected ones when corrected, else dlib's; `auto_points`: dlib's own points; `corrections`:
    every correction, oldest first (id, actor, at, moved, reason); `indices`: the current indices
    (dict, as stored); `status`: the measurement's status, None before the image is measured.
    """

    image_id: int
    stored_path: str
    mirrored: bool
    movement: str
    size: tuple[int, int]
    status: str | None
    message: str
    points: np.ndarray | None
    auto_points: np.ndarray | None
    indices: dict | None
    corrections: list[dict] = field(default_factory=list)

    @property
    def corrected(self) -> bool:
        return bool(self.corrections)


@dataclass(frozen=True)
class CorrectionResult:
    """What `correct_landmarks` stored: the correction's id, the points moved, the indices before
    and after (dicts), and the check-2 counts of the re-run on this image."""

    correction_id: int
    moved: list[int]
    before: dict
    after: dict
    check2: dict


def _current_row(db: Database, image_id: int) -> dict | None:
    """The image's current measurements row (id, status, message, points, auto_points, indices), or None."""
    return next(iter(db.query("SELECT id, status, message, points, auto_points, indices FROM measurements "
                              "WHERE image_id = ? AND landmark_version = ? AND index_version = ?",
                              [image_id, LANDMARK_VERSION, INDEX_VERSION])), None)


def _points(text: str | None) -> np.ndarray | None:
    return None if text is None else np.asarray(json.loads(text), dtype=np.float64)


def landmark_state(db: Database, image_id: int) -> LandmarkState:
    """Return the image's current landmarks, dlib's, its corrections and indices."""
    img = next(iter(db.query("SELECT stored_path, mirrored, movement, width, height FROM images WHERE id = ?",
                             [image_id])), None)
    if img is None:
        raise LandmarkEditError(f"no image {image_id}")
    row = _current_row(db, image_id)
    corrections = [{**r, "moved": json.loads(r["moved"])} for r in db.query(
        "SELECT id, actor, at, moved, reason FROM landmark_corrections WHERE image_id = ? ORDER BY id", [image_id])]
    points = _points(row["points"]) if row else None
    auto = _points(row["auto_points"]) if row and row["auto_points"] is not None else points
    return LandmarkState(image_id, img["stored_path"], bool(img["mirrored"]), img["movement"],
                         (img["width"], img["height"]), row["status"] if row else None,
                         row["message"] if row else "not measured yet", points, auto,
                         json.loads(row["indices"]) if row and row["indices"] else None, corrections)


def _validate(points, size: tuple[int, int]) -> np.ndarray:
    try:
        pts = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise LandmarkEditError("the landmarks must be 68 (x, y) pairs of numbers") from None
    if pts.shape != (68, 2):
        raise LandmarkEditError(f"the landmarks must be 68 (x, y) pairs, got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise LandmarkEditError("the landmarks contain a missing or infinite coordinate")
    w, h = size
    outside = [int(k) for k in np.flatnonzero((pts[:, 0] < -0.5) | (pts[:, 0] > w - 0.5) |
                                              (pts[:, 1] < -0.5) | (pts[:, 1] > h - 0.5))]
    if outside:
        raise LandmarkEditError(f"point(s) {', '.join(map(str, outside))} lie outside the {w}x{h} photo")
    return pts


def _after_last_check2(conn, image_id: int) -> str:
    """The time to stamp a correction with: now, or a millisecond after the image's latest check-2
    result when that is not earlier (a result stands while check2_at >= corrected_at, so a correction
    made in the same millisecond as the result must still make it stale)."""
    t = now()
    last = conn.execute("SELECT max(at) FROM check2_results WHERE image_id = ?", [image_id]).fetchone()[0]
    if last and last >= t:
        t = (dt.datetime.fromisoformat(last) + dt.timedelta(milliseconds=1)).isoformat(timespec="milliseconds")
    return t


def correct_landmarks(db: Database, user: User, image_id: int, points, reason: str = "",
                      ) -> CorrectionResult:
    """Store a hand correction of image `image_id`'s 68 landmarks and use it from now on.

    `points`: all 68 (x, y) in full-resolution pixels of the stored photo. The image must have a
    current measurement with landmarks (dlib found the face). Refused with LandmarkEditError when a
    point lies outside the photo or nothing moved; PermissionDenied unless `user` is a coordinator or
    adjudicator. Check 2 runs again on the image with the corrected indices.
    """
    require(user, "landmarks.correct")
    reason = (reason or "").strip()[:MAX_REASON]
    with transaction(db) as conn:
        who = authorize(conn, user, "landmarks.correct")  # roles and active flag as they stand now
        state = landmark_state(db, image_id)
        if state.points is None:
            raise LandmarkEditError(f"image {image_id} has no landmarks to correct ({state.status or 'not measured yet'}"
                                    f"{': ' + state.message if state.message and state.status else ''})")
        new = _validate(points, state.size)
        moved = [int(k) for k in np.flatnonzero(np.hypot(*(new - state.points).T) >= MOVED_PX)]
        if not moved:
            raise LandmarkEditError("no point was moved; nothing to store")
        row = _current_row(db, image_id)
        new_text = points_json(new)
        correction_id = conn.execute(
            "INSERT INTO landmark_corrections (image_id, points, previous, moved, reason, actor, at) "
            "VALUES (?,?,?,?,?,?,?)",
            (image_id, new_text, points_json(state.points), json.dumps(moved), reason, who,
             _after_last_check2(conn, image_id))).lastrowid
        idx = compute_indices(np.asarray(json.loads(new_text)), state.mirrored)
        conn.execute("UPDATE measurements SET status = :status, message = :message, points = :points, "
                     "indices = :indices, rgas = :rgas, anas = :anas, rgas_signed = :rgas_signed, "
                     "anas_signed = :anas_signed, side = :side, ipd_px = :ipd_px, correction_id = :correction_id, "
                     "auto_points = coalesce(auto_points, :auto_points) WHERE id = :id",
                     {"status": "ok" if idx.ok else "degenerate",
                      "message": f"landmarks corrected by hand (correction {correction_id})"
                                 + ("" if idx.ok else f"; {idx.message}"),
                      "points": new_text, **index_values(idx), "correction_id": correction_id,
                      "auto_points": row["points"], "id": row["id"]})
        audit(conn, who, "landmarks.corrected", "image", image_id, correction=correction_id, moved=moved,
              reason=reason, rgas_signed=[_num(state.indices, "rgas_signed"), _num(idx.to_dict(), "rgas_signed")],
              anas_signed=[_num(state.indices, "anas_signed"), _num(idx.to_dict(), "anas_signed")])
    from labeling.workflow.states import run_check2

    # Check 2 again on the new numbers: the system's consequence of the correction (an adjudicator
    # may correct points but does not run check 2 as such).
    check2 = run_check2(db, SystemActor(f"system:landmark correction ({who})"), [image_id])
    return CorrectionResult(int(correction_id), moved, state.indices or {}, idx.to_dict(), check2)


def _num(d: dict | None, key: str) -> float | None:
    v = (d or {}).get(key)
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else round(float(v), 6)


def corrected_images(db: Database) -> pd.DataFrame:
    """Return one row per image whose landmarks were corrected by hand: image_id, corrections (how
    many), moved (every point number any of them moved), last_actor, last_at, in_use (whether the
    current measurement holds the latest correction)."""
    cols = ["image_id", "corrections", "moved", "last_actor", "last_at", "in_use"]
    rows = db.query(
        "WITH g AS (SELECT image_id, count(*) AS n, group_concat(moved, ';') AS moved, max(id) AS last "
        "FROM landmark_corrections GROUP BY image_id) "
        "SELECT g.image_id, g.n, g.moved, g.last, d.actor, d.at, "
        "(SELECT m.correction_id FROM measurements m WHERE m.image_id = g.image_id AND m.landmark_version = ? "
        " AND m.index_version = ?) AS in_use_id FROM g JOIN landmark_corrections d ON d.id = g.last "
        "ORDER BY g.image_id", [LANDMARK_VERSION, INDEX_VERSION])
    out = [{"image_id": r["image_id"], "corrections": r["n"],
            "moved": sorted({k for part in r["moved"].split(";") for k in json.loads(part)}),
            "last_actor": r["actor"], "last_at": r["at"], "in_use": r["in_use_id"] == r["last"]} for r in rows]
    return pd.DataFrame(out, columns=cols)
