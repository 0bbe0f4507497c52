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

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy.spatial import Delaunay

from labeling.vocabulary import CLASS_WORDS, CLASSES, MOVEMENTS, movement_phrase, side_and_degree
from labeling.demo.anatomy import (DARK_MOUTH, LIPS_CLOSED, PASSIVE_OPENING, droop, eye_closure, group_weights,
                                   ipd_of, lip_closure, movement_action, rest)
from labeling.demo.painting import FOLD_DEPTH, flatten_fold, lip_edges, lip_line, shut_eyes, wrinkle_lines, wrinkles
from labeling.demo.warp import CROP, UPSCALE, anchor_points, base_canvas, base_face, helper_points, warp_image

GENERATOR = "astronaut-warp-v3"

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
        idx, weight = group_weights("mouth", pts, image_side)
        d[idx, 1] += sign * mouth_tilt * weight
    d[27:36, 0] += nose_off
    d += rng.normal(0, NATURAL_ASYMMETRY / 5 * ipd, size=(68, 2))
    return d


def render_face(movement: str, label: str, *, mirrored: bool, seed: int, subject_seed: int,
                scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Return (RGB image, the 68 landmark positions the warp aimed for) of one synthetic photo."""
    canvas, pts, offset = base_canvas()
    w, h = (CROP[2] - CROP[0]) * UPSCALE, (CROP[3] - CROP[1]) * UPSCALE
    ipd = ipd_of(pts)
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

    anchors = anchor_points(w, h, reach=0.8 / min(scale, 1.0))  # a distant shot shrinks them: still round the frame

    def controls(target):
        helpers_src, helpers_dst = helper_points(pts, target, ipd)
        lips_src, lips_dst, _ = lip_edges(pts, target, ipd)
        return (np.vstack([pts, helpers_src, lips_src.reshape(-1, 2), anchors]),
                pose(np.vstack([target, helpers_dst, lips_dst.reshape(-1, 2), anchors])))

    def warp_to(target):
        src, dst = controls(target)
        # Triangles of the face with its lips as far apart as in the astronaut's smile: between
        # closed lips no triangle may reach from one lip across the teeth to the other.
        layout = Delaunay(controls(target - lip_moves)[1]).simplices
        mouth = dst[48:68]
        lo, hi = mouth.min(0) - 0.05 * ipd * zoom, mouth.max(0) + 0.05 * ipd * zoom
        return warp_image(canvas, src, dst, (h, w), offset, simplices=layout, exact=(*lo, *hi))

    img = warp_to(moved)
    for image_side in ("left", "right"):
        depth = FOLD_DEPTH[movement] * (1 - DROOP[severity] if image_side == affected else 1.0)
        img = flatten_fold(img, pose(moved), image_side, 1 - depth, ipd * zoom)
    img = wrinkles(img, [(pose(line), share[s]) for s in ("left", "right")
                          for line in wrinkle_lines(movement, moved, s)], ipd * zoom)
    _, lips, opening = lip_edges(pts, moved, ipd)
    corners = np.repeat(moved[[60, 64]][:, None], 2, axis=1)
    lips = np.concatenate([corners[:1], lips, corners[1:]])
    img = lip_line(img, pose(lips.reshape(-1, 2)).reshape(lips.shape), np.r_[0.0, opening, 0.0], ipd * zoom,
                    dark_inside=movement in DARK_MOUTH)
    if movement == "MV1":
        img = shut_eyes(img, warp_to(opened), pose(moved), pose(opened), closure, ipd * zoom)
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
