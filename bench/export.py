"""Benchmark: exporting 1,000 demo images against a plain decode + crop + PNG save of the same files.

Ours: `labeling.export.dataset.export_dataset`, end to end (image states, crop boxes, flags, split and
folds, crops in a process pool, PNG writing, manifest, data card, checksums, the final rename).
Baseline: for the same photos and the same boxes, Pillow decode, one crop-and-resize to
299x299, PNG save at the same compression level, in a pool of the same size; no database, no
bookkeeping. Target: under 30 s for 1,000 images on 2 cores.

The SYNTHETIC demo project (143 subjects x 7 movements = 1,001 images, carried to final labels)
takes minutes to prepare; it is cached in --cache (default /tmp/fnp-bench-export) between runs.

    .venv/bin/python bench/export.py [--subjects 143] [--workers 2] [--cache /tmp/fnp-bench-export]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labeling.project import Project  # noqa: E402
from labeling.workflow import settings  # noqa: E402
from labeling.demo.project import carry_to_final, load_demo  # noqa: E402
from labeling.export.crops import PNG_COMPRESS_LEVEL, effective_crop_box  # noqa: E402
from labeling.export.dataset import export_dataset  # noqa: E402
from labeling.accounts.actors import SystemActor  # noqa: E402
from labeling.workflow.states import final_labels, state_counts  # noqa: E402

COORD = SystemActor("system:bench")


def prepare(cache: Path, subjects: int, workers: int) -> Path:
    """Return a data folder with the demo carried to final labels, building it once into `cache`."""
    folder = cache / f"demo-{subjects}" / "data"
    marker = folder.parent / "prepared.json"
    if marker.is_file():
        return folder
    shutil.rmtree(folder.parent, ignore_errors=True)
    project = Project.open(folder)
    db = project.db
    t = time.perf_counter()
    load_demo(db, project.store, subjects=subjects, seed=0, workers=workers, actor=COORD)
    # Every movement x class cell gets a range box, so check 2 decides every image (no 'agreed' left).
    settings.change(db, "range_min_count", 1, COORD)
    steps = carry_to_final(db, project.store, accuracy=0.9, seed=0, actor=COORD)
    marker.write_text(json.dumps({"seconds": round(time.perf_counter() - t), "steps": steps,
                                  "states": state_counts(db)}, default=str))
    db.close()
    return folder


def plain_crop(job: tuple[str, tuple, str]) -> int:
    """The baseline for one image: decode, crop-and-resize, save PNG; return the bytes written."""
    path, box, out = job
    with Image.open(path) as im:
        crop = im.convert("RGB").transform((299, 299), Image.Transform.EXTENT, box, Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    crop.save(buf, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    with open(out, "wb") as fh:
        fh.write(buf.getvalue())
    return len(buf.getvalue())


def clocks() -> tuple[float, float]:
    """Return (wall seconds, CPU seconds of this process and its finished children)."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter(), time.process_time() + kids.ru_utime + kids.ru_stime


def timed(fn) -> tuple[float, float]:
    """Run `fn`; return its (wall, CPU) seconds. CPU time barely moves when others share the machine."""
    w0, c0 = clocks()
    fn()
    w1, c1 = clocks()
    return w1 - w0, c1 - c0


def baseline(jobs: list[tuple[str, tuple, str]], workers: int) -> None:
    with ProcessPoolExecutor(workers) as pool:  # workers end with the pool, so their CPU time is counted
        written = list(pool.map(plain_crop, jobs, chunksize=8))
    assert all(written)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=143, help="143 subjects x 7 movements = 1,001 images")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache", default="/tmp/fnp-bench-export")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    t = time.perf_counter()
    folder = prepare(Path(args.cache), args.subjects, args.workers)
    print(f"prepared data folder {folder} ({time.perf_counter() - t:.0f} s; cached for the next run)")
    project = Project.open(folder)
    db = project.db
    ids = [int(i) for i in final_labels(db).image_id]
    paths = dict(db.execute("SELECT id, stored_path FROM images").fetchall())
    boxes = {i: effective_crop_box(db, i).box for i in ids}
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [(str(project.store / paths[i]), boxes[i], os.path.join(tmp, f"{i}.png")) for i in ids if boxes[i]]
        base, ours, out = [], [], {}
        for r in range(args.rounds):  # interleaved, so drift hits both alike
            base.append(timed(lambda: baseline(jobs, args.workers)))
            ours.append(timed(lambda: out.update(res=export_dataset(
                db, project.store, f"bench-{r}", out_dir=Path(tmp) / "exports", actor=COORD, workers=args.workers))))
    bw, bc = min(w for w, _ in base), min(c for _, c in base)
    mw, mc = min(w for w, _ in ours), min(c for _, c in ours)
    n = out["res"].images
    print(f"images: {n} exported ({len(ids)} with a final label), SYNTHETIC demo, workers: {args.workers}, "
          f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}; best of {args.rounds}")
    print(f"baseline (decode + crop + PNG save): {bw:6.2f} s wall {len(jobs) / bw:6.1f} images/s, {bc:6.2f} s CPU")
    print(f"ours (export_dataset, end to end)  : {mw:6.2f} s wall {n / mw:6.1f} images/s, {mc:6.2f} s CPU")
    print(f"ratio ours/baseline: {mw / bw:.2f} wall, {mc / bc:.2f} CPU; target: 1,000 images under 30 s wall")


if __name__ == "__main__":
    main()
