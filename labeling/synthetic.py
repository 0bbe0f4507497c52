"""Synthetic FNP faces: a real face (scikit-image's astronaut) warped to a known class per movement.

Everything this module makes is synthetic and must be marked so wherever it appears. It exists
so the workflow can be tried and tested end to end without any patient photo.

How: dlib's landmarks of the base face are moved (a) symmetrically and a little asymmetrically
per subject (jitter, so subjects differ), (b) by the movement's action on both sides of the face,
the paralysed side doing less of it as severity rises, and (c) by droop of the paralysed side
(brow, lower lid, mouth corner). A piecewise-affine warp over a Delaunay triangulation of the
moved points renders the face; eye closure (MV1) also covers the aperture with lid skin, since
warping the lids alone does not move dlib's lid points. Sides are the PATIENT's: the image side
they land on follows the `mirrored` flag (DESIGN §2).
"""
from __future__ import annotations

import functools
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage
from scipy.interpolate import LinearNDInterpolator

from db.migrations import CLASSES, MOVEMENTS

GENERATOR = "astronaut-warp-v1"
# Portrait crop of skimage.data.astronaut() around the face, upscaled 3x to 540x648.
CROP = (135, 25, 315, 241)
UPSCALE = 3

# dlib 68-point indices by IMAGE side (point 36 is the image-left eye corner).
IMG_LEFT = {
    "brow": [17, 18, 19, 20, 21], "upper_lid": [37, 38], "lower_lid": [40, 41], "eye": [36, 37, 38, 39, 40, 41],
    "jaw": [1, 2, 3, 4, 5, 6], "ala": [31, 32], "corner": [48], "lip_near": [49, 59, 60, 67, 61],
    "inner_brow": [20, 21],
}
MIRROR = {i: 16 - i for i in range(17)}
MIRROR.update({17 + i: 26 - i for i in range(10)})
MIRROR.update({36: 45, 37: 44, 38: 43, 39: 42, 40: 47, 41: 46, 31: 35, 32: 34, 48: 54, 49: 53, 50: 52, 59: 55,
               58: 56, 60: 64, 61: 63, 67: 65})
MIRROR.update({v: k for k, v in list(MIRROR.items())})
for c in (27, 28, 29, 30, 33, 51, 57, 62, 66, 8):
    MIRROR[c] = c

# Paralysed side: share of the movement it still performs, and its droop, by severity 0..3.
AMPLITUDE = (1.0, 0.6, 0.3, 0.05)
DROOP = (0.0, 0.3, 0.65, 1.0)


def class_side_severity(label: str) -> tuple[str | None, int]:
    """Return ('L'|'R'|None, 0..3) for a class name."""
    return (None, 0) if label == "N" else (label[0], int(label[1]))


def _side_points(group: str, image_side: str) -> list[int]:
    pts = IMG_LEFT[group]
    return pts if image_side == "left" else [MIRROR[i] for i in pts]


def movement_action(movement: str, pts: np.ndarray, image_side: str, ipd: float) -> np.ndarray:
    """Return (68, 2) displacements (pixels) of one half-face doing `movement` fully."""
    d = np.zeros((68, 2))
    out = -1.0 if image_side == "left" else 1.0  # outward x direction for this half
    u = ipd

    def move(group, dx, dy):
        for i in _side_points(group, image_side):
            d[i] += (dx * out * u, dy * u)

    if movement == "MV1":  # eyes closed: the upper lid meets the lower lid
        move("brow", 0, 0.03)  # the lids themselves are painted closed by _close_eyes
    elif movement == "MV2":  # eyebrows raised
        move("brow", 0, -0.25)  # lids left as they are: a wider healthy eye would read as "less closed"
    elif movement == "MV3":  # cheeks puffed
        move("jaw", 0.15, 0)
        move("corner", -0.06, -0.03)
        move("lip_near", -0.02, 0)
    elif movement == "MV4":  # grinning
        move("corner", 0.15, -0.16)
        move("lip_near", 0.07, -0.08)
        move("lower_lid", 0, -0.03)
        move("ala", 0.02, -0.02)
    elif movement == "MV5":  # nose wrinkled
        move("ala", 0.04, -0.12)
        move("inner_brow", 0, 0.08)
        move("lower_lid", 0, -0.04)
        move("corner", 0, -0.03)
    elif movement == "MV6":  # whistling: lips pucker towards the midline
        move("corner", -0.22, -0.02)
        move("lip_near", -0.10, -0.01)
    return d


def droop(pts: np.ndarray, image_side: str, ipd: float) -> np.ndarray:
    """Return (68, 2) displacements of a fully paralysed half-face at rest (sagging tissue)."""
    d = np.zeros((68, 2))
    u = ipd
    for group, dy in (("brow", 0.15), ("lower_lid", 0.05), ("corner", 0.18), ("lip_near", 0.09), ("ala", 0.06)):
        for i in _side_points(group, image_side):
            d[i, 1] += dy * u
    return d


@functools.lru_cache(maxsize=1)
def base_face() -> tuple[np.ndarray, np.ndarray]:
    """Return the base portrait (RGB, 648x540) and its dlib landmarks (68, 2); computed once."""
    from skimage.data import astronaut

    from asymmetry.landmarks import detect_landmarks

    x0, y0, x1, y1 = CROP
    img = Image.fromarray(astronaut()).crop(CROP)
    img = img.resize(((x1 - x0) * UPSCALE, (y1 - y0) * UPSCALE), Image.Resampling.LANCZOS)
    img = img.filter(ImageFilter.UnsharpMask(radius=2, percent=60, threshold=2))
    rgb = np.asarray(img)
    lm = detect_landmarks(rgb)
    if not lm.ok:  # pragma: no cover - the packaged image is fixed
        raise RuntimeError(f"base face: {lm.status}")
    return rgb, lm.points


def _ipd(pts: np.ndarray) -> float:
    return float(np.linalg.norm(pts[36:42].mean(0) - pts[42:48].mean(0)))


def _warp(rgb: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Piecewise-affine warp moving control points `src` to `dst`; return the warped image.

    The backward map (output pixel -> source pixel) is linear on each Delaunay triangle of
    `dst`, i.e. piecewise affine; it is evaluated on a coarse grid and interpolated up.
    """
    h, w = rgb.shape[:2]
    step = 4
    gy, gx = np.mgrid[0:h + step:step, 0:w + step:step].astype(np.float64)
    interp = LinearNDInterpolator(dst, src - dst)
    disp = interp(np.column_stack([gx.ravel(), gy.ravel()])).reshape(gx.shape + (2,))
    disp = np.nan_to_num(disp)
    zoom = ((h + step) / gx.shape[0], (w + step) / gx.shape[1])
    dx = ndimage.zoom(disp[..., 0], zoom, order=1)[:h, :w]
    dy = ndimage.zoom(disp[..., 1], zoom, order=1)[:h, :w]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    coords = [yy + dy, xx + dx]
    out = np.empty_like(rgb)
    for c in range(3):
        out[..., c] = ndimage.map_coordinates(rgb[..., c], coords, order=1, mode="reflect")
    return out


def _anchors(w: int, h: int, n: int = 8) -> np.ndarray:
    """Fixed points on and beyond the frame so the warp stays local to the face."""
    t = np.linspace(-0.1, 1.1, n)
    ring = [(x * w, -0.1 * h) for x in t] + [(x * w, 1.1 * h) for x in t]
    ring += [(-0.1 * w, y * h) for y in t[1:-1]] + [(1.1 * w, y * h) for y in t[1:-1]]
    return np.array(ring)


def _helper_points(pts: np.ndarray, ipd: float) -> np.ndarray:
    """Extra control points (forehead above each brow, cheeks) that ride along with the face."""
    fore = pts[17:27] + (0, -0.35 * ipd)
    cheek_l = (pts[2] + pts[31]) / 2 + (0, -0.1 * ipd)
    cheek_r = (pts[14] + pts[35]) / 2 + (0, -0.1 * ipd)
    return np.vstack([fore, cheek_l, cheek_r])


def _lid_curve(pts: np.ndarray, idx: list[int], xs: np.ndarray) -> np.ndarray:
    """Return the y of the lid polyline through points `idx` (ordered by x) at each x."""
    p = pts[idx]
    order = np.argsort(p[:, 0])
    return np.interp(xs, p[order, 0], p[order, 1])


def _close_eyes(img: np.ndarray, pts: np.ndarray, closure: dict[str, float]) -> np.ndarray:
    """Paint each eye closed by `closure[image_side]` (0 = open, 1 = shut) with lid skin.

    The aperture between the upper lid and the new lid edge is filled with skin interpolated
    from just above and below the eye, and a lash line is drawn at the edge, so dlib's lid
    points follow (warping the lids alone did not move them; DESIGN §4).
    """
    out = img.astype(np.float64)
    h, w = img.shape[:2]
    for image_side, ring in (("left", [36, 37, 38, 39, 40, 41]), ("right", [42, 43, 44, 45, 46, 47])):
        c = float(np.clip(closure.get(image_side, 0.0), 0, 1))
        if c < 0.02:
            continue
        e = pts[ring]
        eye_w = e[3, 0] - e[0, 0]
        pad = 0.15 * eye_w
        x0, x1 = int(max(e[0, 0] - pad, 0)), int(min(e[3, 0] + pad, w - 1))
        xs = np.arange(x0, x1 + 1, dtype=np.float64)
        upper = _lid_curve(pts, [ring[0], ring[1], ring[2], ring[3]], xs)
        lower = _lid_curve(pts, [ring[0], ring[5], ring[4], ring[3]], xs)
        top = int(max(upper.min() - 0.22 * eye_w, 1))
        bottom = int(min(lower.max() + 0.12 * eye_w, h - 2))
        edge = upper - 0.06 * eye_w + c * (lower - upper + 0.06 * eye_w)
        above = out[max(top - 3, 0):top, x0:x1 + 1].mean(axis=0)
        below = out[bottom:bottom + 3, x0:x1 + 1].mean(axis=0)
        # Horizontal feathering: full inside the eye's corners, fading over the padding.
        inside = np.clip(np.minimum(xs - (e[0, 0] - pad), (e[3, 0] + pad) - xs) / pad, 0, 1)
        for j, x in enumerate(xs.astype(int)):
            rows = np.arange(top, bottom + 1)
            t = (rows - top) / max(bottom - top, 1)
            skin = (1 - t)[:, None] * above[j] + t[:, None] * below[j]
            skin *= (1 - 0.10 * np.exp(-((rows - edge[j]) / (0.08 * eye_w)) ** 2))[:, None]  # lid crease shadow
            fade_in = np.clip((rows - top) / (0.35 * max(edge[j] - top, 1)), 0, 1)  # blend into the lid above
            covered = (np.clip((edge[j] - rows) / 1.5 + 0.5, 0, 1) * fade_in)[:, None] * inside[j]
            if c >= 0.98:
                covered = np.clip(covered + np.clip((rows - edge[j]) / 2.0, 0, 1)[:, None] * inside[j], 0, 1)
            out[rows, x] = covered * skin + (1 - covered) * out[rows, x]
            if e[0, 0] + 0.05 * eye_w <= x <= e[3, 0] - 0.05 * eye_w:
                lash = np.exp(-((rows - edge[j]) / (0.035 * eye_w)) ** 2)[:, None]
                out[rows, x] = out[rows, x] * (1 - 0.65 * lash)
    return np.clip(out, 0, 255).astype(np.uint8)


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
    # Natural asymmetry: healthy faces are not perfectly symmetric (about 0.5% of the IPD per point).
    d += rng.normal(0, 0.004 * ipd, size=(68, 2))
    return d


def make_image(subject: str, movement: str, label: str, *, mirrored: bool, seed: int,
               subject_seed: int, source: str = "hospital", quality: int = 92,
               blur: float = 0.0, scale: float = 1.0) -> SyntheticImage:
    """Render one synthetic photo of `subject` doing `movement` at class `label`; return it.

    `subject_seed` fixes the subject's face; `seed` the per-photo variation (pose, light).
    `blur` (Gaussian sigma, pixels) and `scale` (< 1 shrinks the face inside the frame) make
    the low-quality photos that the export keeps out of validation and test.
    """
    base, pts = base_face()
    h, w = base.shape[:2]
    ipd = _ipd(pts)
    srng = np.random.default_rng(subject_seed)
    prng = np.random.default_rng(seed)
    d = subject_landmarks(srng, pts, ipd)
    side, severity = class_side_severity(label)
    # Patient side -> image side: a mirrored photo shows the patient's left on the image's left.
    affected = None if side is None else ("left" if (side == "L") == mirrored else "right")
    for image_side in ("left", "right"):
        amp = AMPLITUDE[severity] if image_side == affected else 1.0
        d += amp * movement_action(movement, pts, image_side, ipd)
        if image_side == affected:
            d += DROOP[severity] * droop(pts, image_side, ipd)
    moved = pts + d
    helpers_src = _helper_points(pts, ipd)
    helpers_dst = _helper_points(moved, ipd)
    # Per-photo pose: a small similarity transform about the face centre.
    centre = pts.mean(0)
    angle = np.deg2rad(prng.normal(0, 2.0))
    s = scale * (1 + prng.normal(0, 0.03))
    shift = prng.normal(0, 0.02, size=2) * (w, h)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) * s

    def pose(p):
        return (p - centre) @ rot.T + centre + shift

    anchors = _anchors(w, h)
    src = np.vstack([pts, helpers_src, anchors])
    dst = np.vstack([pose(moved), pose(helpers_dst), pose(anchors)])
    img = _warp(base, src, dst)
    if movement == "MV1":
        closure = {s: (AMPLITUDE[severity] if s == affected else 1.0) for s in ("left", "right")}
        img = _close_eyes(img, pose(moved), closure)
    # Colour and light: per-subject skin tone shift, per-photo exposure.
    gain = np.clip(srng.normal(1, 0.06, 3) * prng.normal(1, 0.04), 0.75, 1.25)
    gamma = float(np.clip(prng.normal(1, 0.06), 0.8, 1.2))
    img = np.clip(255 * (img / 255.0) ** gamma * gain, 0, 255).astype(np.uint8)
    pil = Image.fromarray(img)
    if blur > 0:
        pil = pil.filter(ImageFilter.GaussianBlur(blur))
    buf = io.BytesIO()
    pil.save(buf, "JPEG", quality=quality)
    return SyntheticImage(buf.getvalue(), subject, movement, label, mirrored, source, seed)


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


__all__ = ["GENERATOR", "MOVEMENTS", "SyntheticImage", "make_image", "subject_plan", "movement_label",
           "class_side_severity", "base_face"]
