"""Face crops for the trainer: driven by the landmarks, widened per movement, square.

Paper §2.3.4: crops keep "all parts of the muscle for a specific movement", so each movement
widens the box towards the muscles it uses (forehead for raised brows, chin for the mouth
movements). The export and `python -m model predict` both call `crop_box`/`crop_for_model`, so a
photo is cropped the same way for training and for prediction.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from asymmetry.imaging import decode_image
from asymmetry.landmarks import PREDICT_SIDE, landmarks_from_decoded

# Margins around the landmark box, in inter-pupil distances: (top, bottom, sides).
MARGINS = {
    "MV0": (0.9, 0.25, 0.25),  # at rest: all facial muscles
    "MV1": (0.9, 0.15, 0.25),  # eyes closed: orbicularis oculi
    "MV2": (1.3, 0.15, 0.25),  # brows raised: frontalis, up the forehead
    "MV3": (0.8, 0.25, 0.35),  # cheeks puffed: buccinator, zygomatic; the cheeks bulge out
    "MV4": (0.7, 0.35, 0.30),  # grin: orbicularis oris, zygomatic pull
    "MV5": (0.8, 0.20, 0.25),  # nose wrinkled: nasalis
    "MV6": (0.7, 0.35, 0.25),  # whistle: orbicularis oris
}
CROP_SIZE = 299


def crop_box(points: np.ndarray, movement: str | None, image_size: tuple[int, int]) -> tuple[float, float, float, float]:
    """Return the square crop box (x0, y0, x1, y1) in the points' pixels for `movement`.

    The box is kept inside the image where the image is large enough; otherwise it is centred and
    `crop_image` pads the outside with black.
    """
    top, bottom, side = MARGINS.get(movement or "MV0", MARGINS["MV0"])
    ipd = float(np.linalg.norm(points[36:42].mean(0) - points[42:48].mean(0)))
    x0, y0 = points[:27].min(0)
    x1, y1 = points[:27].max(0)
    x0, x1 = x0 - side * ipd, x1 + side * ipd
    y0, y1 = y0 - top * ipd, y1 + bottom * ipd
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) / 2
    w, h = image_size
    if 2 * half <= w:
        cx = min(max(cx, half), w - half)
    if 2 * half <= h:
        cy = min(max(cy, half), h - half)
    return (cx - half, cy - half, cx + half, cy + half)


def crop_image(rgb: np.ndarray, box, size: int = CROP_SIZE, scale: float = 1.0) -> np.ndarray:
    """Return the `box` (full-resolution pixels; `rgb` is `scale` times that) as size x size x 3 uint8."""
    x0, y0, x1, y1 = (v * scale for v in box)
    img = Image.fromarray(rgb)
    out = img.transform((size, size), Image.Transform.EXTENT, (x0, y0, x1, y1), Image.Resampling.BILINEAR,
                        fillcolor=(0, 0, 0))
    return np.asarray(out)


def crop_for_model(src: str | Path | bytes | np.ndarray, movement: str | None = None, size: int = CROP_SIZE,
                   box: tuple[float, float, float, float] | None = None, pick_best: bool = True,
                   mirrored: bool = False) -> tuple[np.ndarray | None, str]:
    """Return (crop, status): the model's input crop of a photo, or (None, why it could not be made).

    `box` (full-resolution pixels) overrides the landmark box, e.g. a coordinator's correction.
    A `mirrored` (front-camera) photo is flipped, so every crop shows the patient as a normal
    camera does — the patient's left on the image's right — and one label convention holds.
    """
    if isinstance(src, np.ndarray):
        from asymmetry.imaging import Decoded

        decoded = Decoded("ok", rgb=np.ascontiguousarray(src[..., :3], dtype=np.uint8), size=(src.shape[1], src.shape[0]))
    else:
        decoded = decode_image(src, max_side=PREDICT_SIDE, draft_only=True)
    if not decoded.ok:
        return None, decoded.status
    if box is None:
        lm = landmarks_from_decoded(decoded, pick_best=pick_best)
        if not lm.ok:
            return None, lm.status
        box = crop_box(lm.points, movement, decoded.size)
    crop = crop_image(decoded.rgb, box, size, decoded.scale)
    return (np.ascontiguousarray(crop[:, ::-1]) if mirrored else crop), "ok"
