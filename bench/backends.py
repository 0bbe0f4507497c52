"""Benchmark: the same project on SQLite and on PostgreSQL, side by side. Builds the scale project
(bench/read_queue.build: N images with 10 read slots each, ~95% read), copies it to a throwaway
PostgreSQL (db/copy.py, verified), then times on each: claim-next and submit p50/p95 (the queue,
20 readers), the Status page's counts, and the agreement summary (the Agreement page's audit).

Run: `.venv/bin/python bench/backends.py [--images 100000] [--ops 400] [--n-boot 1000]`; needs Debian's
postgresql package (`make postgres`). docs/performance.md, "SQLite and PostgreSQL".
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from read_queue import READERS, build, pct  # noqa: E402

from labeling.project import Project  # noqa: E402
from db.copy import copy_to_postgres  # noqa: E402
from labeling.agreement.data import load_audit  # noqa: E402
from labeling.workflow.queue import claim_next, submit_read  # noqa: E402
from labeling.accounts.users import get_user  # noqa: E402
from labeling.workflow.states import state_counts  # noqa: E402
from tests.postgres import Cluster  # noqa: E402


def queue_times(db, ops: int) -> tuple[list[float], list[float]]:
    import datetime as dt

    users = [get_user(db, f"reader{r}") for r in range(1, READERS + 1)]
    claims, submits = [], []
    now = dt.datetime.now(dt.timezone.utc)
    for n in range(ops):
        u = users[n % READERS]
        a = time.perf_counter()
        c = claim_next(db, u, now=now)
        b = time.perf_counter()
        if c is None:
            continue
        submit_read(db, u, c.image_id, "N", now=now)
        claims.append(b - a)
        submits.append(time.perf_counter() - b)
    return claims, submits


def timed(fn, rounds: int) -> float:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--ops", type=int, default=400)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    cluster = Cluster()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            lite, n_reads = build(Path(tmp) / "data", args.images)
            lite.execute("DROP TABLE bench_baseline")
            print(f"built {args.images:,} images, {n_reads:,} reads on SQLite in {time.perf_counter() - t:.0f} s")
            name, url = cluster.create()
            t = time.perf_counter()
            report = copy_to_postgres(lite, url)
            print(f"copied to PostgreSQL in {time.perf_counter() - t:.0f} s: {report.summary()}")
            post = Project.open(Path(tmp) / "postgresql", url=url).db
            post.execute("ANALYZE")
            rows = {}
            for label, db in (("SQLite", lite), ("PostgreSQL", post)):
                claims, submits = queue_times(db, args.ops)
                status = timed(lambda: state_counts(db), args.rounds)
                agreement = timed(lambda: load_audit(db, n_boot=args.n_boot), args.rounds)
                rows[label] = (pct(claims, 50), pct(claims, 95), pct(submits, 50), pct(submits, 95), status, agreement)
            print(f"\nsame project, same {args.ops} claim+submit pairs by {READERS} readers, median of {args.rounds} "
                  f"rounds for the pages; {args.n_boot} bootstrap resamples")
            print(f"{'':12} {'claim p50':>10} {'p95':>8} {'submit p50':>11} {'p95':>8} {'status':>8} {'agreement':>10}")
            for label, (c50, c95, s50, s95, st, ag) in rows.items():
                print(f"{label:12} {c50:8.2f}ms {c95:6.2f}ms {s50:9.2f}ms {s95:6.2f}ms {st:7.2f}s {ag:9.2f}s")
            (c50, c95, s50, s95, st, ag), (d50, d95, t50, t95, st2, ag2) = rows["SQLite"], rows["PostgreSQL"]
            print(f"{'PG / SQLite':12} {d50 / c50:9.1f}x {d95 / c95:7.1f}x {t50 / s50:10.1f}x {t95 / s95:7.1f}x "
                  f"{st2 / st:7.1f}x {ag2 / ag:9.1f}x")
            post.close()
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
