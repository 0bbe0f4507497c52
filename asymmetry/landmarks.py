"""dlib 68-point landmarks for face photos, flip-equivariant by construction.

dlib's HOG detector and its shape predictor are not mirror-symmetric: the same face photographed
normally and as a selfie gets points that differ by a few pixels, enough to swap the side of a
mild asymmetry. So every step runs on the photo AND on its mirror image, and the two answers are
merged so that flipping the photo flips the result exactly:

1. detection: the HOG detector on a small copy and on the mirror of that copy; the mirror's boxes
   are mapped back, boxes found both ways (mutual best overlap) are averaged, the others kept;
2. one dominant face (a box at least DOMINANT_AREA times the area of every other) is measured and
   the others noted; several faces of comparable size are `multiple_faces` (or, with `pick_best`,
   the highest-scoring one is used);
3. the predictor box is mapped to the predictor's copy with a rounding that commutes with the flip;
4. the 68-point predictor on the face region and on its mirror; the mirror's points are flipped
   back, renumbered through MIRROR_ORDER and averaged with the direct ones.

Each step is symmetric in the photo and its mirror, so `landmarks(flip(I))` is `flip(landmarks(I))`
to float rounding (tests/test_landmarks.py). Points come back in full-resolution pixel coordinates
of the image as shown (EXIF orientation applied), pixel centres at integers. dlib numbers points by
IMAGE side: point 36 is always the outer corner of the eye on the image's left.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from asymmetry.imaging import Decoded, decode_image
from asymmetry.indices import MIRROR_ORDER

MODEL_NAME = "dlib-68-ibug300w"
# The longest side of the copy the detector sees, and the least the predictor sees.
DETECT_SIDE = 640
PREDICT_SIDE = 1280
# The version of the whole landmark step, stored with every measurement: a change re-measures.
ALGORITHM = f"{MODEL_NAME}+mirror@{DETECT_SIDE}/{PREDICT_SIDE}"
# A face box at least this many times the area of every other box is THE face of the photo.
DOMINANT_AREA = 4.0
# A box whose detector score (SVM margin) is this much above every other box's is the face even if
# the others are near its size. On the astronaut rotated by up to 15 degrees, the face scores
# 0.42-1.53 and the suit patch HOG takes for a second face 0.01-0.58, 0.21-1.34 below the face; two
# copies of one real face side by side differ by 0.12.
SCORE_MARGIN = 0.3
# Boxes of the photo and of its mirror overlapping at least this much (intersection over union)
# are the same face.
SAME_FACE_IOU = 0.5
# The predictor sees the face box plus this share of its size on every side (dlib samples pixels
# around the current shape estimate; beyond the box by far less than this).
PREDICT_MARGIN = 0.25

@functools.lru_cache(maxsize=1)
def dlib_models():
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
    `n_faces` how many faces the detector found; `others`: the boxes of the faces not measured;
    `size` the image (width, height); `message` what a coordinator should know (e.g. other faces).
    """

    status: str
    message: str = ""
    points: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None
    score: float = 0.0
    n_faces: int = 0
    size: tuple[int, int] = (0, 0)
    notes: list[str] = field(default_factory=list)
    others: list[tuple[float, float, float, float]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def flip_points(points: np.ndarray, width: int) -> np.ndarray:
    """Return the landmarks of the left-right flipped image (`width` pixels wide, pixel centres at
    integers): x -> width - 1 - x, renumbered so that every point keeps its anatomical name."""
    flipped = np.array(points, dtype=np.float64, copy=True)
    flipped[:, 0] = (width - 1) - flipped[:, 0]
    return flipped[MIRROR_ORDER]


# ---- detection, both ways -------------------------------------------------------------------

Box = tuple[float, float, float, float]  # left, top, right, bottom: inclusive pixel indices


def mirror_image(img: np.ndarray) -> np.ndarray:
    """Return a C-contiguous left-right mirror of an (H, W) or (H, W, C) image (one channel at a
    time: numpy copies a reversed 3-channel view ~6x slower)."""
    if img.ndim == 2:
        return np.ascontiguousarray(img[:, ::-1])
    out = np.empty_like(img)
    for c in range(img.shape[2]):
        out[..., c] = img[:, ::-1, c]
    return out


def _mirror_box(box: Box, width: int) -> Box:
    left, top, right, bottom = box
    return ((width - 1) - right, top, (width - 1) - left, bottom)


def _area(box: Box) -> float:
    return (box[2] - box[0] + 1) * (box[3] - box[1] + 1)


def _iou(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0]) + 1
    h = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (_area(a) + _area(b) - inter)


def _run(det, img: np.ndarray, upsample: int) -> list[tuple[Box, float]]:
    rects, scores, _ = det.run(img, upsample, 0.0)
    return [((r.left(), r.top(), r.right(), r.bottom()), float(s)) for r, s in zip(rects, scores)]


def _merge(direct: list[tuple[Box, float]], mirrored: list[tuple[Box, float]]) -> list[tuple[Box, float]]:
    """Merge the photo's detections with its mirror's (already mapped back): a pair that are each
    other's best overlap (IoU >= SAME_FACE_IOU) becomes one box, the mean of the two, with the mean
    score; the rest are kept as found. The rule treats both lists alike, so merging the mirror's
    detections with the photo's gives the mirror image of this result."""
    if not direct or not mirrored:
        return direct + mirrored
    iou = np.array([[_iou(a, b) for b, _ in mirrored] for a, _ in direct])
    best_b, best_a = iou.argmax(axis=1), iou.argmax(axis=0)
    out, used_b = [], set()
    for i, (a, sa) in enumerate(direct):
        j = int(best_b[i])
        if best_a[j] == i and iou[i, j] >= SAME_FACE_IOU:
            b, sb = mirrored[j]
            out.append((tuple((p + q) / 2 for p, q in zip(a, b)), (sa + sb) / 2))
            used_b.add(j)
        else:
            out.append((a, sa))
    out += [m for j, m in enumerate(mirrored) if j not in used_b]
    return out


def brightness_lean(img: np.ndarray) -> int:
    """Return sum over pixels of value * (2x - (width - 1)): > 0 when the image's brightness leans
    to its right. An exact integer, so the mirror image gets exactly the negated value."""
    # Column sums in uint32 (exact below 16 million rows of 8-bit pixels; 25x faster than int64).
    cols = img.reshape(img.shape[0], img.shape[1], -1).sum(axis=0, dtype=np.uint32).sum(axis=1, dtype=np.int64)
    weights = 2 * np.arange(img.shape[1], dtype=np.int64) - (img.shape[1] - 1)
    return int(cols @ weights)


def detect_faces(det, small: np.ndarray) -> list[tuple[Box, float]]:
    """Return (box, score) of the faces in `small`, in its pixels, found so that the mirror image
    gets exactly the mirrored boxes.

    The detector runs once, on the orientation (the copy or its mirror) whose brightness leans to
    the right (`brightness_lean`), and its boxes are mapped back: flipping the photo flips the lean,
    so the same pixels are searched and the boxes come back mirrored. A photo that leans neither way
    is searched both ways and the two merged (`_merge`). Upsamples once only when nothing is found.
    """
    width = small.shape[1]
    lean = brightness_lean(small)
    mirror = mirror_image(small) if lean <= 0 else None
    for upsample in (0, 1):
        direct = _run(det, small, upsample) if lean >= 0 else []
        mirrored = [(_mirror_box(b, width), s) for b, s in _run(det, mirror, upsample)] if lean <= 0 else []
        faces = _merge(direct, mirrored) if lean == 0 else direct + mirrored
        if faces:
            return faces
    return []


def choose_face(faces: list[tuple[Box, float]], pick_best: bool) -> tuple[int | None, str]:
    """Return (index of the face to measure or None, a note on the others).

    The only face; else a dominant one: the largest, when it is at least DOMINANT_AREA times the
    area of every other box; or the highest-scoring, when its detector score is SCORE_MARGIN or
    more above every other's and no other box is DOMINANT_AREA times its area (the weak extra boxes
    HOG finds on patterned clothes and backgrounds). Faces of comparable size and score are
    ambiguous: None, or with `pick_best` the highest-scoring one.
    """
    if len(faces) == 1:
        return 0, ""
    areas = np.array([_area(b) for b, _ in faces])
    scores = np.array([s for _, s in faces])
    n_other = len(faces) - 1
    big = int(np.argmax(areas))
    ratio = float(areas[big] / np.delete(areas, big).max())
    if ratio >= DOMINANT_AREA:
        return big, (f"{len(faces)} faces found; the dominant one ({ratio:.1f}x the area of the next) was measured, "
                     f"{n_other} smaller one(s) ignored")
    best = int(np.argmax(scores))
    runner_up = float(np.delete(scores, best).max())
    if scores[best] - runner_up >= SCORE_MARGIN and areas.max() < DOMINANT_AREA * areas[best]:
        return best, (f"{len(faces)} faces found; the one far more face-like than the others (detector score "
                      f"{scores[best]:.2f}, the next {runner_up:.2f}) was measured, {n_other} ignored")
    if pick_best:
        return best, f"{len(faces)} faces of comparable size and score found; the highest-scoring one was used"
    return None, (f"{len(faces)} faces of comparable size and score found; crop the photo to one face, or turn on "
                  "'pick the best face'")


# ---- coordinates that commute with the flip -------------------------------------------------

def _outward(t: float, parity: int) -> int:
    """The smallest integer q >= t with q = parity (mod 2)."""
    q = math.ceil(t)
    return q + 1 if (q - parity) % 2 else q


def _span(lo: float, hi: float, n_from: int, n_to: int) -> tuple[int, int]:
    """Map the pixel interval lo..hi of an axis n_from pixels long onto the same axis resampled to
    n_to pixels (pixel centres: x_to = c_to + (x_from - c_from) * n_to / n_from), rounded outwards
    to whole pixels. Rounding works on the doubled offset from the centre, so mirroring the
    interval before mapping mirrors the result exactly (floor(-x) == -ceil(x))."""
    k = n_to / n_from
    parity = (n_to - 1) % 2
    q_hi = _outward((2 * hi - (n_from - 1)) * k, parity)
    q_lo = -_outward(-((2 * lo - (n_from - 1)) * k), parity)
    return (q_lo + n_to - 1) // 2, (q_hi + n_to - 1) // 2


def _to_full(values: np.ndarray, n_from: int, n_to: int) -> np.ndarray:
    """Map pixel coordinates on an axis of n_from pixels to the same axis at n_to pixels (centres)."""
    return (np.asarray(values, dtype=np.float64) + 0.5) * (n_to / n_from) - 0.5


# ---- prediction, both ways ------------------------------------------------------------------

def predict_both_ways(predictor, rgb: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
    """Return the 68 points (rgb's pixels) of the face in `rect` (left, top, right, bottom; whole
    pixels): the mean of the predictor on the face region and, flipped back and renumbered, on its
    mirror image. Both runs see the same region (the box plus PREDICT_MARGIN, clipped to the image),
    so the flipped photo gets exactly the flipped points."""
    import dlib

    h, w = rgb.shape[:2]
    left, top, right, bottom = rect
    m = int(math.ceil(PREDICT_MARGIN * max(right - left, bottom - top)))
    cx0, cy0 = max(0, left - m), max(0, top - m)
    cx1, cy1 = min(w - 1, right + m), min(h - 1, bottom + m)
    crop = np.ascontiguousarray(rgb[cy0:cy1 + 1, cx0:cx1 + 1])
    cw = crop.shape[1]
    box = (left - cx0, top - cy0, right - cx0, bottom - cy0)
    direct = predictor(crop, dlib.rectangle(*box))
    mirror_box = ((cw - 1) - box[2], box[1], (cw - 1) - box[0], box[3])
    mirrored = predictor(mirror_image(crop), dlib.rectangle(*mirror_box))
    a = np.array([(p.x, p.y) for p in direct.parts()], dtype=np.float64)
    b = flip_points(np.array([(p.x, p.y) for p in mirrored.parts()], dtype=np.float64), cw)
    return (a + b) / 2 + (cx0, cy0)


def landmarks_from_decoded(decoded: Decoded, pick_best: bool = False) -> Landmarks:
    """Detect the face and its 68 points in an already decoded image; return `Landmarks`."""
    if not decoded.ok:
        return Landmarks(decoded.status, decoded.message, size=decoded.size)
    det, predictor = dlib_models()
    rgb = decoded.rgb
    h, w = rgb.shape[:2]
    full_w, full_h = decoded.size if decoded.size != (0, 0) else (w, h)
    shrink = min(1.0, DETECT_SIDE / max(h, w))
    if shrink < 1.0:
        from PIL import Image

        # No reducing_gap: Pillow's pre-reduction is not mirror-symmetric, plain resampling is.
        small = np.asarray(Image.fromarray(rgb).resize((max(1, round(w * shrink)), max(1, round(h * shrink))),
                                                       Image.Resampling.BILINEAR))
    else:
        small = rgb
    faces = detect_faces(det, small)
    result = Landmarks("no_face", "no face found", size=(full_w, full_h), n_faces=len(faces), notes=list(decoded.notes))
    if not faces:
        return result
    chosen, note = choose_face(faces, pick_best)
    sh, sw = small.shape[:2]

    def full_box(b: Box) -> Box:
        xs = _to_full([b[0], b[2]], sw, full_w)
        ys = _to_full([b[1], b[3]], sh, full_h)
        return (float(xs[0]), float(ys[0]), float(xs[1]), float(ys[1]))

    result.others = [full_box(b) for i, (b, _) in enumerate(faces) if i != chosen]
    if chosen is None:
        result.status, result.message = "multiple_faces", note
        return result
    box, score = faces[chosen]
    x0, x1 = _span(box[0], box[2], sw, w)
    y0, y1 = _span(box[1], box[3], sh, h)
    pts = predict_both_ways(predictor, rgb, (x0, y0, x1, y1))
    result.status, result.message = "ok", note
    result.points = np.stack([_to_full(pts[:, 0], w, full_w), _to_full(pts[:, 1], h, full_h)], axis=-1)
    result.box = full_box(box)
    result.score = score
    return result


def detect_landmarks(src: str | Path | bytes | np.ndarray, pick_best: bool = False) -> Landmarks:
    """Decode `src` (path, bytes or RGB array) and return its `Landmarks`; never raises."""
    if isinstance(src, np.ndarray):
        rgb = src if src.ndim == 3 else np.stack([src] * 3, axis=-1)
        decoded = Decoded("ok", rgb=np.ascontiguousarray(rgb[..., :3], dtype=np.uint8),
                          size=(src.shape[1], src.shape[0]))
    else:
        decoded = decode_image(src, max_side=PREDICT_SIDE, draft_only=True)
    return landmarks_from_decoded(decoded, pick_best=pick_best)
