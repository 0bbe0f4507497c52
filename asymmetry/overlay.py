"""Landmark overlay for adjudicators and coordinators: the 68 points, the eye line, the midline.

The lines are the frame the indices are measured in (asymmetry.indices.face_frame), so what the
reader sees is what was measured. Points corrected by hand are drawn with dlib's original beside
them (an orange ring joined to the corrected point).
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from asymmetry.indices import face_frame

POINT_COLOUR = (80, 255, 80)
EYE_LINE_COLOUR = PUPIL_LINE_COLOUR = (0, 210, 255)
MIDLINE_COLOUR = (255, 60, 200)
HALO = (0, 0, 0)
AUTO_COLOUR = (255, 150, 0)  # dlib's own point where a hand correction moved it


def _scaled_copy(rgb, max_side: int) -> tuple[Image.Image, float]:
    """Return an RGB copy of `rgb` (array or PIL image) at most `max_side` on its longer side, and
    the factor its coordinates were multiplied by."""
    if isinstance(rgb, Image.Image):
        img = rgb.convert("RGB")
    else:
        img = Image.fromarray(np.asarray(rgb, np.uint8)).convert("RGB")
    k = min(1.0, max_side / max(img.size)) if max_side else 1.0
    if k < 1.0:
        img = img.resize((max(1, round(img.width * k)), max(1, round(img.height * k))), Image.Resampling.LANCZOS)
    return img, k


def _line(draw: ImageDraw.ImageDraw, a, b, colour, width: int) -> None:
    """Draw a line with a dark halo, readable on light and dark skin and backgrounds alike."""
    draw.line([tuple(a), tuple(b)], fill=HALO, width=width + 2)
    draw.line([tuple(a), tuple(b)], fill=colour, width=width)


def draw_overlay(rgb, points, max_side: int = 1024, mirrored: bool | None = None, auto_points=None) -> Image.Image:
    """Return a PIL image of `rgb` (downscaled to `max_side`) with the landmarks drawn on it.

    `points`: (68, 2) full-resolution pixels of `rgb`. Draws every finite point, the eye line
    through the eye centres (cyan) and the facial midline, its perpendicular at their midpoint
    (magenta). With `mirrored` given, the patient's L and R are written at the ends of the eye line.
    `auto_points`: dlib's own points of an image corrected by hand; each point that differs is drawn
    as an orange ring joined to its corrected place. Missing points are skipped, lines need the
    frame, and anything but (68, 2) points leaves the photo plain; never an exception.
    """
    img, k = _scaled_copy(rgb, max_side)
    draw = ImageDraw.Draw(img)
    pts = np.asarray(points, dtype=np.float64) * k if points is not None else np.empty((0, 2))
    if pts.shape != (68, 2):
        return img
    frame = face_frame(pts)
    unit = frame.ipd if frame is not None else max(img.size) / 10
    width = max(2, round(unit / 45))
    if frame is not None:
        along_v = (pts[np.isfinite(pts).all(axis=1)] - frame.origin) @ frame.v
        top, bottom = along_v.min() - 0.35 * frame.ipd, along_v.max() + 0.25 * frame.ipd
        _line(draw, frame.origin + top * frame.v, frame.origin + bottom * frame.v, MIDLINE_COLOUR, width)
        # Through the midpoint of the eye centres along u (the roll also weighs the face outline).
        ends = (frame.origin - 1.25 * frame.ipd * frame.u, frame.origin + 1.25 * frame.ipd * frame.u)
        _line(draw, *ends, PUPIL_LINE_COLOUR, width)
        if mirrored is not None:
            _side_labels(draw, frame, ends, mirrored)
    r = max(2.0, unit / 35)
    auto = np.asarray(auto_points, dtype=np.float64) * k if auto_points is not None else None
    if auto is not None and auto.shape == (68, 2):
        moved = np.isfinite(auto).all(axis=1) & np.isfinite(pts).all(axis=1) & (np.hypot(*(auto - pts).T) > 0.5)
        for (ax, ay), (x, y) in zip(auto[moved], pts[moved]):
            _line(draw, (ax, ay), (x, y), AUTO_COLOUR, max(1, width // 2))
            draw.ellipse([ax - r, ay - r, ax + r, ay + r], outline=AUTO_COLOUR, width=max(2, round(r / 2)))
    for x, y in pts[np.isfinite(pts).all(axis=1)]:
        draw.ellipse([x - r, y - r, x + r, y + r], fill=POINT_COLOUR, outline=HALO, width=max(1, round(r / 3)))
    if frame is not None:
        for x, y in frame.eyes:
            c = 1.6 * r
            _line(draw, (x - c, y), (x + c, y), PUPIL_LINE_COLOUR, width)
            _line(draw, (x, y - c), (x, y + c), PUPIL_LINE_COLOUR, width)
    return img


def _side_labels(draw: ImageDraw.ImageDraw, frame, ends, mirrored: bool) -> None:
    """Write the patient's sides beside the ends of the eye line (image left end first)."""
    font = ImageFont.load_default(size=max(12, round(frame.ipd * 0.22)))
    labels = ("patient L", "patient R") if mirrored else ("patient R", "patient L")
    for end, label, outward in zip(ends, labels, (-1.0, 1.0)):
        anchor = "rm" if outward < 0 else "lm"
        pos = tuple(end + outward * 0.08 * frame.ipd * frame.u)
        draw.text(pos, label, fill=PUPIL_LINE_COLOUR, font=font, anchor=anchor,
                  stroke_width=max(1, round(frame.ipd / 60)), stroke_fill=HALO)
