"""Benchmark: the project at scale. 100,000 images and ~1,000,000 reads (bench/read_queue.build),
and every figure beside a bare-SQLite (or bare-library) baseline on the same data:

- claim-next-image and submit-read p95 (target < 20 ms), undo-last-read p95;
- the status page's data, `workflow.state_counts` (target < 1 s);
- the agreement summary, `audit_data.load_audit` with the page's bootstrap (target < 3 s);
- export manifest creation: the subject-grouped split and folds of `labeling/export/dataset.py` on
  100,000 final-labelled rows (no crops written);
- memory: resident set size (VmRSS from /proc/self/status) after each repetition of the same
  work, which must stay flat.

    .venv/bin/python bench/scale.py [--images 100000] [--ops 2000] [--n-boot 1000] [--rounds 3]
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from read_queue import K, READERS, build, pct, time_queue  # noqa: E402

from db.access import transaction  # noqa: E402
from labeling.agreement.data import load_audit  # noqa: E402
from labeling.export.splits import assign_folds, assign_splits  # noqa: E402
from labeling.workflow.queue import claim_next, submit_read, undo_last_read  # noqa: E402
from labeling.accounts.users import User  # noqa: E402
from labeling.workflow.states import state_counts  # noqa: E402


def rss_mib() -> float:
    """Return this process's resident set size in MiB (Linux /proc; no psutil needed)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def best(fn, rounds: int) -> tuple[float, object]:
    """Return (median seconds over `rounds` calls of fn, the last result)."""
    times, out = [], None
    for _ in range(rounds):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def time_undo(db, ops: int) -> tuple[list[float], list[float]]:
    """Claim, submit, then undo, `ops` times; return (our undo seconds, bare baseline seconds)."""
    users = [User(r, f"reader{r}", frozenset({"reader"})) for r in range(1, READERS + 1)]
    now = dt.datetime.now(dt.timezone.utc)
    ours, base = [], []
    for n in range(ops):
        u = users[n % READERS]
        c = claim_next(db, u, now=now)
        if c is None:
            break
        read_id = submit_read(db, u, c.image_id, "N", now=now)
        t = time.perf_counter()
        undo_last_read(db, u, now=now)
        ours.append(time.perf_counter() - t)
        submit_read(db, u, c.image_id, "L1", now=now)  # the image is the reader's again: read it
        t = time.perf_counter()  # baseline: one event row and one slot update by key
        with transaction(db) as conn:
            conn.execute("INSERT INTO bench_baseline (image_id, at) VALUES (?, 'undo')", (c.image_id,))
            conn.execute("UPDATE read_slots SET lease_expires = lease_expires WHERE image_id = ? AND slot = ?",
                         (c.image_id, c.slot))
        base.append(time.perf_counter() - t)
        del read_id
    return ours, base


def bare_status(db) -> int:
    """Baseline of the status page: one GROUP BY over all reads, fetched."""
    return len(db.execute("SELECT image_id, count(*), min(label), max(label) FROM reads WHERE kind = 'read' "
                          "GROUP BY image_id").fetchall())


def bare_agreement(db) -> float:
    """Baseline of the agreement summary: fetch the reads, pair the first two of each image, one
    Cohen's kappa (scikit-learn), no bootstrap."""
    from sklearn.metrics import cohen_kappa_score

    reads = pd.read_sql_query("SELECT image_id, label FROM reads WHERE kind = 'read' AND label IS NOT NULL "
                              "ORDER BY image_id, id", db.conn)
    reads["n"] = reads.groupby("image_id").cumcount()
    pairs = reads[reads.n < 2].pivot(index="image_id", columns="n", values="label").dropna()
    return float(cohen_kappa_score(pairs[0], pairs[1]))


def final_frame(n_images: int, seed: int = 0) -> pd.DataFrame:
    """The rows the export splits: one per final-labelled image (7 photos per subject, 5% train-only)."""
    rng = np.random.default_rng(seed)
    labels = np.array(["N", "L1", "L2", "L3", "R1", "R2", "R3"])
    subject_class = rng.integers(0, 7, n_images // 7 + 1)
    ids = np.arange(n_images)
    frame = pd.DataFrame({"image_sha256": [f"{i:064x}" for i in ids], "subject": [f"{i // 7:016x}" for i in ids],
                          "label": labels[np.where(rng.random(n_images) < 0.7, subject_class[ids // 7], 0)]})
    frame["train_only"] = rng.random(n_images) < 0.05
    return frame


def bare_split(frame: pd.DataFrame, seed: int = 0) -> None:
    """Baseline of the split and folds: scikit-learn's grouped splitters alone (no train pinning,
    no per-class balancing beyond what they do themselves)."""
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

    train, rest = next(GroupShuffleSplit(1, test_size=0.3, random_state=seed).split(frame, groups=frame.subject))
    list(StratifiedGroupKFold(10, shuffle=True, random_state=seed).split(frame.iloc[train], frame.label.iloc[train],
                                                                         frame.subject.iloc[train]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--ops", type=int, default=2000, help="claim+submit pairs timed (in 4 chunks, for RSS)")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of the agreement summary "
                    "(the Agreement page's default is 1000)")
    ap.add_argument("--rounds", type=int, default=3, help="repetitions of the status, agreement and split timings")
    args = ap.parse_args()
    rss = [("start", rss_mib())]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        db, n_reads = build(Path(tmp), args.images)
        print(f"built {args.images:,} images, {n_reads:,} reads, {args.images * K:,} slots in "
              f"{time.perf_counter() - t0:.1f} s (bench/read_queue.build)")
        rss.append(("built", rss_mib()))

        times = {"claim": [], "submit": [], "base_claim": [], "base_submit": []}
        for chunk in range(4):
            for k, v in time_queue(db, args.ops // 4).items():
                times[k] += v
            gc.collect()
            rss.append((f"queue chunk {chunk + 1}", rss_mib()))
        undo, base_undo = time_undo(db, max(20, args.ops // 10))
        print(f"{len(times['claim'])} claim+submit pairs by {READERS} readers, {len(undo)} undos")
        for name, ours, base in (("claim-next", times["claim"], times["base_claim"]),
                                 ("submit-read", times["submit"], times["base_submit"]),
                                 ("undo-last-read", undo, base_undo)):
            print(f"{name:15} ours p50 {pct(ours, 50):6.2f} ms  p95 {pct(ours, 95):6.2f} ms | bare SQLite p50 "
                  f"{pct(base, 50):6.2f} ms  p95 {pct(base, 95):6.2f} ms" + ("  (target p95 < 20 ms)"
                                                                               if name != "undo-last-read" else ""))

        for r in range(args.rounds):
            ours_s, counts = best(lambda: state_counts(db), 1)
            base_s, _ = best(lambda: bare_status(db), 1)
            gc.collect()
            rss.append((f"status round {r + 1}", rss_mib()))
        print(f"status page (state_counts of {args.images:,} images): ours {ours_s:.2f} s | bare GROUP BY over the "
              f"reads {base_s:.2f} s  (target < 1 s; last of {args.rounds} rounds)")

        agree = []
        for r in range(args.rounds):
            t = time.perf_counter()
            load_audit(db, n_boot=args.n_boot)
            agree.append(time.perf_counter() - t)
            gc.collect()
            rss.append((f"agreement round {r + 1}", rss_mib()))
        base_s, kappa = best(lambda: bare_agreement(db), 1)
        print(f"agreement summary (load_audit, {args.n_boot} bootstrap resamples): ours median {statistics.median(agree):.2f} s "
              f"(rounds {', '.join(f'{a:.2f}' for a in agree)}) | bare: fetch reads + one sklearn kappa {base_s:.2f} s "
              "(target < 3 s)")

        frame = final_frame(args.images)
        split_s = []
        for r in range(args.rounds):
            t = time.perf_counter()
            m = frame.copy()
            m["split"] = assign_splits(m, 0)
            m["fold"] = assign_folds(m, 0)
            split_s.append(time.perf_counter() - t)
            gc.collect()
            rss.append((f"split round {r + 1}", rss_mib()))
        base_s, _ = best(lambda: bare_split(frame), 1)
        share = m.split.value_counts(normalize=True).reindex(["train", "val", "test"]).round(3).tolist()
        print(f"export manifest (split + 10 folds of {len(frame):,} final-labelled rows, {frame.subject.nunique():,} "
              f"subjects): ours median {statistics.median(split_s):.2f} s (shares {share}) | bare scikit-learn "
              f"GroupShuffleSplit + StratifiedGroupKFold {base_s:.2f} s")
        db.close()

    print("RSS (MiB) after each step: " + ", ".join(f"{k} {v:.0f}" for k, v in rss))
    steady = {k.split(" round")[0].split(" chunk")[0]: [] for k, _ in rss}
    for k, v in rss:
        steady[k.split(" round")[0].split(" chunk")[0]].append(v)
    growth = {k: v[-1] - v[0] for k, v in steady.items() if len(v) > 1}
    print("RSS growth between the first and last repetition of the same work (MiB): "
          + ", ".join(f"{k} {v:+.0f}" for k, v in growth.items()))


if __name__ == "__main__":
    main()
