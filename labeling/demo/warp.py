"""The SYNTHETIC faces' base portrait and warp: the astronaut made symmetric, and a piecewise-affine
warp with helper points that keep lid margins and brows in one piece (labeling/demo/synthetic.py)."""
from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage
from scipy.spatial import Delaunay

from asymmetry.indices import MIRROR_ORDER, pupil_frame
from labeling.demo.anatomy import LID_MEETS, ipd_of, mirror

# Portrait crop of skimage.data.astronaut() around the face, upscaled 4x to 540x648 (the face
# ~175 px between the pupils: dlib's whole-pixel points are then ~0.6% of that distance).
CROP = (157, 47, 292, 209)
UPSCALE = 4
MARGIN = 16  # astronaut pixels round the crop in which the face is found and made symmetric
BACKDROP_BLUR = 4  # astronaut pixels: how far out of focus the scene beyond that margin is


@functools.lru_cache(maxsize=1)
def base_canvas() -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
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
    helpers_src, helpers_dst = helper_points(points, sym, ipd_of(sym))
    anchors = anchor_points(rgb.shape[1], rgb.shape[0])
    face = warp_image(rgb, np.vstack([points, helpers_src, anchors]), np.vstack([sym, helpers_dst, anchors]),
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
    canvas, pts, (x, y) = base_canvas()
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


def warp_image(source: np.ndarray, src: np.ndarray, dst: np.ndarray, shape: tuple[int, int],
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


def anchor_points(w: int, h: int, n: int = 24, reach: float = 0.8) -> np.ndarray:
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
    lower = LID_MEETS[upper] if upper in LID_MEETS else mirror(LID_MEETS[mirror(upper)])
    gap_s, gap_d = src[lower, 1] - src[upper, 1], dst[lower, 1] - dst[upper, 1]
    return float(np.clip(1 - gap_d / gap_s, 0, 1)) if gap_s > 0 else 0.0


def helper_points(src: np.ndarray, dst: np.ndarray, ipd: float) -> tuple[np.ndarray, np.ndarray]:
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
