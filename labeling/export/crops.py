"""Crops for the export and the trainer: the box each image is cropped with (a coordinator's
correction, else the landmarks), corrections (audited), the crop's pixels as PNG, previews and the
images worth reviewing."""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sqlite_utils
from PIL import Image, ImageDraw

from asymmetry.crop import CROP_SIZE, crop_box, crop_for_model
from asymmetry.imaging import decode_image
from db.access import audit, now, transaction
from labeling.vocabulary import MAX_REASON
from labeling.accounts.actors import Actor
from labeling.accounts.permissions import authorize, require
from labeling.workflow.states import final_labels
from labeling.export.errors import ExportError

PNG_COMPRESS_LEVEL = 1  # lossless either way, and deterministic: the same crop gives the same bytes
MIN_BOX_PX = 32


@dataclass(frozen=True)
class CropBox:
    """The box an image is cropped with (full-resolution pixels of the stored photo, EXIF
    orientation applied), where it comes from ("correction" or "landmarks"), or why there is none."""

    box: tuple[float, float, float, float] | None
    source: str
    reason: str = ""


# ---- crops and their corrections ---------------------------------------------------------------


def effective_crop_box(db: sqlite_utils.Database, image_id: int) -> CropBox:
    """Return the image's crop box: the latest coordinator correction, else the landmark box for its movement."""
    row = db.execute("SELECT x0, y0, x1, y1 FROM crop_corrections WHERE image_id = ? ORDER BY id DESC LIMIT 1",
                     [image_id]).fetchone()
    if row:
        return CropBox(tuple(float(v) for v in row), "correction")
    img = db.execute("SELECT movement, width, height FROM images WHERE id = ?", [image_id]).fetchone()
    if img is None:
        return CropBox(None, "none", f"no image {image_id}")
    # Same rule as asymmetry.measure.effective_flags: the latest successful measurement.
    m = db.execute("SELECT points FROM measurements WHERE image_id = ? AND status = 'ok' AND points IS NOT NULL "
                   "ORDER BY id DESC LIMIT 1", [image_id]).fetchone()
    if m is None:
        last = db.execute("SELECT status FROM measurements WHERE image_id = ? ORDER BY id DESC LIMIT 1",
                          [image_id]).fetchone()
        return CropBox(None, "none", "not measured yet" if last is None else f"no usable landmarks ({last[0]})")
    pts = np.asarray(json.loads(m[0]), dtype=np.float64)
    return CropBox(tuple(round(float(v), 2) for v in crop_box(pts, img[0], (img[1], img[2]))), "landmarks")


def correct_crop(db: sqlite_utils.Database, user: Actor, image_id: int, box, reason: str
                 ) -> tuple[float, float, float, float]:
    """Store a coordinator's crop box for an image (append-only, the latest wins); return the stored box.

    `box` is (x0, y0, x1, y1) in full-resolution pixels of the stored photo. A box that is not
    square is widened about its centre to the longer side, since crops are square.
    """
    require(user, "export")
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ExportError("a crop box is four numbers: x0, y0, x1, y1 (pixels of the original photo)") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 <= x0 or y1 <= y0:
        raise ExportError("a crop box needs x1 > x0 and y1 > y0 (pixels of the original photo)")
    reason = (reason or "").strip()
    if not reason:
        raise ExportError("say why the crop is corrected (the reason is kept with the correction)")
    img = db.execute("SELECT width, height FROM images WHERE id = ?", [image_id]).fetchone()
    if img is None:
        raise ExportError(f"no image {image_id}")
    w, h = img
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) / 2
    if 2 * half < MIN_BOX_PX:
        raise ExportError(f"a crop box needs at least {MIN_BOX_PX} pixels on its side")
    if not (0 <= cx <= w and 0 <= cy <= h) or 2 * half > 2 * max(w, h):
        raise ExportError(f"the box must be centred inside the {w}x{h} photo and at most twice its size")
    stored = tuple(round(v, 2) for v in (cx - half, cy - half, cx + half, cy + half))
    with transaction(db) as conn:
        who = authorize(conn, user, "export")
        conn.execute("INSERT INTO crop_corrections (image_id, x0, y0, x1, y1, reason, actor, at) VALUES (?,?,?,?,?,?,?,?)",
                     (image_id, *stored, reason[:MAX_REASON], who, now()))
        audit(conn, who, "crop.corrected", "image", image_id, box=stored, reason=reason[:MAX_REASON])
    return stored


def crop_pixels(path: str | Path, movement: str, box, mirrored: bool) -> tuple[np.ndarray | None, str]:
    """Return (299x299x3 uint8 crop, "ok") of a stored photo as exported, or (None, why not).

    Mirrored (front-camera) photos are flipped, so every exported crop shows the patient as a
    normal camera does: the patient's left on the image's right. The class labels are the
    patient's sides, so after this one convention holds for every image of the export.
    """
    return crop_for_model(str(path), movement, CROP_SIZE, box=tuple(box), mirrored=mirrored)


def _encode_png(rgb: np.ndarray) -> bytes:
    """Return `rgb` as PNG bytes with no metadata chunk (no EXIF, text, time or ICC profile)."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def crop_job(job: tuple[int, str, str, tuple, bool]) -> tuple[int, bytes | None, str]:
    """Crop and encode one image (runs in a worker process); return (row, PNG bytes or None, status)."""
    row, path, movement, box, mirrored = job
    crop, status = crop_pixels(path, movement, box, mirrored)
    return row, None if crop is None else _encode_png(crop), status


@dataclass(frozen=True)
class CropPreview:
    """A crop as the export would write it, the full photo with the box drawn, and the box used."""

    crop: np.ndarray | None
    overlay: np.ndarray | None
    box: CropBox
    size: tuple[int, int]
    message: str = ""
    mirrored: bool = False


def crop_preview(db: sqlite_utils.Database, store: Path, image_id: int, box=None, overlay_side: int = 480) -> CropPreview:
    """Return the crop of one image as exported (with `box` instead of the stored one when given)."""
    img = db.execute("SELECT movement, stored_path, mirrored, width, height FROM images WHERE id = ?",
                     [image_id]).fetchone()
    if img is None:
        return CropPreview(None, None, CropBox(None, "none", f"no image {image_id}"), (0, 0), f"no image {image_id}")
    movement, stored, mirrored, w, h = img
    cb = CropBox(tuple(float(v) for v in box), "proposed") if box is not None else effective_crop_box(db, image_id)
    decoded = decode_image(Path(store) / stored, max_side=overlay_side)
    if not decoded.ok:
        return CropPreview(None, None, cb, (w, h), f"the photo cannot be decoded: {decoded.message}", bool(mirrored))
    pil = Image.fromarray(decoded.rgb)
    if cb.box is not None:
        ImageDraw.Draw(pil).rectangle([v * decoded.scale for v in cb.box], outline=(255, 200, 0), width=3)
    overlay = np.asarray(pil)
    if cb.box is None:
        return CropPreview(None, overlay, cb, (w, h), cb.reason, bool(mirrored))
    crop, status = crop_pixels(Path(store) / stored, movement, cb.box, bool(mirrored))
    return CropPreview(crop, overlay, cb, (w, h), "" if crop is not None else status, bool(mirrored))


def review_candidates(db: sqlite_utils.Database) -> pd.DataFrame:
    """Return the images with a final label (image_id, movement, label, crop source) for crop review."""
    fl = final_labels(db)
    movement = dict(db.execute("SELECT id, movement FROM images").fetchall())
    rows = []
    for r in fl.sort_values("image_id").itertuples():
        cb = effective_crop_box(db, int(r.image_id))
        rows.append({"image_id": int(r.image_id), "movement": movement[int(r.image_id)], "label": r.final_label,
                     "crop": cb.source if cb.box is not None else cb.reason})
    return pd.DataFrame(rows, columns=["image_id", "movement", "label", "crop"])
