"""dlib 68-point landmarks for face photos: one detector and one predictor per process.

The HOG frontal detector runs on a downscaled copy (fast, and faces in clinical photos are
large); the iBUG 300-W shape predictor shipped in `face-recognition-models` runs on a copy big
enough for stable points. Points come back in full-resolution pixel coordinates of the image as
shown (EXIF orientation applied). dlib numbers points by IMAGE side: point 36 is always the
outer corner of the eye on the image's left.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from asymmetry.imaging import Decoded, decode_image

MODEL_NAME = "dlib-68-ibug300w"
# The longest side of the copy the detector sees, and of the copy the predictor sees.
DETECT_SIDE = 640
PREDICT_SIDE = 1280


@functools.lru_cache(maxsize=1)
def _models():
    """Load dlib's detector and predictor once per process; return (detector, predictor)."""
    import dlib
    import face_recognition_models

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(
        face_recognition_models.pose_predictor_model_location())


@dataclass
class Landmarks:
    """Landmarks of one image.

    `status`: "ok", "no_face", "multiple_faces", "too_small", "unreadable" or "bomb".
    `points`: (68, 2) float array in full-resolution pixels when status is "ok".
    `box`: the face box (x0, y0, x1, y1) in full-resolution pixels; `score` the detector score;
    `n_faces` how many faces the detector found; `size` the image (width, height).
    """

    status: str
    message: str = ""
    points: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None
    score: float = 0.0
    n_faces: int = 0
    size: tuple[int, int] = (0, 0)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _detect(det, small: np.ndarray):
    """Run the HOG detector; upsample once only when nothing is found at native size."""
    rects, scores, _ = det.run(small, 0, 0.0)
    if len(rects) == 0:
        rects, scores, _ = det.run(small, 1, 0.0)
    return list(rects), list(scores)


def landmarks_from_decoded(decoded: Decoded, pick_best: bool = False) -> Landmarks:
    """Detect the face and its 68 points in an already decoded image; return `Landmarks`."""
    import dlib

    if not decoded.ok:
        return Landmarks(decoded.status, decoded.message, size=decoded.size)
    det, predictor = _models()
    rgb = decoded.rgb
    h, w = rgb.shape[:2]
    shrink = min(1.0, DETECT_SIDE / max(h, w))
    if shrink < 1.0:
        from PIL import Image

        small = np.asarray(Image.fromarray(rgb).resize((max(1, round(w * shrink)), max(1, round(h * shrink))),
                                                       Image.Resampling.BILINEAR, reducing_gap=2.0))
    else:
        small = rgb
    rects, scores = _detect(det, small)
    result = Landmarks("no_face", "no face found", size=decoded.size, n_faces=len(rects), notes=list(decoded.notes))
    if not rects:
        return result
    best = int(np.argmax(scores))
    if len(rects) > 1 and not pick_best:
        result.status, result.message = "multiple_faces", f"{len(rects)} faces found"
        return result
    r = rects[best]
    inv = 1.0 / shrink
    big = dlib.rectangle(int(r.left() * inv), int(r.top() * inv), int(r.right() * inv), int(r.bottom() * inv))
    shape = predictor(rgb, big)
    pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
    to_full = 1.0 / decoded.scale
    result.status = "ok"
    result.message = "" if len(rects) == 1 else f"{len(rects)} faces found; the highest-scoring one was used"
    result.points = pts * to_full
    result.box = tuple(float(v) * to_full for v in (big.left(), big.top(), big.right(), big.bottom()))
    result.score = float(scores[best])
    return result


def detect_landmarks(src: str | Path | bytes | np.ndarray, pick_best: bool = False) -> Landmarks:
    """Decode `src` (path, bytes or RGB array) and return its `Landmarks`; never raises."""
    if isinstance(src, np.ndarray):
        rgb = src if src.ndim == 3 else np.stack([src] * 3, axis=-1)
        decoded = Decoded("ok", rgb=np.ascontiguousarray(rgb[..., :3], dtype=np.uint8),
                          size=(src.shape[1], src.shape[0]))
    else:
        decoded = decode_image(src, max_side=PREDICT_SIDE)
    return landmarks_from_decoded(decoded, pick_best=pick_best)
