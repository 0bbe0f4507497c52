"""Benchmark: our whole per-image measurement against raw dlib on the same 12 MP JPEGs.

Baseline ("raw dlib"): one pass of dlib as the product ran it before it averaged every photo with
its mirror: Pillow decode in draft mode, an exact resize to 1280 px, HOG detection on a 640 px
copy, the 68-point predictor, nothing else. Ours (asymmetry.measure.measure_photo) adds EXIF
handling, colour conversion, detection and prediction on the photo AND its mirror
(asymmetry/landmarks.py), indices and quality flags. Both run over the same files, in the same
process pool.

    .venv/bin/python bench/asymmetry.py [--images 40] [--workers 2] [--rounds 3]
"""
from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asymmetry.landmarks import ALGORITHM, dlib_models  # noqa: E402
from asymmetry.measure import measure_photo  # noqa: E402
from labeling.demo.synthetic import make_image  # noqa: E402


def make_12mp(folder: Path, n: int) -> list[Path]:
    """Write `n` synthetic 4000x3000 JPEGs (SYNTHETIC: generator faces upscaled onto a canvas)."""
    paths = []
    for i in range(n):
        face = Image.open(io.BytesIO(make_image("BENCH", f"MV{i % 7}", ["N", "L2", "R3"][i % 3], mirrored=False,
                                                seed=i, subject_seed=i % 5).jpeg))
        face = face.resize((face.width * 4, face.height * 4), Image.Resampling.BICUBIC)
        canvas = Image.new("RGB", (4000, 3000), (200, 196, 205))
        canvas.paste(face, ((4000 - face.width) // 2, (3000 - face.height) // 2))
        p = folder / f"bench-{i:03d}.jpg"
        canvas.save(p, "JPEG", quality=90)
        paths.append(p)
    return paths


# The baseline's settings: those of the one-pass landmark step the product used before.
RAW_DETECT_SIDE, RAW_PREDICT_SIDE = 640, 1280


def raw_dlib(path: str) -> int:
    """The baseline: decode, detect, predict once; return the number of points."""
    import dlib

    det, pred = dlib_models()
    img = Image.open(path)
    img.draft("RGB", (RAW_PREDICT_SIDE, RAW_PREDICT_SIDE))
    img = img.convert("RGB")
    if max(img.size) > RAW_PREDICT_SIDE:
        img.thumbnail((RAW_PREDICT_SIDE, RAW_PREDICT_SIDE), Image.Resampling.BILINEAR)
    rgb = np.asarray(img)
    k = RAW_DETECT_SIDE / max(img.size)
    small = np.asarray(img.resize((round(img.width * k), round(img.height * k)), Image.Resampling.BILINEAR))
    rects = det(small, 0)
    if not rects:
        return 0
    r = rects[0]
    big = dlib.rectangle(int(r.left() / k), int(r.top() / k), int(r.right() / k), int(r.bottom() / k))
    return len(pred(rgb, big).parts())


def ours(path: str) -> int:
    m = measure_photo(path, False)
    return 0 if m.landmarks.points is None else len(m.landmarks.points)


def timed(fn, paths, workers) -> float:
    with ProcessPoolExecutor(workers, initializer=dlib_models) as pool:
        list(pool.map(fn, paths[:workers]))  # warm: models loaded in every worker
        t = time.perf_counter()
        found = list(pool.map(fn, paths, chunksize=2))
        elapsed = time.perf_counter() - t
    assert all(found), "a face was missed"
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best of each is kept")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = [str(p) for p in make_12mp(Path(tmp), args.images)]
        base, mine = [], []
        for _ in range(args.rounds):  # interleaved, so drift hits both alike
            base.append(timed(raw_dlib, paths, args.workers))
            mine.append(timed(ours, paths, args.workers))
    b, m = min(base), min(mine)
    print(f"images: {args.images} synthetic 12 MP JPEGs (4000x3000), workers: {args.workers}")
    print(f"raw dlib : {b:6.2f} s  {args.images / b:6.1f} images/s  (one pass, detection at {RAW_DETECT_SIDE} px)")
    print(f"ours     : {m:6.2f} s  {args.images / m:6.1f} images/s  ({ALGORITHM}: photo and mirror)")
    print(f"ratio ours/raw: {m / b:.2f} (target <= 1.25); throughput target >= 20 images/s")


if __name__ == "__main__":
    main()
