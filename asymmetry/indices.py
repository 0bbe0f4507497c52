"""Facial asymmetry indices from dlib's 68 landmarks: the measurements of check 2.

These reconstruct the indices of Song et al. 2017 (EAs, EBAs, NAs, MAs, MAn, NAn, EbAn, RgAs,
AnAs), whose original definitions are not public, on the conventions of Emotrics (Guarin et al.
2018): dlib's points, lengths in units of the distance between the eyes. The frame is set by the
eye corners (36/39 and 42/45), which a facial palsy does not move, so a closing lid or a squint
tilts nothing. See docs/asymmetry.md.

Sign convention of every `*_signed` value: positive = the PATIENT's left side lower / less closed
(the side a droop or a weak eyelid points to), whatever the camera; `mirrored` says which image side
is the patient's left.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

# Bump when a formula changes: stored indices with another version are recomputed (from the
# stored landmark points when the landmark version is unchanged; asymmetry/measure.py), and range
# tables learned on another version are never applied (labeling/workflow/states.py latest_ranges).
# asym-1.1: the lid term's denominator is floored at 0.1.
# asym-2.0: the frame from the eye corners (was: the means of the eye contours, which a closing
#           lid moves); the lid term a length in the frame's unit like every other RgAs term (was
#           a ratio of openings); side noise re-measured.
INDEX_VERSION = "asym-2.0"

# Symmetric landmark pairs of dlib's 68-point scheme; the first point of each pair is on the
# IMAGE's left (dlib numbers by image side), the second on the image's right.
REGION_PAIRS: dict[str, tuple[tuple[int, int], ...]] = {
    "brows": ((17, 26), (18, 25), (19, 24), (20, 23), (21, 22)),
    "eyes": ((36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)),
    "nose": ((31, 35), (32, 34)),
    "mouth": ((48, 54), (49, 53), (50, 52), (59, 55), (58, 56), (60, 64), (61, 63), (67, 65)),
}
# Segments whose tilt against the eye line gives MAn, NAn, EbAn (image-left point first).
ANGLE_SEGMENTS: dict[str, tuple[int, int]] = {"m_an": (48, 54), "n_an": (31, 35), "eb_an": (19, 24)}
# Upper/lower lid point pairs whose mean distance is an eye's opening (image-left eye, image-right eye).
LID_PAIRS = (((37, 41), (38, 40)), ((43, 47), (44, 46)))
# The eye corners that set the frame: (outer, inner) of the image-left eye, (inner, outer) of the
# image-right eye. The canthi are tied to the bone by the canthal tendons; a palsy, a closing lid or
# a squint leaves them where they are, unlike the lid points.
EYE_CORNERS = ((36, 39), (42, 45))
# The bilateral pairs (image-left point first) whose joining vectors set the roll of the frame: the
# eye corners and the face outline at ear level (dlib's jaw points 0-2 / 16-14), which no facial
# movement or palsy moves. The outline pairs are ~2 eye-distances long, so they also steady the
# roll: through dlib a shut lid drags the corners of its eye down by a few pixels.
ROLL_PAIRS = ((36, 45), (39, 42), (0, 16), (1, 15), (2, 14))
LEFT_EYE_IMAGE = slice(36, 42)   # the eye on the image's left
RIGHT_EYE_IMAGE = slice(42, 48)  # the eye on the image's right

# `MIRROR_ORDER[k]` is the dlib number point k gets when the image is flipped left-right:
# flipped_points = flip_x(points)[MIRROR_ORDER].
MIRROR_ORDER = np.array(
    list(range(16, -1, -1))                       # jaw 0..16
    + list(range(26, 16, -1))                     # brows 17..26
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]        # nose bridge, nostrils
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]  # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65])           # inner lips

# The side is read from all seven signed components, each divided by its typical landmark jitter
# on a neutral face (pooled SD over resizing and +-5/10 degree rotation of skimage's astronaut at
# 0.9-2k px through dlib, rounded; bench/index_jitter.py, docs/asymmetry.md §6), so no single noisy
# component can outvote a clear mouth or brow droop. side_score = sum(signed / noise) / sqrt(7).
SIDE_NOISE = {
    "eas_signed": 0.005, "ebas_signed": 0.005, "nas_signed": 0.004, "mas_signed": 0.004,
    "m_an_signed": 0.36, "n_an_signed": 0.65, "eb_an_signed": 0.25,
}
# |side_score| below this gives side None ("no measurable asymmetry"). Kept small on purpose: the
# jitter of side_score itself is ~1.4 on a neutral face, so a side is a direction, not a verdict
# (the range classifier and the readers judge whether it matters). On the synthetic demo faces,
# 0.5 recovers the side of 90% of L/R photos (mild 77%, moderate and severe 96%); the trade-off
# table is in docs/asymmetry.md.
SIDE_DEADBAND = 0.5

# The paper's spelling of each field, for display. Angular fields are m_an/n_an/eb_an rather
# than man/nan/eban: a column called "nan" turns into NaN in CSV and pandas round trips.
PAPER_NAMES = {
    "eas": "EAs", "ebas": "EBAs", "nas": "NAs", "mas": "MAs", "rgas": "RgAs",
    "m_an": "MAn", "n_an": "NAn", "eb_an": "EbAn", "anas": "AnAs",
}
REGION_FIELDS = {"eyes": "eas", "brows": "ebas", "nose": "nas", "mouth": "mas"}


@dataclass(frozen=True)
class FaceFrame:
    """The frame of one face, in the input's pixel coordinates.

    `eyes`: (2, 2) the centres of the image-left and image-right eye, each the midpoint of its two
    corners (`face_frame`) or the mean of its contour (`pupil_frame`); `origin`: their midpoint (a
    point of the facial midline); `u`: unit vector from the image-left to the image-right eye
    centre; `v`: unit vector down the midline (u turned +90 degrees, so the frame is a rotation,
    never a reflection); `ipd`: the distance between the eye centres in pixels, the unit of every
    length (about the inter-pupil distance).
    """

    origin: np.ndarray
    u: np.ndarray
    v: np.ndarray
    ipd: float
    eyes: np.ndarray

    @property
    def pupils(self) -> np.ndarray:
        """The eye centres (the name of asym-1.x, whose centres were the contour means)."""
        return self.eyes

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """Return `points` (N, 2) in the normalised frame: x along the eye line (image right
        positive), y down the midline, both in eye-centre distances, origin between the eyes."""
        rel = np.asarray(points, dtype=np.float64) - self.origin
        return np.stack([rel @ self.u, rel @ self.v], axis=-1) / self.ipd

    def to_image(self, frame_points: np.ndarray) -> np.ndarray:
        """Return normalised-frame points (N, 2) mapped back to pixel coordinates."""
        fp = np.asarray(frame_points, dtype=np.float64) * self.ipd
        return self.origin + fp[..., :1] * self.u + fp[..., 1:] * self.v


def _frame(eyes: np.ndarray, spread_of: np.ndarray) -> FaceFrame | None:
    """Return the frame through the eye centres `eyes` (image left first), or None when they
    coincide (relative to the spread of the eye points `spread_of`)."""
    delta = eyes[1] - eyes[0]
    ipd = float(np.hypot(*delta))
    spread = float(np.abs(spread_of - eyes.mean(axis=0)).max())
    if not ipd > 1e-9 * max(1.0, spread):
        return None
    u = delta / ipd
    return FaceFrame(origin=eyes.mean(axis=0), u=u, v=np.array([-u[1], u[0]]), ipd=ipd, eyes=eyes)


def face_frame(points: np.ndarray) -> FaceFrame | None:
    """Return the frame of 68 landmarks set by points a facial palsy does not move.

    The eye centres are the midpoints of each eye's corners (36/39, 42/45): the origin is midway
    between them and their distance is the unit. The direction of the eye line `u` is that of the
    sum of the vectors joining the bilateral pairs of ROLL_PAIRS (the eye corners and the face
    outline at ear level), each pair weighted by its length. Lid points, which a closing eye or a
    squint moves, play no part. None when a point is missing or the eye centres coincide.
    """
    pts = np.asarray(points, dtype=np.float64)
    used = sorted({k for pair in ROLL_PAIRS for k in pair} | {k for eye in EYE_CORNERS for k in eye})
    if pts.shape != (68, 2) or not np.isfinite(pts[used]).all():
        return None
    eyes = np.stack([pts[list(EYE_CORNERS[0])].mean(axis=0), pts[list(EYE_CORNERS[1])].mean(axis=0)])
    frame = _frame(eyes, pts[used])
    if frame is None:
        return None
    roll = sum(pts[j] - pts[i] for i, j in ROLL_PAIRS)
    if not np.hypot(*roll) > 0:
        return None
    u = roll / np.hypot(*roll)
    return FaceFrame(origin=frame.origin, u=u, v=np.array([-u[1], u[0]]), ipd=frame.ipd, eyes=eyes)


def pupil_frame(points: np.ndarray) -> FaceFrame | None:
    """Return the frame of asym-1.x: eye centres at the means of the eye contours (36-41, 42-47).
    A closing lid moves that mean and tilts the frame, so the indices no longer use it; the
    synthetic generator, whose photos were built on it, still does."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape != (68, 2) or not np.isfinite(pts[36:48]).all():
        return None
    eyes = np.stack([pts[LEFT_EYE_IMAGE].mean(axis=0), pts[RIGHT_EYE_IMAGE].mean(axis=0)])
    return _frame(eyes, pts[36:48])


@dataclass(frozen=True)
class Indices:
    """The asymmetry indices of one face.

    Absolute forms (0 = symmetric): `eas, ebas, nas, mas` (lengths in eye-centre distances; eas
    also holds the lid-opening difference, a length too), `rgas` = their sum; `m_an, n_an, eb_an`
    (degrees, |tilt| against the eye line), `anas` = their sum. Signed forms (`*_signed`):
    positive = patient's left lower / less closed; `rgas_signed`, `anas_signed` are the sums of the
    signed components. `lid_signed`: o_left - o_right (eye-centre distances) in the patient's
    frame. `side_score`: the signed components in units of landmark jitter (see SIDE_NOISE);
    `side`: "L" (patient's left affected), "R", or None when |side_score| < SIDE_DEADBAND or
    degenerate. `ipd_px`: the distance between the eye centres (about the inter-pupil distance)
    in the input's pixels. `status`: "ok" or "degenerate" (then every index is NaN and `message`
    says why).
    """

    eas: float
    ebas: float
    nas: float
    mas: float
    rgas: float
    m_an: float
    n_an: float
    eb_an: float
    anas: float
    eas_signed: float
    ebas_signed: float
    nas_signed: float
    mas_signed: float
    rgas_signed: float
    m_an_signed: float
    n_an_signed: float
    eb_an_signed: float
    anas_signed: float
    lid_signed: float
    side_score: float
    side: str | None
    ipd_px: float
    mirrored: bool
    status: str = "ok"
    message: str = ""
    version: str = INDEX_VERSION

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        """Return the indices as a flat dict of plain Python values (floats, str, bool, None)."""
        return asdict(self)


# The numeric fields of `Indices`, in order (for table columns).
INDEX_FIELDS = tuple(f for f in Indices.__dataclass_fields__
                     if f not in ("side", "mirrored", "status", "message", "version"))


def _degenerate(message: str, mirrored: bool, ipd: float = math.nan) -> Indices:
    """Return an all-NaN `Indices` with status "degenerate" and `message`."""
    values = {name: math.nan for name in INDEX_FIELDS}
    values["ipd_px"] = ipd
    return Indices(**values, side=None, mirrored=bool(mirrored), status="degenerate", message=message)


def _pair_arrays(pairs) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(pairs)
    return arr[:, 0], arr[:, 1]


def region_indices(q: np.ndarray, region: str, left_sign: float) -> tuple[float, float]:
    """Return (absolute, signed) mirror asymmetry of `region` for normalised points `q`.

    Absolute: mean over the region's pairs of |p_i - M(p_j)|, M the reflection x -> -x across
    the midline. Signed: mean vertical component of p_i - M(p_j), turned to the patient's frame
    by `left_sign` (+1 when the image-left point is the patient's left, i.e. mirrored photos).
    """
    i, j = _pair_arrays(REGION_PAIRS[region])
    diff = np.stack([q[i, 0] + q[j, 0], q[i, 1] - q[j, 1]], axis=-1)
    return float(np.hypot(diff[:, 0], diff[:, 1]).mean()), float(left_sign * diff[:, 1].mean())


def lid_openings(q: np.ndarray) -> np.ndarray:
    """Return the openings (image-left eye, image-right eye): mean upper-to-lower lid distance."""
    lids = np.asarray(LID_PAIRS)  # (eye, pair, upper/lower)
    return np.linalg.norm(q[lids[..., 0]] - q[lids[..., 1]], axis=-1).mean(axis=1)


def lid_difference(q: np.ndarray, left_sign: float) -> tuple[float, float]:
    """Return (|o_R - o_L|, signed form): the difference of the eyes' openings, a length in the
    frame's unit like every other term of RgAs; positive = the patient's left more open. `q` is in
    the normalised frame (eye-centre distance 1)."""
    o_img_left, o_img_right = lid_openings(q)
    diff = o_img_left - o_img_right
    return float(abs(diff)), float(left_sign * diff)


def segment_tilt(q: np.ndarray, a: int, b: int) -> float:
    """Return the tilt in degrees of segment a -> b against the eye line, as seen in the image:
    positive = the image-right end (b) lower. Range (-180, 180]."""
    dx, dy = q[b] - q[a]
    return math.degrees(math.atan2(dy, dx))


def side_score(signed: dict[str, float]) -> float:
    """Return the signed components in `signed` summed in units of their landmark jitter
    (SIDE_NOISE), divided by sqrt(7): > 0 points to the patient's left, < 0 to the right."""
    z = [signed[name] / noise for name, noise in SIDE_NOISE.items()]
    return float(np.sum(z) / math.sqrt(len(z)))


def side_of(score: float, deadband: float = SIDE_DEADBAND) -> str | None:
    """Return "L", "R" or None (|score| below `deadband`, or NaN) in the patient's frame."""
    if not np.isfinite(score) or abs(score) < deadband:
        return None
    return "L" if score > 0 else "R"


def compute_indices(points: np.ndarray, mirrored: bool) -> Indices:
    """Return the `Indices` of 68 dlib landmarks (pixels, any scale, position or roll).

    `mirrored`: True for front-camera (selfie) photos, where the patient's left is on the image's
    left. Missing points (NaN), a wrong shape or coincident eye centres give status "degenerate" with
    NaN indices and side None; this never raises.
    """
    try:
        pts = np.asarray(points, dtype=np.float64) if points is not None else np.empty((0, 2))
    except (TypeError, ValueError):
        return _degenerate(f"landmark points are not numbers: {type(points).__name__}", mirrored)
    if pts.shape != (68, 2):
        return _degenerate(f"expected (68, 2) landmark points, got shape {pts.shape}", mirrored)
    if not np.isfinite(pts).all():
        return _degenerate("landmark points contain NaN or infinity", mirrored)
    frame = face_frame(pts)
    if frame is None:
        return _degenerate("eye centres coincide; no frame to measure in", mirrored)
    q = frame.to_frame(pts)
    # +1 when the image-left point of a pair is the patient's left (mirrored photo), else -1.
    left_sign = 1.0 if mirrored else -1.0
    values: dict[str, float] = {}
    for region, name in REGION_FIELDS.items():
        values[name], values[name + "_signed"] = region_indices(q, region, left_sign)
    lid_abs, lid_signed = lid_difference(q, left_sign)
    values["eas"] += lid_abs
    values["eas_signed"] += lid_signed
    for name, (a, b) in ANGLE_SEGMENTS.items():
        tilt = segment_tilt(q, a, b)
        # Image tilt is positive when the image-RIGHT end is lower; that end is the patient's
        # left in a non-mirrored photo, hence the minus sign of left_sign.
        values[name], values[name + "_signed"] = abs(tilt), -left_sign * tilt
    values["rgas"] = values["eas"] + values["ebas"] + values["nas"] + values["mas"]
    values["rgas_signed"] = values["eas_signed"] + values["ebas_signed"] + values["nas_signed"] + values["mas_signed"]
    values["anas"] = values["m_an"] + values["n_an"] + values["eb_an"]
    values["anas_signed"] = values["m_an_signed"] + values["n_an_signed"] + values["eb_an_signed"]
    score = side_score(values)
    return Indices(**values, lid_signed=lid_signed, side_score=score, side=side_of(score),
                   ipd_px=frame.ipd, mirrored=bool(mirrored))
