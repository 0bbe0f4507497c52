"""Benchmark: how many neurologists one server process holds. Keypress to next image painted
(p50/p95, measured in Chromium) and the server's page-run time, with 1, 5, 10 and 20 readers reading
at once on one `streamlit run app.py`, each beside the 1-reader figure.

Every reader is a Chromium context (own session) on this machine, so the browsers share its cores
with the server: the end-to-end figures include their rendering; the server-side run times do not.
Run: `.venv/bin/python bench/capacity.py [--levels 1 5 10 20] [--reads 8]` (docs/performance.md).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from db.access import transaction  # noqa: E402
from db.project import open_project  # noqa: E402
from labeling.actors import SystemActor  # noqa: E402
from labeling.demo import load_demo  # noqa: E402
from labeling.queue import ensure_slots  # noqa: E402
from labeling.users import add_user  # noqa: E402
from tests.browser import PASSWORD, Server  # noqa: E402
from tests.readers import readers_at_once  # noqa: E402

BENCH = SystemActor("system:bench")


def build(folder: Path, images: int) -> None:
    """A project of `images` image rows showing the demo's photos (pixels shared, identities not)."""
    db = open_project(folder)
    load_demo(db, folder, subjects=2, seed=4, workers=1, actor=BENCH)
    photos = db.execute("SELECT stored_path, width, height, movement FROM images").fetchall()
    with transaction(db) as conn:
        sid = conn.execute("INSERT INTO subjects (code, synthetic, created_at) VALUES ('BENCH', 1, 'x')").lastrowid
        conn.executemany(
            "INSERT INTO images (sha256, subject_id, movement, source, mirrored, width, height, format, mode, bytes, "
            "stored_path, synthetic, imported_at) VALUES (?, ?, ?, 'hospital', 0, ?, ?, 'JPEG', 'RGB', 1, ?, 1, 'x')",
            [(uuid.uuid4().hex, sid, photos[i % len(photos)][3], photos[i % len(photos)][1],
              photos[i % len(photos)][2], photos[i % len(photos)][0]) for i in range(images)])
    ensure_slots(db)
    db.close()


def metrics(url: str, reset: bool) -> list[float]:
    req = urllib.request.Request(url + "/metrics/runs", method="POST" if reset else "GET")
    return json.loads(urllib.request.urlopen(req, timeout=30).read())["runs_s"]


def pct(xs, p) -> float:
    return float(np.percentile(np.asarray(xs), p)) if len(xs) else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 5, 10, 20])
    ap.add_argument("--reads", type=int, default=8, help="reads per reader per level (default 8)")
    ap.add_argument("--look-ms", type=int, default=500, help="how long each reader looks before the key")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "data"
        need = sum(args.levels) * args.reads  # reads; two per image
        t = time.perf_counter()
        build(folder, need // 2 + 50)
        db = open_project(folder)
        names = {n: [add_user(db, f"cap{n}-{i}", PASSWORD, ["reader"], actor=BENCH).name for i in range(n)]
                 for n in args.levels}
        db.close()
        print(f"project: {need // 2 + 50} images, {sum(args.levels)} readers, built in {time.perf_counter() - t:.0f} s")
        server = Server(folder, env={"FNP_METRICS": "1"})
        rows = []
        try:
            for n in args.levels:
                metrics(server.url, reset=True)
                t = time.perf_counter()
                runs = asyncio.run(readers_at_once(server.url, names[n], look_ms=args.look_ms, double_share=0.0,
                                                   max_reads=args.reads))
                took = time.perf_counter() - t
                errors = [e for r in runs for e in r.errors]
                lat = [x for r in runs for x in r.latencies_ms]
                server_ms = [s * 1000 for s in metrics(server.url, reset=True)]
                rows.append((n, sum(len(r.acknowledged) for r in runs), pct(lat, 50), pct(lat, 95), pct(server_ms, 50),
                             pct(server_ms, 95), took, len(errors)))
                print(f"  {n:>2} reader(s): {rows[-1][1]} reads in {took:.0f} s, errors {len(errors)}", flush=True)
        finally:
            server.stop()
    base = rows[0]
    print(f"\nsettings: look {args.look_ms} ms per image, {args.reads} reads per reader, {os.cpu_count()} CPU threads "
          "(the Chromium contexts share them with the server)")
    print(f"{'readers':>7}  {'key->next image p50':>19}  {'p95':>7}  {'x1-reader p95':>13}  "
          f"{'server run p50':>14}  {'p95':>7}  {'x1-reader p95':>13}  errors")
    for n, reads, p50, p95, s50, s95, took, errs in rows:
        print(f"{n:>7}  {p50:>16.0f} ms  {p95:>4.0f} ms  {p95 / base[3]:>13.2f}  {s50:>11.0f} ms  {s95:>4.0f} ms  "
              f"{s95 / base[5]:>13.2f}  {errs}")
    held = [r[0] for r in rows if r[3] < 300 and r[7] == 0]
    print(f"\nreaders held at keypress-to-image p95 < 300 ms on this machine: {max(held) if held else 'none measured'}")


if __name__ == "__main__":
    main()
