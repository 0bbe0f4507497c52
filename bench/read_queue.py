"""Benchmark: claim-next-image and submit-read on a project of 100,000 images and ~1,000,000 reads.

Builds a synthetic database (no pixels: the queue never reads them) with 10 reads per image
from 20 readers, 95% of images complete, then times our `claim_next` and `submit_read` side by
side with a bare-SQLite baseline doing the least a claim and a submit can do (find one open slot
and mark it; insert one row) in the same kind of transaction. Also times the status counts.

    .venv/bin/python bench/read_queue.py [--images 100000] [--ops 400]
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from db.access import transaction  # noqa: E402
from labeling.project import Project  # noqa: E402
from labeling.workflow import settings  # noqa: E402
from labeling.accounts.actors import SystemActor  # noqa: E402
from labeling.workflow.queue import claim_next, submit_read  # noqa: E402
from labeling.accounts.users import User  # noqa: E402
from labeling.workflow.states import state_counts  # noqa: E402

K, READERS = 10, 20


def build(folder: Path, n_images: int, seed: int = 0):
    """Create the synthetic project; return (db, total reads)."""
    db = Project.open(folder).db
    bench = SystemActor("system:bench")
    settings.change(db, "reads_per_image", K, bench)
    settings.change(db, "key_dwell_ms", 0, bench)  # machine-speed readers: the queue's cost, not a person's pace
    settings.change(db, "qc_share", 0, bench)  # reads only: the queue's own cost
    rng = np.random.default_rng(seed)
    t = "2026-01-01T00:00:00.000+00:00"
    with transaction(db) as conn:
        for r in range(1, READERS + 1):
            conn.execute("INSERT INTO users (id, name, password_hash, roles, created_at) VALUES (?, ?, 'x', 'reader', ?)",
                         (r, f"reader{r}", t))
        conn.executemany("INSERT INTO subjects (id, code, created_at) VALUES (?, ?, ?)",
                         [(s, f"S{s}", t) for s in range(1, n_images // 7 + 2)])
        conn.executemany("INSERT INTO images (id, sha256, subject_id, movement, source, mirrored, width, height, format, mode, "
                         "bytes, stored_path, imported_at) VALUES (?, ?, ?, ?, 'hospital', 0, 1, 1, 'JPEG', 'RGB', 1, 'x', ?)",
                         [(i, f"{i:064x}", i // 7 + 1, f"MV{i % 7}", t) for i in range(1, n_images + 1)])
        done = np.where(rng.random(n_images) < 0.95, K, rng.integers(0, K, n_images))
        reads, slots = [], []
        rid = 0
        labels = np.array(["N", "L1", "L2", "L3", "R1", "R2", "R3"])
        for i in range(1, n_images + 1):
            for s in range(1, K + 1):
                if s <= done[i - 1]:
                    rid += 1
                    reader = (i + s) % READERS + 1
                    reads.append((rid, i, reader, labels[(i * 7 + s) % 7], t, 4000))
                    slots.append((i, s, reader, rid))
                else:
                    slots.append((i, s, None, None))
        conn.executemany("INSERT INTO reads (id, image_id, reader_id, label, submitted_at, duration_ms) VALUES (?,?,?,?,?,?)",
                         reads)
        conn.executemany("INSERT INTO read_slots (image_id, slot, reader_id, read_id) VALUES (?,?,?,?)", slots)
        conn.execute("CREATE TABLE bench_baseline (id INTEGER PRIMARY KEY, image_id INTEGER, at TEXT)")
    db.execute("ANALYZE")
    return db, len(reads)


def pct(xs, p):
    return float(np.percentile(np.array(xs) * 1000, p))


def time_queue(db, ops: int) -> dict[str, list[float]]:
    """Run `ops` claim+submit pairs by the READERS readers, each followed by the bare-SQLite
    baseline doing the least a claim and a submit can do; return the seconds of each, by name."""
    users = [User(r, f"reader{r}", frozenset({"reader"})) for r in range(1, READERS + 1)]
    times = {"claim": [], "submit": [], "base_claim": [], "base_submit": []}
    now = dt.datetime.now(dt.timezone.utc)
    for n in range(ops):
        u = users[n % READERS]
        a = time.perf_counter()
        c = claim_next(db, u, now=now)
        b = time.perf_counter()
        if c is None:
            continue
        submit_read(db, u, c.image_id, "N", now=now)
        e = time.perf_counter()
        times["claim"].append(b - a)
        times["submit"].append(e - b)
        # Baseline: the bare minimum in the same transaction style.
        a = time.perf_counter()
        with transaction(db) as conn:
            row = conn.execute("SELECT image_id, slot FROM read_slots WHERE read_id IS NULL LIMIT 1").fetchone()
            conn.execute("UPDATE read_slots SET lease_expires = lease_expires WHERE image_id = ? AND slot = ?", row)
        b = time.perf_counter()
        with transaction(db) as conn:
            conn.execute("INSERT INTO bench_baseline (image_id, at) VALUES (?, ?)", (row[0], "x"))
        e = time.perf_counter()
        times["base_claim"].append(b - a)
        times["base_submit"].append(e - b)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--ops", type=int, default=400)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        db, n_reads = build(Path(tmp), args.images)
        print(f"built {args.images:,} images, {n_reads:,} reads, {args.images * K:,} slots in {time.perf_counter() - t0:.1f} s")
        times = time_queue(db, args.ops)
        t = time.perf_counter()
        counts = state_counts(db)
        status_s = time.perf_counter() - t
        print(f"ops: {len(times['claim'])} claim+submit pairs by {READERS} readers")
        for name, ours, base in (("claim-next", times["claim"], times["base_claim"]),
                                 ("submit-read", times["submit"], times["base_submit"])):
            print(f"{name:12} ours p50 {pct(ours, 50):6.2f} ms  p95 {pct(ours, 95):6.2f} ms | bare SQLite p50 "
                  f"{pct(base, 50):6.2f} ms  p95 {pct(base, 95):6.2f} ms | p95 ratio {pct(ours, 95) / pct(base, 95):.1f} "
                  f"(target p95 < 20 ms)")
        print(f"status counts over all images: {status_s:.2f} s (target < 1 s) {counts}")


if __name__ == "__main__":
    main()
