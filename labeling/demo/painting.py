"""What the warp cannot do on the SYNTHETIC faces, painted: the lips' inner edges and the line where
closed lips meet, shut eyelids and lashes, the nasolabial fold, forehead lines and nose creases
(labeling/demo/synthetic.py)."""
from __future__ import annotations


import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from asymmetry.indices import pupil_frame
from labeling.demo.anatomy import mirror
from labeling.demo.warp import CREASE, LID_BAND


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
        ids = [i if image_side == "left" else mirror(i) for i in LIP_LINES[line]]
        out.append(np.array([pts[ids[a]] + t * (pts[ids[b]] - pts[ids[a]]) for a, b, t, _, _ in cols]))
    return out[0], out[1]


def lip_edges(src: np.ndarray, dst: np.ndarray, ipd: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def lip_line(img: np.ndarray, edges: np.ndarray, opening: np.ndarray, ipd: float, dark_inside: bool = False
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


def polygon_mask(polygons: list[np.ndarray], shape: tuple[int, int], supersample: int = 4) -> np.ndarray:
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


def shut_eyes(img: np.ndarray, eyeball: np.ndarray, shut: np.ndarray, opened: np.ndarray,
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
    aperture = polygon_mask([shut[ring] - off for ring in EYE_RINGS.values()], shape)[..., None]
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
    skin = ndimage.gaussian_filter(polygon_mask(lids, shape), 0.015 * ipd)[..., None]
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


def flatten_fold(img: np.ndarray, pts: np.ndarray, image_side: str, strength: float, ipd: float) -> np.ndarray:
    """Return `img` with the nasolabial fold of one half smoothed away by `strength` (0..1): a
    paralysed cheek has a flat fold, and a fold left where the mouth corner was draws dlib's
    corner point back up to it."""
    if strength <= 0:
        return img
    outward = -1.0 if image_side == "left" else 1.0
    edges = [[pts[i if image_side == "left" else mirror(i)] + np.array([dx * outward, dy]) * ipd
              for i, dx, dy in edge] for edge in FOLD]
    poly = np.array(edges[0] + edges[1][::-1])
    h, w = img.shape[:2]
    x0, y0 = np.maximum(np.floor(poly.min(0) - 0.1 * ipd), 0).astype(int)
    x1, y1 = np.minimum(np.ceil(poly.max(0) + 0.1 * ipd), (w, h)).astype(int)
    crop = img[y0:y1, x0:x1].astype(np.float64)
    mask = ndimage.gaussian_filter(polygon_mask([poly - (x0, y0)], crop.shape[:2]), 0.02 * ipd)[..., None]
    smooth = ndimage.gaussian_filter(crop, sigma=(0.035 * ipd, 0.035 * ipd, 0))
    out = img.copy()
    out[y0:y1, x0:x1] = np.clip(crop + strength * mask * (smooth - crop), 0, 255).astype(np.uint8)
    return out


WRINKLE_RGB = np.array([120.0, 80.0, 65.0])
WRINKLE_WIDTH = 0.012  # IPD


def wrinkle_lines(movement: str, pts: np.ndarray, image_side: str) -> list[np.ndarray]:
    """Return the skin creases one working half shows in `movement`, as pixel polylines: forehead
    lines above a raised brow (MV2) and the oblique "bunny lines" on the side of a wrinkled nose
    (MV5). A paralysed half shows them in the share it still moves."""
    frame = pupil_frame(pts)
    m = (lambda i: i) if image_side == "left" else mirror
    up = -frame.v * frame.ipd
    if movement == "MV2":
        brow = pts[[m(i) for i in (19, 20, 21)]]
        return [brow + up * k for k in (0.09, 0.13)]
    if movement == "MV5":
        out = frame.u * (-1.0 if image_side == "left" else 1.0) * frame.ipd
        starts = [pts[27] + (0.35 + 0.3 * k) * (pts[28] - pts[27]) + 0.04 * out for k in range(3)]
        return [np.array([a, a + 0.06 * out - (0.054 - 0.009 * k) * up]) for k, a in enumerate(starts)]
    return []


def wrinkles(img: np.ndarray, lines: list[tuple[np.ndarray, float]], ipd: float) -> np.ndarray:
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
