"""The anatomy of the SYNTHETIC faces: what each half-face does in each movement, how a paralysed
half droops, how eyes and lips close, as moves of dlib's 68 points (labeling/demo/synthetic.py
renders them)."""
from __future__ import annotations


import numpy as np

from asymmetry.indices import MIRROR_ORDER, pupil_frame


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


def mirror(i: int) -> int:
    """Return the dlib number of point `i`'s mirror partner (itself on the midline)."""
    return int(MIRROR_ORDER[i])


def group_weights(group: str | int, pts: np.ndarray, image_side: str) -> tuple[list[int], np.ndarray]:
    """Return the points of `group` (a GROUPS name or one dlib point) on one image side and the
    share of the group's move each gets."""
    if isinstance(group, int):
        point = group if image_side == "left" else mirror(group)
        return [point], np.array([0.5 if point == mirror(point) else 1.0])
    idx = GROUPS[group] if image_side == "left" else [mirror(i) for i in GROUPS[group]]
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
        idx, weight = group_weights(group, pts, image_side)
        d[idx] += weight[:, None] * (dx * outward + dy * frame.v) * ipd
    return d


# Upper-lid point -> the lower-lid point it meets when the eye closes (image-left eye).
LID_MEETS = {37: 41, 38: 40}
CLOSED_GAP = 0.01  # a shut eye's lids in the warp, IPD apart (a zero gap would fold triangles)
LIPS_GAP = 0.004  # closed lips in the warp, IPD apart (their seam is painted over: `lip_line`)


def eye_closure(pts: np.ndarray, image_side: str) -> np.ndarray:
    """Return (68, 2) displacements bringing the upper lid of one eye down onto its lower lid."""
    d = np.zeros((68, 2))
    gap = CLOSED_GAP * ipd_of(pts)
    for upper, lower in LID_MEETS.items():
        if image_side == "right":
            upper, lower = mirror(upper), mirror(lower)
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
        weight = 0.5 if upper == mirror(upper) else 1.0
        if image_side == "right":
            upper, lower = mirror(upper), mirror(lower)
        gap = float((pts[lower] - pts[upper]) @ frame.v) - gap_closed
        if gap <= 0:
            continue
        for point, down in ((upper, UPPER_LIP_SHARE * gap), (lower, -(1 - UPPER_LIP_SHARE) * gap)):
            source = point if image_side == "left" else mirror(point)
            for p, share in ((source, 1.0),) + LIP_CARRIES[source]:
                q = p if image_side == "left" else mirror(p)
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


def ipd_of(pts: np.ndarray) -> float:
    """Return the inter-pupil distance of 68 landmarks (pixels): the generator's unit of movement,
    between the means of the eye contours (asymmetry.indices.pupil_frame)."""
    return pupil_frame(pts).ipd
