"""Automatic quality flags of a face photo: `blurry` and `distant` (paper §2.3.4).

Flagged images still get read and measured; the export sends them to the training split only.
The flags are a first guess a coordinator can override. Thresholds and how they were calibrated
are in docs/asymmetry.md.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image
from scipy import ndimage

from asymmetry.imaging import Decoded
from asymmetry.landmarks import Landmarks

# The face crop is resized to this many pixels square before the Laplacian, so the sharpness of a
# face does not depend on the photo's resolution (within ~2% from 90 to 870 px faces).
SHARPNESS_SIDE = 128
# Variance of the Laplacian (8-bit gray levels) below which a face counts as blurry. Calibrated on
# skimage's astronaut (docs/asymmetry.md): the sharp face scores 214-307 (depending on the box dlib
# draws); Gaussian blur of sigma 2 / 2.5 / 3 px on a ~300 px wide face gives 60-88 / 38-56 / 25-37,
# sigma 1 about 145. 120 leaves a margin of 1.8x to sharp and 1.36x to sigma 2.
BLUR_THRESHOLD = 120.0
# Face width over image width below which the photo counts as distant. The face's width is that of
# its outline at ear level (landmarks 0 and 16), which follows the face; dlib's detection box moves
# in steps of its image pyramid (on the demo's distant photos it was 51-73 px for faces 51-60 px
# wide). The astronaut, a waist-up portrait, scores 0.18; a face narrower than 12% of the frame is
# further than that.
DISTANT_FRACTION = 0.12

_LUMA = np.array([0.299, 0.587, 0.114])


def sharpness(rgb: np.ndarray, box) -> float:
    """Return the variance of the Laplacian of the face crop `box` (x0, y0, x1, y1 in `rgb`'s
    pixels), taken in gray levels 0-255 after resizing the crop to SHARPNESS_SIDE square.
    NaN when the box holds fewer than 2x2 pixels of the image."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return math.nan
    crop = rgb[y0:y1, x0:x1].astype(np.float32)
    gray = crop @ _LUMA.astype(np.float32) if crop.ndim == 3 else crop
    resized = Image.fromarray(gray, "F").resize((SHARPNESS_SIDE, SHARPNESS_SIDE), Image.Resampling.LANCZOS)
    return float(ndimage.laplace(np.asarray(resized, dtype=np.float64)).var())


def quality_flags(rgb_or_decoded: np.ndarray | Decoded, landmarks: Landmarks) -> dict:
    """Return dict(blurry, distant, sharpness, face_fraction, message) for one photo.

    `face_fraction`: the face's width over the image's, the face's width being the distance between
    landmarks 0 and 16 (the outline at ear level), or the box's width without points.

    `rgb_or_decoded`: the pixels the landmarks were found in, full size or a downscaled copy
    (a `Decoded` or an RGB array); `landmarks.box` and `.size` are in full-resolution pixels.
    Without a face or pixels the flags are None (unknown) and `message` says why.
    """
    unknown = {"blurry": None, "distant": None, "sharpness": math.nan, "face_fraction": math.nan}
    if not landmarks.ok or landmarks.box is None:
        return {**unknown, "message": f"no face to judge ({landmarks.status})"}
    if isinstance(rgb_or_decoded, Decoded):
        rgb, full_width = rgb_or_decoded.rgb, rgb_or_decoded.size[0]
    else:
        rgb, full_width = rgb_or_decoded, landmarks.size[0]
    if rgb is None:
        return {**unknown, "message": "no pixels to judge"}
    full_width = full_width or landmarks.size[0] or rgb.shape[1]
    x0, _, x1, _ = landmarks.box
    width = x1 - x0
    if landmarks.points is not None and np.isfinite(landmarks.points[[0, 16]]).all():
        width = float(np.hypot(*(landmarks.points[16] - landmarks.points[0])))
    face_fraction = float(width / full_width)
    scale = rgb.shape[1] / full_width
    sharp = sharpness(rgb, [v * scale for v in landmarks.box])
    return {
        "blurry": bool(sharp < BLUR_THRESHOLD) if math.isfinite(sharp) else None,
        "distant": bool(face_fraction < DISTANT_FRACTION),
        "sharpness": sharp,
        "face_fraction": face_fraction,
        "message": "" if math.isfinite(sharp) else "face box outside the image",
    }
