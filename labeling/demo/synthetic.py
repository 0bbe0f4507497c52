"""Synthetic FNP faces: a real face (scikit-image's astronaut) warped to a known class per movement.

Everything this module makes is synthetic and must be marked so wherever it appears. It exists
so the workflow can be tried and tested end to end without any patient photo.

How: the astronaut's face is first made symmetric. She smiles with her lips apart, so every photo
starts from her face at rest (REST: lips closed and relaxed, corners in and down, chin up). Its
landmarks are then moved (a) per subject (shape jitter and a little natural asymmetry, so subjects
differ), (b) by the movement's action on each half-face, the paralysed half doing less of it as
severity rises, and (c) by the paralysed half's droop at rest (brow, a wider eye, nostril, the whole
hemi-lip); the lips then close as far as the movement lets each half. A piecewise-affine warp with
helper points that keep lid margins, brows and the lips' inner edges in one piece renders the face
(exactly per pixel round the mouth, so no tooth shows between closed lips). Eye closure (MV1)
slides the upper lid over the eyeball and paints the lid skin and lash line; closed lips get the
line where they meet, a working half its forehead lines (MV2) or nose creases (MV5), and the
nasolabial fold is as deep as the movement makes it (flat on a paralysed half). Sides are the
PATIENT's: the image side they land on follows the `mirrored` flag (a selfie shows the patient's
left on the image's left). The amplitudes are sized to what dlib's 68-point model can follow;
docs/data-import.md ("Synthetic demo data") lists them with the indices measured on the output,
and `contact_sheet` draws every movement for a few classes (docs/img/synthetic-movements.png).
"""
from __future__ import annotations

import functools
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage
from scipy.spatial import Delaunay

from asymmetry.indices import MIRROR_ORDER, pupil_frame
from labeling.vocabulary import CLASS_WORDS, CLASSES, MOVEMENTS, movement_phrase, side_and_degree

GENERATOR = "astronaut-warp-v3"
# Portrait crop of skimage.data.astronaut() around the face, upscaled 4x to 540x648 (the face
# ~175 px between the pupils: dlib's whole-pixel points are then ~0.6% of that distance).
CROP = (157, 47, 292, 209)
UPSCALE = 4
MARGIN = 16  # astronaut pixels round the crop in which the face is found and made symmetric
BACKDROP_BLUR = 4  # astronaut pixels: how far out of focus the scene beyond that margin is

# Paralysed side, by severity 0..3 (N, mild, moderate, severe): the share of each movement it
# still performs, how far it droops (a share of DROOP_SHAPE), and how far its eye still closes in
# MV1 (eye closure is among the last functions to go, so it has its own scale).
AMPLITUDE = (1.0, 0.65, 0.4, 0.05)
DROOP = (0.0, 0.35, 0.6, 1.0)
EYE_CLOSURE = (1.0, 0.75, 0.45, 0.1)
# Natural asymmetry of every face (SD of brow and mouth-corner height differences, in IPD).
NATURAL_ASYMMETRY = 0.008
# Per-photo pose: SD of roll (degrees), of scale (share) and of shift (share of the frame).
POSE_SD = (2.0, 0.03, 0.02)

# dlib 68-point indices of the IMAGE-left half (point 36 is the image-left eye's outer corner);
# the image-right half is their mirror (asymmetry.indices.MIRROR_ORDER).
GROUPS = {
    "brow": [17, 18, 19, 20, 21], "inner_brow": [20, 21], "upper_lid": [37, 38], "lower_lid": [40, 41],
    "ala": [31, 32], "upper_lip": [49, 50, 61],
    "mouth": [48, 49, 50, 58, 59, 60, 61, 67],  # the hemi-lip, weighted by distance from the midline
}
MOUTH_MIDLINE = [51, 57, 62, 66]

# Every table below lists moves of one half-face as (what, outward dx, down dy), in inter-pupil
# distances (IPD) along the face's own axes (outward along the eye line, down the midline). `what`
# is a group of GROUPS, or one dlib point of the image-left half; a point on the midline (51, 57,
# 62, 66, 8...) is moved half by each half-face. "mouth" moves the hemi-lip as if pulled at the
# corner (the corner by the full amount, points nearer the midline proportionally less).
#
# The astronaut smiles with her lips apart. Every photo starts from her face at REST: the corners
# come in and down to where the lips meet, the upper lip is fuller than in a smile, the chin comes
# up, the lower lids are let down; `lip_closure` then brings the lips together (LIPS_CLOSED). The
# grin (MV4) undoes all of this and goes beyond her own smile.
REST = ((48, -0.035, 0.14), (60, 0.018, 0.111), (49, -0.03, 0.075), (50, 0.0, -0.01), (51, 0.0, -0.01),
        (59, -0.035, 0.015), (6, 0.0, -0.02), (7, 0.0, -0.04), (8, 0.0, -0.05), ("lower_lid", 0, 0.02),
        ("ala", 0, 0.015))
# The grin takes the lips back to her smile, the corners only part of the way up (GRIN_LIFT): dlib
# stops following a corner ~0.1 IPD above the other, and a paralysed half stays at rest.
GRIN_LIFT = 0.45
_SMILE = tuple((what, -dx, -dy * (GRIN_LIFT if what in (48, 60) else 1.0)) for what, dx, dy in REST
               if what in (48, 60, 49, 50, 51, 59))
# What one half-face does in each movement, from rest, when it works fully. MV1 also shuts the eye
# (eye_closure). dlib stops following a mouth corner ~0.15-0.2 IPD below the other and one brow ~0.1
# IPD from the other, so droop plus a missing movement stays about within those.
ACTIONS: dict[str, tuple[tuple[str | int, float, float], ...]] = {
    "MV0": (),                                                            # at rest
    "MV1": (("mouth", 0.06, -0.03), ("ala", 0, -0.03)),                   # eyes shut tight; the cheek lifts
    "MV2": (("brow", 0, -0.08),),                                         # eyebrows raised
    "MV3": ((1, 0.03, 0), (2, 0.08, 0), (3, 0.12, 0.01), (4, 0.13, 0.02), (5, 0.1, 0.02),  # cheeks puffed:
            (6, 0.05, 0.01), ("mouth", -0.04, 0),                                    # the outline bulges,
            (50, 0, 0.02), (51, 0, 0.02), (58, 0, -0.025), (57, 0, -0.025)),         # lips pressed thin
    "MV4": _SMILE + (("mouth", 0.07, -0.01), ("lower_lid", 0, -0.04), ("ala", 0.02, -0.04)),  # grin: open, wide
    "MV5": (("ala", 0.03, -0.05), ("inner_brow", 0, 0.06), ("lower_lid", 0, -0.04),  # nose wrinkled, upper
            ("upper_lip", 0, -0.06), (51, 0, -0.06), (62, 0, -0.05), ("mouth", 0, -0.02)),  # lip raised
    "MV6": (("mouth", -0.16, 0.0), (49, 0, -0.06), (50, 0, -0.05), (51, 0, -0.035),  # whistling: lips
            (59, 0, 0.06), (58, 0, 0.05), (57, 0, 0.04)),                              # pursed, rounded
}
# How far the lips close in each movement (0 apart as in the astronaut's smile, 1 together), at the
# sides and in the middle. A paralysed half opens them by PASSIVE_OPENING (pulled apart with the
# working half's) plus its share of the rest.
LIPS_CLOSED = {"MV0": (1, 1), "MV1": (1, 1), "MV2": (1, 1), "MV3": (1, 1), "MV4": (0, 0), "MV5": (0.75, 0.7),
               "MV6": (0.9, 0.4)}
PASSIVE_OPENING = 0.4
DARK_MOUTH = ("MV6",)  # pursed lips: the small opening shows the dark of the mouth, not teeth
# A fully paralysed half at rest: the brow sags, the eye is wider (upper lid retracted, lower lid
# sagging: lagophthalmos and ectropion), the nostril and the hemi-lip sag.
DROOP_SHAPE = (("brow", 0, 0.05), ("upper_lid", 0, -0.045), ("lower_lid", 0, 0.045), ("mouth", 0, 0.1),
               ("ala", 0, 0.09))


def _mirror(i: int) -> int:
    """Return the dlib number of point `i`'s mirror partner (itself on the midline)."""
    return int(MIRROR_ORDER[i])


def _group_weights(group: str | int, pts: np.ndarray, image_side: str) -> tuple[list[int], np.ndarray]:
    """Return the points of `group` (a GROUPS name or one dlib point) on one image side and the
    share of the group's move each gets."""
    if isinstance(group, int):
        point = group if image_side == "left" else _mirror(group)
        return [point], np.array([0.5 if point == _mirror(point) else 1.0])
    idx = GROUPS[group] if image_side == "left" else [_mirror(i) for i in GROUPS[group]]
    if group != "mouth":
        return idx, np.ones(len(idx))
    mid_x = pts[MOUTH_MIDLINE, 0].mean()
    corner, inner = (48, 60) if image_side == "left" else (54, 64)
    weight = np.clip(np.abs(pts[idx, 0] - mid_x) / abs(pts[corner, 0] - mid_x), 0, 1)
    weight[idx.index(inner)] = 1.0  # the inner corner moves with the outer one
    return idx, weight


def _moves(table, pts: np.ndarray, image_side: str, ipd: float) -> np.ndarray:
    """Return (68, 2) pixel displacements of one half-face for (what, dx outward, dy down) moves."""
    d = np.zeros((68, 2))
    frame = pupil_frame(pts)
    outward = (-1.0 if image_side == "left" else 1.0) * frame.u
    for group, dx, dy in table:
        idx, weight = _group_weights(group, pts, image_side)
        d[idx] += weight[:, None] * (dx * outward + dy * frame.v) * ipd
    return d


# Upper-lid point -> the lower-lid point it meets when the eye closes (image-left eye).
LID_MEETS = {37: 41, 38: 40}
CLOSED_GAP = 0.01  # a shut eye's lids in the warp, IPD apart (a zero gap would fold triangles)
LIPS_GAP = 0.004  # closed lips in the warp, IPD apart (their seam is painted over: `_lip_line`)


def eye_closure(pts: np.ndarray, image_side: str) -> np.ndarray:
    """Return (68, 2) displacements bringing the upper lid of one eye down onto its lower lid."""
    d = np.zeros((68, 2))
    gap = CLOSED_GAP * _ipd(pts)
    for upper, lower in LID_MEETS.items():
        if image_side == "right":
            upper, lower = _mirror(upper), _mirror(lower)
        d[upper] = pts[lower] - pts[upper] - (0, gap)
    return d


# Inner-lip pairs of the image-left half (upper point, lower point; 62/66 on the midline), and the
# outer-lip points carried along with each inner point (the lip moves as a whole).
LIP_MEETS = {61: 67, 62: 66}
LIP_CARRIES = {61: ((50, 1.0), (49, 0.5)), 62: ((51, 1.0),), 67: ((58, 1.0), (59, 0.5)), 66: ((57, 1.0),)}
UPPER_LIP_SHARE = 0.3  # of the closing done by the upper lip; the lower lip and jaw do the rest


def lip_closure(pts: np.ndarray, image_side: str, side: float = 1.0, middle: float = 1.0) -> np.ndarray:
    """Return (68, 2) displacements bringing one half's upper and lower lip together, by `side`
    (0..1) at the side pair (61/67) and `middle` at the midline pair (62/66, each half doing half)."""
    d = np.zeros((68, 2))
    frame = pupil_frame(pts)
    gap_closed = LIPS_GAP * frame.ipd
    for (upper, lower), amount in zip(LIP_MEETS.items(), (side, middle)):
        weight = 0.5 if upper == _mirror(upper) else 1.0
        if image_side == "right":
            upper, lower = _mirror(upper), _mirror(lower)
        gap = float((pts[lower] - pts[upper]) @ frame.v) - gap_closed
        if gap <= 0:
            continue
        for point, down in ((upper, UPPER_LIP_SHARE * gap), (lower, -(1 - UPPER_LIP_SHARE) * gap)):
            source = point if image_side == "left" else _mirror(point)
            for p, share in ((source, 1.0),) + LIP_CARRIES[source]:
                q = p if image_side == "left" else _mirror(p)
                d[q] += weight * amount * share * down * frame.v
    return d


def movement_action(movement: str, pts: np.ndarray, image_side: str, ipd: float) -> np.ndarray:
    """Return (68, 2) displacements (pixels) of one half-face doing `movement` fully (the
    eye closure of MV1 is separate: `eye_closure`)."""
    return _moves(ACTIONS[movement], pts, image_side, ipd)


def rest(pts: np.ndarray, ipd: float) -> np.ndarray:
    """Return (68, 2) displacements (pixels) taking the astronaut's smile to the face at rest."""
    return _moves(REST, pts, "left", ipd) + _moves(REST, pts, "right", ipd)


def droop(pts: np.ndarray, image_side: str, ipd: float) -> np.ndarray:
    """Return (68, 2) displacements (pixels) of a fully paralysed half-face at rest."""
    return _moves(DROOP_SHAPE, pts, image_side, ipd)


@functools.lru_cache(maxsize=1)
def _base() -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Return (canvas, landmarks, offset), computed once: the whole astronaut photo upscaled, with
    the face made symmetric; the face's 68 landmarks in the coordinates of the 648x540 portrait;
    and where that portrait's top-left corner lies on the canvas (what a pose, a warp or a distant
    shot brings into the frame comes from the rest of the canvas).

    The astronaut's own asymmetry is warped away (every landmark pair is moved to the mean of
    itself and its mirror image across the facial midline), so the only asymmetry of a synthetic
    photo is what the generator puts there: a subject's natural asymmetry and the class.
    """
    from skimage.data import astronaut

    photo = Image.fromarray(astronaut())
    size = (photo.width * UPSCALE, photo.height * UPSCALE)
    # The scene is out of focus, as behind a portrait (its mission patch, which dlib's detector
    # takes for a second face in a distant shot, is a blur) ...
    canvas = np.array(photo.filter(ImageFilter.GaussianBlur(BACKDROP_BLUR)).resize(size, Image.Resampling.BILINEAR))
    # ... but for the face: sharp on the portrait crop and a margin, fading out over a second margin.
    box = [(c + m) for c, m in zip(CROP, (-2 * MARGIN, -2 * MARGIN, 2 * MARGIN, 2 * MARGIN))]
    sharp = photo.crop(box).resize(((box[2] - box[0]) * UPSCALE, (box[3] - box[1]) * UPSCALE), Image.Resampling.LANCZOS)
    sharp = np.asarray(sharp.filter(ImageFilter.UnsharpMask(radius=2, percent=60, threshold=2)), dtype=np.float64)
    bx0, by0, bx1, by1 = (v * UPSCALE for v in box)
    pad = MARGIN * UPSCALE
    ys, xs = np.ogrid[:by1 - by0, :bx1 - bx0]
    inward = np.minimum(np.minimum(ys, by1 - by0 - 1 - ys), np.minimum(xs, bx1 - bx0 - 1 - xs))
    weight = np.clip(inward / pad, 0, 1)[..., None]
    canvas[by0:by1, bx0:bx1] = np.round(weight * sharp + (1 - weight) * canvas[by0:by1, bx0:bx1]).astype(np.uint8)
    # The face is found and made symmetric on the portrait crop plus one margin, then put back.
    x0, y0, x1, y1 = bx0 + pad, by0 + pad, bx1 - pad, by1 - pad
    rgb = canvas[y0:y1, x0:x1]
    points = _generator_landmarks(rgb)
    frame = pupil_frame(points)
    q = frame.to_frame(points)
    sym = frame.to_image((q + q[MIRROR_ORDER] * (-1, 1)) / 2)
    helpers_src, helpers_dst = _helper_points(points, sym, _ipd(sym))
    anchors = _anchors(rgb.shape[1], rgb.shape[0])
    face = _warp(rgb, np.vstack([points, helpers_src, anchors]), np.vstack([sym, helpers_dst, anchors]),
                 rgb.shape[:2])
    # Blend the warped face back in, fading out over the outer half of the margin.
    fade = MARGIN * UPSCALE / 2
    ys, xs = np.ogrid[:rgb.shape[0], :rgb.shape[1]]
    edge = np.minimum(np.minimum(ys, rgb.shape[0] - 1 - ys), np.minimum(xs, rgb.shape[1] - 1 - xs))
    weight = np.clip(edge / fade, 0, 1)[..., None]
    canvas[y0:y1, x0:x1] = np.round(weight * face + (1 - weight) * rgb).astype(np.uint8)
    return canvas, sym - pad, (x0 + pad, y0 + pad)


def base_face() -> tuple[np.ndarray, np.ndarray]:
    """Return the base portrait (RGB, 648x540, made symmetric) and its 68 landmarks; computed once."""
    canvas, pts, (x, y) = _base()
    w, h = (CROP[2] - CROP[0]) * UPSCALE, (CROP[3] - CROP[1]) * UPSCALE
    return canvas[y:y + h, x:x + w], pts


def _generator_landmarks(rgb: np.ndarray) -> np.ndarray:
    """Return the 68 points the generator's base face was built on: dlib's detector on a 640 px copy
    and one pass of the predictor, as the landmark step of asym-1.x did. The measurement has since
    moved on (asymmetry/landmarks.py averages the photo with its mirror); the generator keeps these
    points, so its photos stay the same byte for byte."""
    import dlib

    from asymmetry.landmarks import dlib_models

    det, predictor = dlib_models()
    h, w = rgb.shape[:2]
    shrink = min(1.0, 640 / max(h, w))
    small = np.asarray(Image.fromarray(rgb).resize((max(1, round(w * shrink)), max(1, round(h * shrink))),
                                                   Image.Resampling.BILINEAR, reducing_gap=2.0))
    rects, scores, _ = det.run(small, 0, 0.0)
    if len(rects) != 1:  # pragma: no cover - the packaged image is fixed
        raise RuntimeError(f"base face: {len(rects)} faces found")
    r, inv = rects[0], 1.0 / shrink
    shape = predictor(rgb, dlib.rectangle(int(r.left() * inv), int(r.top() * inv), int(r.right() * inv),
                                          int(r.bottom() * inv)))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def _ipd(pts: np.ndarray) -> float:
    """Return the inter-pupil distance of 68 landmarks (pixels): the generator's unit of movement,
    between the means of the eye contours (asymmetry.indices.pupil_frame)."""
    return pupil_frame(pts).ipd


def _backward_map(src: np.ndarray, dst: np.ndarray, xs: np.ndarray, ys: np.ndarray,
                  simplices: np.ndarray | None = None) -> np.ndarray:
    """Return (len(ys), len(xs), 2): for each grid node (x, y), the point of `src` that the
    piecewise-affine map over the triangles `simplices` (by default the Delaunay triangles of
    `dst`) sends to it (NaN outside them).

    Each triangle fills the nodes in its bounding box; this is 100x faster than Qhull's point
    location, whose walk gives up on the thin triangles around shut eyes and lid margins.
    """
    out = np.full((len(ys), len(xs), 2), np.nan)
    for simplex in Delaunay(dst).simplices if simplices is None else simplices:
        p, q = dst[simplex], src[simplex]
        edges = np.array([p[1] - p[0], p[2] - p[0]]).T
        if abs(np.linalg.det(edges)) < 1e-9:
            continue
        lo, hi = p.min(0) - 1e-6, p.max(0) + 1e-6
        i0, i1 = np.searchsorted(ys, lo[1]), np.searchsorted(ys, hi[1], side="right")
        j0, j1 = np.searchsorted(xs, lo[0]), np.searchsorted(xs, hi[0], side="right")
        if i0 >= i1 or j0 >= j1:
            continue
        gx, gy = np.meshgrid(xs[j0:j1], ys[i0:i1])
        uv = np.linalg.solve(edges, np.stack([gx.ravel() - p[0, 0], gy.ravel() - p[0, 1]]))
        bary = np.vstack([1 - uv.sum(0), uv])
        inside = (bary >= -1e-9).all(0).reshape(gx.shape) & np.isnan(out[i0:i1, j0:j1, 0])
        mapped = (bary.T @ q).reshape(gx.shape + (2,))
        out[i0:i1, j0:j1][inside] = mapped[inside]
    return out


def _warp(source: np.ndarray, src: np.ndarray, dst: np.ndarray, shape: tuple[int, int],
          offset: tuple[int, int] = (0, 0), step: int = 4, simplices: np.ndarray | None = None,
          exact: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Piecewise-affine warp moving control points `src` to `dst`; return the warped image.

    The output has `shape` (h, w); the control points are in coordinates whose origin lies at
    `offset` (x, y) on `source`. The backward map (output pixel -> source pixel) is affine on
    each triangle (`simplices`, by default the Delaunay triangles of `dst`); it is evaluated
    exactly on a grid every `step` pixels and bilinearly in between, except in the box `exact`
    (x0, y0, x1, y1), where it is evaluated at every pixel (between the nodes, a seam of triangles
    thinner than `step` would show what lies between its sides in the source: closed lips' teeth).
    """
    h, w = shape
    xs, ys = np.arange(0, w + step, step, dtype=np.float64), np.arange(0, h + step, step, dtype=np.float64)
    back = _backward_map(src, dst, xs, ys, simplices) + offset  # the anchors lie beyond the frame: no NaN
    # Bilinear up to every pixel: node i of n lands on pixel i * step.
    zoom = [((n - 1) * step + 1) / n for n in back.shape[:2]]
    coords = [ndimage.zoom(back[..., k], zoom, order=1)[:h, :w] for k in (1, 0)]
    if exact is not None:
        x0, y0 = max(int(exact[0]), 0), max(int(exact[1]), 0)
        x1, y1 = min(int(exact[2]), w), min(int(exact[3]), h)
        if x0 < x1 and y0 < y1:
            fine = _backward_map(src, dst, np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64),
                                 simplices) + offset
            coords[0][y0:y1, x0:x1], coords[1][y0:y1, x0:x1] = fine[..., 1], fine[..., 0]
    out = np.empty((h, w, 3), dtype=source.dtype)
    for c in range(3):
        out[..., c] = ndimage.map_coordinates(source[..., c], coords, order=1, mode="nearest")
    return out


def _anchors(w: int, h: int, n: int = 24, reach: float = 0.8) -> np.ndarray:
    """Return fixed points on an ellipse round the frame (semi-axes `reach` times its width and
    height), so the warp stays local to the face."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([w / 2 + reach * w * np.cos(t), h / 2 + reach * h * np.sin(t)])


# (upper-lid point, brow point above it): the lid-to-brow segments the eye-region helpers sit on.
LID_BROW = ((36, 17), (37, 19), (38, 20), (39, 21), (42, 22), (43, 23), (44, 24), (45, 26))
LID_BAND = 0.035   # lid margin and lash roots: move rigidly with the lid (IPD)
BROW_BAND = 0.05   # the brow's own thickness below its landmarks: moves with the brow (IPD)
CREASE = 0.09      # lashes and lid crease end this far above the upper lid (IPD)


def _closure_of(src: np.ndarray, dst: np.ndarray, upper: int) -> float:
    """Return how far (0 open .. 1 shut) the upper-lid point `upper` has come down to its lower lid."""
    lower = LID_MEETS[upper] if upper in LID_MEETS else _mirror(LID_MEETS[_mirror(upper)])
    gap_s, gap_d = src[lower, 1] - src[upper, 1], dst[lower, 1] - dst[upper, 1]
    return float(np.clip(1 - gap_d / gap_s, 0, 1)) if gap_s > 0 else 0.0


def _helper_points(src: np.ndarray, dst: np.ndarray, ipd: float) -> tuple[np.ndarray, np.ndarray]:
    """Return (source, destination) of extra control points that keep textures where they belong.

    Between each upper lid and the brow above it, the lid margin and the brow keep their
    thickness and only the bare skin between them stretches or shrinks; without this a raised
    brow stretches the dark lid crease into a band that dlib takes for the brow. A closing lid
    folds its lashes and crease away above its margin. The forehead and fringe ride with the
    brows; the cheeks follow the jaw and nostrils.
    """
    hs, hd = [], []
    for lid, brow in LID_BROW:
        seg_s, seg_d = src[brow] - src[lid], dst[brow] - dst[lid]
        len_s, len_d = float(np.hypot(*seg_s)), float(np.hypot(*seg_d))
        unit_s, unit_d = seg_s / len_s, seg_d / len_d
        k = min(1.0, len_d / len_s)  # the bands shrink only when the lid-brow gap closes
        hs += [src[lid] + unit_s * LID_BAND * ipd, src[brow] - unit_s * BROW_BAND * ipd]
        hd += [dst[lid] + unit_d * LID_BAND * ipd * k, dst[brow] - unit_d * BROW_BAND * ipd * k]
        if lid in (37, 38, 43, 44):
            c = _closure_of(src, dst, lid)
            hs.append(src[lid] + unit_s * CREASE * ipd)
            hd.append(dst[lid] + unit_d * (LID_BAND + (CREASE - LID_BAND) * (1 - c) + 0.01 * c) * ipd * k)
    for i in range(17, 27):
        hs.append(src[i] + (0, -0.35 * ipd))
        hd.append(dst[i] + (0, -0.35 * ipd))
    for jaw, ala in ((2, 31), (14, 35)):
        hs.append((src[jaw] + src[ala]) / 2 + (0, -0.1 * ipd))
        hd.append((dst[jaw] + dst[ala]) / 2 + (0, -0.1 * ipd))
    return np.array(hs), np.array(hd)


# The true inner edges of the lips on the base face (where the teeth and the dark of the mouth
# begin), as columns along dlib's inner-lip lines of the image-left half: (from, to, t, upper-edge
# offset, lower-edge offset), the column t of the way from `from` to `to` on both lines (the upper
# line 60-61-62, the lower 60-67-66), the offsets down the face in IPD. dlib puts its upper inner
# points on the lip's edge and its lower ones ~0.03 IPD inside the lower lip. Closing the lips
# brings these edges together, so no tooth is left in a closed mouth; the control points on them
# keep the warp's triangles from reaching across the mouth.
LIP_EDGE_COLUMNS = ((0, 1, 1 / 6, -0.012, 0.02), (0, 1, 2 / 6, -0.005, 0.019), (0, 1, 3 / 6, 0.0, 0.016),
                    (0, 1, 4 / 6, 0.0, 0.006), (0, 1, 5 / 6, 0.0, -0.01), (0, 1, 1.0, -0.009, -0.027),
                    (1, 2, 0.5, -0.01, -0.028), (1, 2, 1.0, -0.0115, -0.0285))
LIP_LINES = {"upper": (60, 61, 62), "lower": (60, 67, 66)}
LIP_LINE_RGB = np.array([105.0, 55.0, 50.0])  # where closed lips meet
LIP_LINE_WIDTH = 0.012  # IPD


def _lip_columns(pts: np.ndarray, image_side: str) -> tuple[np.ndarray, np.ndarray]:
    """Return the points of the upper and lower inner-lip lines at the LIP_EDGE_COLUMNS columns of
    one half, from the corner to the midline (the midline column only for the image-left half)."""
    cols = LIP_EDGE_COLUMNS if image_side == "left" else LIP_EDGE_COLUMNS[:-1]
    out = []
    for line in ("upper", "lower"):
        ids = [i if image_side == "left" else _mirror(i) for i in LIP_LINES[line]]
        out.append(np.array([pts[ids[a]] + t * (pts[ids[b]] - pts[ids[a]]) for a, b, t, _, _ in cols]))
    return out[0], out[1]


def _lip_edges(src: np.ndarray, dst: np.ndarray, ipd: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the lips' true inner edges (LIP_EDGE_COLUMNS) in the base face and where they go:
    (source, destination), each (columns, 2 (upper, lower), 2), and how open (0..1) the mouth is
    at each column. Columns run from the image-left corner to the image-right one.

    Each edge point keeps its offset from dlib's inner-lip line in the share that the mouth is
    still open at its column (the gap between the lines against the base face's), so a mouth
    that opens as wide as the astronaut's shows her teeth as they are, and a closed one none.
    """
    v_src, v_dst = pupil_frame(src).v, pupil_frame(dst).v
    hs, hd, opening = [], [], []
    for image_side in ("left", "right"):
        cols = LIP_EDGE_COLUMNS if image_side == "left" else LIP_EDGE_COLUMNS[:-1]
        up_s, lo_s = _lip_columns(src, image_side)
        up_d, lo_d = _lip_columns(dst, image_side)
        order = range(len(cols)) if image_side == "left" else reversed(range(len(cols)))
        for k in order:
            off_up, off_lo = cols[k][3:]
            gap_s, gap_d = (lo_s[k] - up_s[k]) @ v_src, (lo_d[k] - up_d[k]) @ v_dst
            o = float(np.clip(gap_d / gap_s, 0, 1)) if gap_s > 0 else 0.0
            hs.append([up_s[k] + off_up * ipd * v_src, lo_s[k] + off_lo * ipd * v_src])
            hd.append([up_d[k] + off_up * o * ipd * v_dst, lo_d[k] + off_lo * o * ipd * v_dst])
            opening.append(o)
    return np.array(hs), np.array(hd), np.array(opening)


def _lip_line(img: np.ndarray, edges: np.ndarray, opening: np.ndarray, ipd: float, dark_inside: bool = False
              ) -> np.ndarray:
    """Return `img` with the line where closed lips meet drawn between the lips' inner edges
    (`edges`, (columns, 2 (upper, lower), 2) pixel coordinates, corner to corner), darkest where
    the mouth is shut (`opening` 0). The seam between closed lips is painted over too: the warp
    leaves a sliver of teeth there. With `dark_inside`, what shows between the lips is the dark of
    the mouth, not teeth (pursed lips)."""
    h, w = img.shape[:2]
    shut = np.ones(len(opening)) if dark_inside else np.clip(1 - opening / 0.15, 0, 1)
    if shut.max() <= 0:
        return img
    x0, y0 = np.maximum(np.floor(edges.reshape(-1, 2).min(0) - 0.1 * ipd), 0).astype(int)
    x1, y1 = np.minimum(np.ceil(edges.reshape(-1, 2).max(0) + 0.1 * ipd), (w, h)).astype(int)
    shape = (y1 - y0, x1 - x0)
    big = Image.new("L", (shape[1] * 4, shape[0] * 4), 0)
    draw = ImageDraw.Draw(big)
    width = max(1, round(LIP_LINE_WIDTH * ipd * 4))
    at = (edges - (x0, y0) + 0.5) * 4 - 0.5
    for k in range(len(edges) - 1):
        fill = int(255 * (shut[k] + shut[k + 1]) / 2)
        if fill:
            draw.polygon([tuple(at[k, 0]), tuple(at[k + 1, 0]), tuple(at[k + 1, 1]), tuple(at[k, 1])], fill=fill)
            draw.line([tuple(at[k].mean(0)), tuple(at[k + 1].mean(0))], fill=fill, width=width, joint="curve")
    dark = ndimage.gaussian_filter(np.asarray(big.resize(shape[::-1], Image.Resampling.BOX), dtype=np.float64) / 255.0,
                                   0.004 * ipd)[..., None]
    colour = LIP_LINE_RGB * (0.5 if dark_inside else 1.0)
    out = img.copy()
    crop = out[y0:y1, x0:x1].astype(np.float64)
    out[y0:y1, x0:x1] = np.clip(crop * (1 - 0.8 * dark) + 0.8 * dark * colour, 0, 255).astype(np.uint8)
    return out


def _polygon_mask(polygons: list[np.ndarray], shape: tuple[int, int], supersample: int = 4) -> np.ndarray:
    """Return a float mask (0..1, anti-aliased) covering the given pixel-coordinate polygons."""
    h, w = shape
    big = Image.new("L", (w * supersample, h * supersample), 0)
    draw = ImageDraw.Draw(big)
    for poly in polygons:
        draw.polygon([tuple(q) for q in (np.asarray(poly) + 0.5) * supersample - 0.5], fill=255)
    return np.asarray(big.resize((w, h), Image.Resampling.BOX), dtype=np.float64) / 255.0


# Each eye's ring in order: outer corner, upper lid, inner corner, lower lid.
EYE_RINGS = {"left": [36, 37, 38, 39, 40, 41], "right": [45, 44, 43, 42, 47, 46]}
LASH_RGB = np.array([45.0, 30.0, 25.0])
LASH_WIDTH = 0.016  # IPD


def _shut_eyes(img: np.ndarray, eyeball: np.ndarray, shut: np.ndarray, opened: np.ndarray,
               closure: dict[str, float], ipd: float) -> np.ndarray:
    """Return `img` (the face warped with closing lids) finished where the lids moved.

    `eyeball` is the same face warped with the lids open, `shut` / `opened` the landmarks of
    each, `closure` the share (0..1) of the way each image side's upper lid came down. Inside
    the aperture still open the eyeball shows (the lid slides over the iris, it does not squash
    it); the lid skin stretched over the eye is smoothed (the warp leaves streaks there) and the
    lid margin gets a lash line. Works on a crop around the eyes.
    """
    h, w = img.shape[:2]
    eyes = np.vstack([shut[36:48], opened[36:48]])
    x0, y0 = np.maximum(np.floor(eyes.min(0) - 0.3 * ipd), 0).astype(int)
    x1, y1 = np.minimum(np.ceil(eyes.max(0) + 0.3 * ipd), (w, h)).astype(int)
    off = np.array([x0, y0], dtype=np.float64)
    shape = (y1 - y0, x1 - x0)
    out = img[y0:y1, x0:x1].astype(np.float64)
    aperture = _polygon_mask([shut[ring] - off for ring in EYE_RINGS.values()], shape)[..., None]
    out = aperture * eyeball[y0:y1, x0:x1] + (1 - aperture) * out
    lids, lash_lines = [], []
    for side, ring in EYE_RINGS.items():
        c = closure.get(side, 0.0)
        if c <= 0.02:
            continue
        lid_shut, lid_open = shut[ring[:4]] - off, opened[ring[:4]] - off
        top = lid_open - (0, (CREASE + 0.02) * c * ipd)
        lids.append(np.vstack([lid_shut - (0, LID_BAND * 0.5 * ipd), top[::-1]]))
        lash_lines.append((lid_shut, c))
    if not lids:
        return img
    smooth = ndimage.gaussian_filter(out, sigma=(0.02 * ipd, 0.05 * ipd, 0))
    grain = ndimage.gaussian_filter(out, sigma=(0.006 * ipd, 0.006 * ipd, 0)) - ndimage.gaussian_filter(
        out, sigma=(0.03 * ipd, 0.03 * ipd, 0))
    skin = ndimage.gaussian_filter(_polygon_mask(lids, shape), 0.015 * ipd)[..., None]
    out = skin * (smooth + 0.5 * grain) + (1 - skin) * out
    lash = Image.new("L", (shape[1] * 4, shape[0] * 4), 0)
    draw = ImageDraw.Draw(lash)
    for line, c in lash_lines:
        draw.line([tuple(q) for q in (line + 0.5) * 4 - 0.5], fill=int(255 * c),
                  width=max(1, round(LASH_WIDTH * ipd * 4)), joint="curve")
    dark = ndimage.gaussian_filter(np.asarray(lash.resize(shape[::-1], Image.Resampling.BOX), dtype=np.float64) / 255.0,
                                   0.004 * ipd)[..., None]
    out = out * (1 - 0.7 * dark) + 0.7 * dark * LASH_RGB
    result = img.copy()
    result[y0:y1, x0:x1] = np.clip(out, 0, 255).astype(np.uint8)
    return result


# The nasolabial fold of the image-left half, as (landmark, dx outward, dy down) in IPD: its outer
# then inner edge, from beside the nostril down to just above the mouth corner.
FOLD = (((31, 0.36, -0.16), (48, 0.14, -0.14), (48, 0.07, 0.0)),
        ((31, 0.22, -0.16), (48, 0.02, -0.14), (48, 0.02, -0.03)))
# How deep a working half's fold is in each movement, against the astronaut's smile (1): the smile
# and the nose wrinkle deepen it, a face at rest or puffed cheeks smooth it. A paralysed half's
# fold is shallower by its droop (flat when severe).
FOLD_DEPTH = {"MV0": 0.25, "MV1": 0.6, "MV2": 0.25, "MV3": 0.15, "MV4": 1.0, "MV5": 0.8, "MV6": 0.25}


def _flatten_fold(img: np.ndarray, pts: np.ndarray, image_side: str, strength: float, ipd: float) -> np.ndarray:
    """Return `img` with the nasolabial fold of one half smoothed away by `strength` (0..1): a
    paralysed cheek has a flat fold, and a fold left where the mouth corner was draws dlib's
    corner point back up to it."""
    if strength <= 0:
        return img
    outward = -1.0 if image_side == "left" else 1.0
    edges = [[pts[i if image_side == "left" else _mirror(i)] + np.array([dx * outward, dy]) * ipd
              for i, dx, dy in edge] for edge in FOLD]
    poly = np.array(edges[0] + edges[1][::-1])
    h, w = img.shape[:2]
    x0, y0 = np.maximum(np.floor(poly.min(0) - 0.1 * ipd), 0).astype(int)
    x1, y1 = np.minimum(np.ceil(poly.max(0) + 0.1 * ipd), (w, h)).astype(int)
    crop = img[y0:y1, x0:x1].astype(np.float64)
    mask = ndimage.gaussian_filter(_polygon_mask([poly - (x0, y0)], crop.shape[:2]), 0.02 * ipd)[..., None]
    smooth = ndimage.gaussian_filter(crop, sigma=(0.035 * ipd, 0.035 * ipd, 0))
    out = img.copy()
    out[y0:y1, x0:x1] = np.clip(crop + strength * mask * (smooth - crop), 0, 255).astype(np.uint8)
    return out


WRINKLE_RGB = np.array([120.0, 80.0, 65.0])
WRINKLE_WIDTH = 0.012  # IPD


def _wrinkle_lines(movement: str, pts: np.ndarray, image_side: str) -> list[np.ndarray]:
    """Return the skin creases one working half shows in `movement`, as pixel polylines: forehead
    lines above a raised brow (MV2) and the oblique "bunny lines" on the side of a wrinkled nose
    (MV5). A paralysed half shows them in the share it still moves."""
    frame = pupil_frame(pts)
    m = (lambda i: i) if image_side == "left" else _mirror
    up = -frame.v * frame.ipd
    if movement == "MV2":
        brow = pts[[m(i) for i in (19, 20, 21)]]
        return [brow + up * k for k in (0.09, 0.13)]
    if movement == "MV5":
        out = frame.u * (-1.0 if image_side == "left" else 1.0) * frame.ipd
        starts = [pts[27] + (0.35 + 0.3 * k) * (pts[28] - pts[27]) + 0.04 * out for k in range(3)]
        return [np.array([a, a + 0.06 * out - (0.054 - 0.009 * k) * up]) for k, a in enumerate(starts)]
    return []


def _wrinkles(img: np.ndarray, lines: list[tuple[np.ndarray, float]], ipd: float) -> np.ndarray:
    """Return `img` with faint creases drawn along the given (polyline, strength 0..1) pairs: a
    soft shadow in the crease and a soft light on the skin just below it."""
    lines = [(line, k) for line, k in lines if k > 0.02]
    if not lines:
        return img
    h, w = img.shape[:2]
    every = np.vstack([line for line, _ in lines])
    x0, y0 = np.maximum(np.floor(every.min(0) - 0.05 * ipd), 0).astype(int)
    x1, y1 = np.minimum(np.ceil(every.max(0) + 0.05 * ipd), (w, h)).astype(int)
    if x0 >= x1 or y0 >= y1:
        return img
    shape = (y1 - y0, x1 - x0)
    big = Image.new("L", (shape[1] * 4, shape[0] * 4), 0)
    draw = ImageDraw.Draw(big)
    for line, k in lines:
        draw.line([tuple((p - (x0, y0) + 0.5) * 4 - 0.5) for p in line], fill=int(255 * min(k, 1.0)),
                  width=max(1, round(WRINKLE_WIDTH * ipd * 4)), joint="curve")
    drawn = np.asarray(big.resize(shape[::-1], Image.Resampling.BOX), dtype=np.float64) / 255.0
    crease = ndimage.gaussian_filter(drawn, 0.008 * ipd)
    light = ndimage.shift(crease, (0.015 * ipd, 0), order=1)[..., None]
    crease = crease[..., None]
    out = img.copy()
    crop = out[y0:y1, x0:x1].astype(np.float64)
    crop = crop * (1 - 0.3 * crease) + 0.3 * crease * WRINKLE_RGB
    out[y0:y1, x0:x1] = np.clip(crop + 0.12 * light * (255 - crop), 0, 255).astype(np.uint8)
    return out


@dataclass(frozen=True)
class SyntheticImage:
    """One synthetic photo: JPEG bytes, its hidden true class and what made it."""

    jpeg: bytes
    subject: str
    movement: str
    label: str
    mirrored: bool
    source: str
    seed: int


def subject_landmarks(rng: np.random.Generator, pts: np.ndarray, ipd: float) -> np.ndarray:
    """Return per-subject (68, 2) displacements: symmetric shape jitter plus a little natural asymmetry."""
    mid = (pts[36:42].mean(0) + pts[42:48].mean(0)) / 2
    d = np.zeros((68, 2))
    # Symmetric: wider/narrower face, eyes, mouth; longer/shorter lower face.
    widen = rng.normal(0, 0.04)
    d[:, 0] += (pts[:, 0] - mid[0]) * widen
    stretch = rng.normal(0, 0.04)
    d[:, 1] += np.clip(pts[:, 1] - mid[1], 0, None) * stretch
    mouth_w = rng.normal(0, 0.05)
    d[48:68, 0] += (pts[48:68, 0] - mid[0]) * mouth_w
    brow_h = rng.normal(0, 0.03) * ipd
    d[17:27, 1] += brow_h
    # Natural asymmetry: no face is perfectly symmetric. One brow and one mouth corner sit a little
    # higher, the nose is a little off the midline, and every point is off by a trace.
    brow_tilt, mouth_tilt, nose_off = rng.normal(0, NATURAL_ASYMMETRY, 3) * ipd
    d[17:22, 1] += brow_tilt / 2
    d[22:27, 1] -= brow_tilt / 2
    for image_side, sign in (("left", 0.5), ("right", -0.5)):
        idx, weight = _group_weights("mouth", pts, image_side)
        d[idx, 1] += sign * mouth_tilt * weight
    d[27:36, 0] += nose_off
    d += rng.normal(0, NATURAL_ASYMMETRY / 5 * ipd, size=(68, 2))
    return d


def render_face(movement: str, label: str, *, mirrored: bool, seed: int, subject_seed: int,
                scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Return (RGB image, the 68 landmark positions the warp aimed for) of one synthetic photo."""
    canvas, pts, offset = _base()
    w, h = (CROP[2] - CROP[0]) * UPSCALE, (CROP[3] - CROP[1]) * UPSCALE
    ipd = _ipd(pts)
    srng = np.random.default_rng(subject_seed)
    prng = np.random.default_rng(seed)
    d = subject_landmarks(srng, pts, ipd) + rest(pts, ipd)
    side, severity = side_and_degree(label)
    # Patient side -> image side: a mirrored photo shows the patient's left on the image's left.
    affected = None if side is None else ("left" if (side == "L") == mirrored else "right")
    share = {s: (AMPLITUDE[severity] if s == affected else 1.0) for s in ("left", "right")}
    closure = {s: (EYE_CLOSURE[severity] if s == affected else 1.0) if movement == "MV1" else 0.0
               for s in ("left", "right")}
    for image_side in ("left", "right"):
        d += share[image_side] * movement_action(movement, pts, image_side, ipd)
        if image_side == affected:
            d += DROOP[severity] * droop(pts, image_side, ipd)
    # The lips come together as far as the movement lets each half (a paralysed half opens less).
    side_closed, middle_closed = LIPS_CLOSED[movement]
    opens = {s: PASSIVE_OPENING + (1 - PASSIVE_OPENING) * share[s] for s in ("left", "right")}
    lip_moves = sum(lip_closure(pts + d, s, 1 - opens[s] * (1 - side_closed), 1 - opens[s] * (1 - middle_closed))
                    for s in ("left", "right"))
    opened = pts + d + lip_moves
    # The upper lid comes down towards the lower lid where droop and the movement left it.
    moved = opened + sum(closure[s] * eye_closure(opened, s) for s in ("left", "right"))
    # Per-photo pose: a small similarity transform about the face centre.
    centre = pts.mean(0)
    roll_sd, zoom_sd, shift_sd = POSE_SD
    angle = np.deg2rad(prng.normal(0, roll_sd))
    zoom = scale * (1 + prng.normal(0, zoom_sd))
    shift = prng.normal(0, shift_sd, size=2) * (w, h)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) * zoom

    def pose(p):
        return (p - centre) @ rot.T + centre + shift

    anchors = _anchors(w, h, reach=0.8 / min(scale, 1.0))  # a distant shot shrinks them: still round the frame

    def controls(target):
        helpers_src, helpers_dst = _helper_points(pts, target, ipd)
        lips_src, lips_dst, _ = _lip_edges(pts, target, ipd)
        return (np.vstack([pts, helpers_src, lips_src.reshape(-1, 2), anchors]),
                pose(np.vstack([target, helpers_dst, lips_dst.reshape(-1, 2), anchors])))

    def warp_to(target):
        src, dst = controls(target)
        # Triangles of the face with its lips as far apart as in the astronaut's smile: between
        # closed lips no triangle may reach from one lip across the teeth to the other.
        layout = Delaunay(controls(target - lip_moves)[1]).simplices
        mouth = dst[48:68]
        lo, hi = mouth.min(0) - 0.05 * ipd * zoom, mouth.max(0) + 0.05 * ipd * zoom
        return _warp(canvas, src, dst, (h, w), offset, simplices=layout, exact=(*lo, *hi))

    img = warp_to(moved)
    for image_side in ("left", "right"):
        depth = FOLD_DEPTH[movement] * (1 - DROOP[severity] if image_side == affected else 1.0)
        img = _flatten_fold(img, pose(moved), image_side, 1 - depth, ipd * zoom)
    img = _wrinkles(img, [(pose(line), share[s]) for s in ("left", "right")
                          for line in _wrinkle_lines(movement, moved, s)], ipd * zoom)
    _, lips, opening = _lip_edges(pts, moved, ipd)
    corners = np.repeat(moved[[60, 64]][:, None], 2, axis=1)
    lips = np.concatenate([corners[:1], lips, corners[1:]])
    img = _lip_line(img, pose(lips.reshape(-1, 2)).reshape(lips.shape), np.r_[0.0, opening, 0.0], ipd * zoom,
                    dark_inside=movement in DARK_MOUTH)
    if movement == "MV1":
        img = _shut_eyes(img, warp_to(opened), pose(moved), pose(opened), closure, ipd * zoom)
    # Colour and light: per-subject skin tone shift, per-photo exposure.
    gain = np.clip(srng.normal(1, 0.06, 3) * prng.normal(1, 0.04), 0.75, 1.25)
    gamma = float(np.clip(prng.normal(1, 0.06), 0.8, 1.2))
    levels = np.clip(255 * (np.arange(256)[:, None] / 255.0) ** gamma * gain, 0, 255).astype(np.uint8)
    img = np.stack([levels[img[..., c], c] for c in range(3)], axis=-1)
    return img, pose(moved)


def make_image(subject: str, movement: str, label: str, *, mirrored: bool, seed: int,
               subject_seed: int, source: str = "hospital", quality: int = 92,
               blur: float = 0.0, scale: float = 1.0) -> SyntheticImage:
    """Render one synthetic photo of `subject` doing `movement` at class `label`; return it.

    `subject_seed` fixes the subject's face; `seed` the per-photo variation (pose, light).
    `blur` (Gaussian sigma, pixels) and `scale` (< 1 shrinks the face inside the frame) make
    the low-quality photos that the export keeps out of validation and test.
    """
    img, _ = render_face(movement, label, mirrored=mirrored, seed=seed, subject_seed=subject_seed, scale=scale)
    pil = Image.fromarray(img)
    if blur > 0:
        pil = pil.filter(ImageFilter.GaussianBlur(blur))
    buf = io.BytesIO()
    pil.save(buf, "JPEG", quality=quality)
    return SyntheticImage(buf.getvalue(), subject, movement, label, mirrored, source, seed)




def contact_sheet(labels: tuple[str, ...] = ("N", "L2", "R3"), movements: tuple[str, ...] = MOVEMENTS, *,
                  subject_seed: int = 3, seed: int = 7, tile: int = 150, mirrored: bool = False) -> Image.Image:
    """Return a contact sheet of one synthetic subject: a row per class in `labels`, a column per
    movement, each photo cropped to the face, `tile` pixels wide, under a SYNTHETIC banner. Sides
    are the patient's (a photo that is not `mirrored` shows the patient's left on the image's right)."""
    from PIL import ImageFont

    font = ImageFont.load_default(size=max(10, tile // 11))
    crop_w, crop_h = 420, 500  # of the 540 x 648 photo, round the face
    th = round(tile * crop_h / crop_w)
    label_w, head_h, banner_h = round(tile * 0.9), round(tile * 0.22), round(tile * 0.24)
    sheet = Image.new("RGB", (label_w + tile * len(movements), banner_h + head_h + th * len(labels)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.rectangle((0, 0, sheet.width, banner_h - 1), fill=(180, 20, 20))
    draw.text((8, banner_h // 2), f"SYNTHETIC ({GENERATOR}): scikit-image's astronaut warped by labeling/demo/synthetic.py, "
              "not a patient", fill="white", font=font, anchor="lm")
    for c, mv in enumerate(movements):
        draw.text((label_w + c * tile + tile // 2, banner_h + head_h // 2), f"{mv} {movement_phrase(mv)}", fill="black",
                  font=font, anchor="mm")
    for r, label in enumerate(labels):
        y = banner_h + head_h + r * th
        draw.text((6, y + th // 2), f"{label}\n{CLASS_WORDS[label]}", fill="black", font=font, anchor="lm")
        for c, mv in enumerate(movements):
            img, pts = render_face(mv, label, mirrored=mirrored, seed=seed, subject_seed=subject_seed)
            cx, cy = pts[27:68].mean(0)
            x0 = int(np.clip(cx - crop_w / 2, 0, img.shape[1] - crop_w))
            y0 = int(np.clip(cy - crop_h * 0.45, 0, img.shape[0] - crop_h))
            face = Image.fromarray(img[y0:y0 + crop_h, x0:x0 + crop_w]).resize((tile, th), Image.Resampling.LANCZOS)
            sheet.paste(face, (label_w + c * tile, y))
    return sheet


def subject_plan(n_subjects: int, seed: int) -> list[dict]:
    """Return one dict per synthetic subject: code, class, source, mirrored, cohort, seeds.

    Classes cycle N, L1, L2, L3, R1, R2, R3 so every class is present from 7 subjects on; N
    subjects are controls. A patient keeps one side and one severity for all movements, as in
    the clinic.
    """
    rng = np.random.default_rng(seed)
    plan = []
    for i in range(n_subjects):
        label = CLASSES[i % len(CLASSES)]
        source = "mobile" if rng.random() < 0.3 else "hospital"
        plan.append({"code": f"SYN-{seed:04d}-{i + 1:04d}", "label": label, "source": source,
                     "mirrored": source == "mobile", "cohort": "control" if label == "N" else "patient",
                     "sex": str(rng.choice(["F", "M"])), "age_group": str(rng.choice(["<40", "40-65", ">65"])),
                     "subject_seed": int(rng.integers(2**31))})
    return plan


def movement_label(subject_label: str, movement: str, rng: np.random.Generator) -> str:
    """Return the class a patient's photo shows for one movement.

    Mild (L1/R1) paralysis barely shows at rest (paper Table 3), so a mild patient's MV0 is N;
    otherwise the subject's class holds for every movement.
    """
    if movement == "MV0" and subject_label[-1:] == "1":
        return "N"
    return subject_label


__all__ = ["GENERATOR", "MOVEMENTS", "SyntheticImage", "base_face", "contact_sheet", "make_image", "movement_label",
           "render_face", "subject_plan"]
