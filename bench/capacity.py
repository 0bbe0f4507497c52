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
from labeling.project import Project  # noqa: E402
from labeling.accounts.actors import SystemActor  # noqa: E402
from labeling.demo.project import load_demo  # noqa: E402
from labeling.workflow.queue import ensure_slots  # noqa: E402
from labeling.accounts.users import add_user  # noqa: E402
from tests.browser import PASSWORD, Server  # noqa: E402
from tests.readers import readers_at_once  # noqa: E402

BENCH = SystemActor("system:bench")


def build(folder: Path, images: int) -> None:
    """A project of `images` image rows showing the demo's photos (pixels shared, identities not)."""
    project = Project.open(folder)
    db = project.db
    load_demo(db, project.store, subjects=2, seed=4, workers=1, actor=BENCH)
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


def metrics(url: str, reset: bool) -> tuple[list[float], list[float]]:
    """The server's page runs since the last reset: (wall seconds, thread CPU seconds)."""
    req = urllib.request.Request(url + "/metrics/runs", method="POST" if reset else "GET")
    got = json.loads(urllib.request.urlopen(req, timeout=30).read())
    return got["runs_s"], got["cpu_s"]


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        db = Project.open(folder).db
        names = {n: [add_user(db, f"cap{n}-{i}", PASSWORD, ["reader"], actor=BENCH).name for i in range(n)]
                 for n in args.levels}
        db.close()
        print(f"project: {need // 2 + 50} images, {sum(args.levels)} readers, built in {time.perf_counter() - t:.0f} s")
        server = Server(folder, env={"FNP_METRICS": "1"})
        rows = []
        try:
            for n in args.levels:
                metrics(server.url, reset=True)
                t, cpu_before = time.perf_counter(), process_cpu_s(server.proc.pid)
                runs = asyncio.run(readers_at_once(server.url, names[n], look_ms=args.look_ms, double_share=0.0,
                                                   max_reads=args.reads))
                took = time.perf_counter() - t
                process_busy = (process_cpu_s(server.proc.pid) - cpu_before) / took
                errors = [e for r in runs for e in r.errors]
                lat = [x for r in runs for x in r.latencies_ms]
                wall, cpu = metrics(server.url, reset=True)
                server_ms, cpu_ms = [s * 1000 for s in wall], [s * 1000 for s in cpu]
                rows.append((n, sum(len(r.acknowledged) for r in runs), pct(lat, 50), pct(lat, 95), pct(server_ms, 50),
                             pct(server_ms, 95), took, len(errors), pct(cpu_ms, 50), pct(cpu_ms, 95),
                             process_busy))
                print(f"  {n:>2} reader(s): {rows[-1][1]} reads in {took:.0f} s, errors {len(errors)}", flush=True)
        finally:
            server.stop()
    base = rows[0]
    print(f"\nsettings: look {args.look_ms} ms per image, {args.reads} reads per reader, {os.cpu_count()} CPU threads "
          "(the Chromium contexts share them with the server)")
    print(f"{'readers':>7}  {'key->next image p50':>19}  {'p95':>7}  {'x1-reader p95':>13}  "
          f"{'server run p50':>14}  {'p95':>7}  {'x1-reader p95':>13}  {'run CPU p50':>11}  {'p95':>7}  "
          f"{'server cores busy':>17}  errors")
    for n, reads, p50, p95, s50, s95, took, errs, c50, c95, busy in rows:
        print(f"{n:>7}  {p50:>16.0f} ms  {p95:>4.0f} ms  {p95 / base[3]:>13.2f}  {s50:>11.0f} ms  {s95:>4.0f} ms  "
              f"{s95 / base[5]:>13.2f}  {c50:>8.0f} ms  {c95:>4.0f} ms  {busy:>17.2f}  {errs}")
    print("run CPU: the CPU time of the thread that ran each page run (without waiting for a core); server cores busy:"
          " the whole server process's CPU seconds (page runs, websockets, media) per second of the level")
    held = [r[0] for r in rows if r[3] < 300 and r[7] == 0]
    print(f"\nreaders held at keypress-to-image p95 < 300 ms on this machine: {max(held) if held else 'none measured'}")


if __name__ == "__main__":
    main()
