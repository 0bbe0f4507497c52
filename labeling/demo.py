"""The demo project: synthetic subjects imported like real photos, with hidden ground truth.

Optionally simulated readers read every image twice with a chosen accuracy, so check 1 has
something to agree and disagree about. Everything here is marked synthetic / simulated.
"""
from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from db.access import Database, audit, now, transaction
from db.migrations import CLASSES, MOVEMENTS
from labeling.importer import ImportReport, import_rows, sha256_bytes
from labeling.manifest import ManifestRow
from labeling.synthetic import GENERATOR, make_image, movement_label, subject_plan
from labeling import settings
from labeling.queue import claim_next, ensure_slots, release, submit_choice
from labeling.reader_qc import mirror_label
from labeling.actors import Actor
from labeling.permissions import authorize, require
from labeling.users import add_user, get_user
from labeling.workflow import adjudicate, adjudication_queue, learn_and_store_ranges, run_check2

SIM_READERS = ("sim-reader-a", "sim-reader-b")
SIM_ADJUDICATOR = "sim-adjudicator"
BLURRY_SHARE = 0.05
DISTANT_SHARE = 0.05
# How the low-quality demo photos are made: both must trip the measured flags (tests/test_quality.py).
BLUR_SIGMA = 2.5      # Gaussian blur, pixels: sharpness ~40-60 against the threshold of 120
DISTANT_SCALE = 0.15  # face shrunk in the frame: face box ~0.095 of the width against 0.12


@dataclass
class DemoResult:
    """What the demo loader did."""

    report: ImportReport
    images: int
    simulated_reads: int


def _render(job: dict) -> tuple[dict, bytes]:
    """Render one planned photo (runs in a worker process); return (job, jpeg bytes)."""
    img = make_image(job["subject"], job["movement"], job["label"], mirrored=job["mirrored"], seed=job["seed"],
                     subject_seed=job["subject_seed"], source=job["source"], blur=job["blur"], scale=job["scale"])
    return job, img.jpeg


def plan_photos(subjects: int, seed: int) -> list[dict]:
    """Return one job per photo: subject, movement, true class, pose seed and quality defects."""
    rng = np.random.default_rng(seed + 1)
    jobs = []
    for subj in subject_plan(subjects, seed):
        for mv in MOVEMENTS:
            r = rng.random()
            jobs.append({"subject": subj["code"], "movement": mv, "label": movement_label(subj["label"], mv, rng),
                         "mirrored": subj["mirrored"], "source": subj["source"], "subject_seed": subj["subject_seed"],
                         "seed": int(rng.integers(2**31)), "sex": str(subj["sex"]), "age_group": str(subj["age_group"]),
                         "cohort": subj["cohort"],
                         "blur": BLUR_SIGMA if r < BLURRY_SHARE else 0.0,
                         "scale": DISTANT_SCALE if BLURRY_SHARE <= r < BLURRY_SHARE + DISTANT_SHARE else 1.0})
    return jobs


def render_photos(jobs: list[dict], workers: int | None = None,
                  progress: Callable[[int, int, str], None] | None = None) -> list[tuple[dict, bytes]]:
    """Render every job, in parallel over processes; return (job, jpeg) in job order."""
    workers = workers or min(len(jobs), os.cpu_count() or 1) or 1
    out = []
    if workers <= 1:
        for n, job in enumerate(jobs):
            out.append(_render(job))
            if progress:
                progress(n + 1, len(jobs), "rendering synthetic faces")
        return out
    with ProcessPoolExecutor(workers) as pool:
        for n, res in enumerate(pool.map(_render, jobs, chunksize=2)):
            out.append(res)
            if progress:
                progress(n + 1, len(jobs), "rendering synthetic faces")
    return out


def _simulated_label(truth: str, accuracy: float, rng: np.random.Generator) -> str:
    """Return a reader's label: the truth with probability `accuracy`, else a neighbouring grade."""
    if rng.random() < accuracy:
        return truth
    if truth == "N":
        return str(rng.choice(["L1", "R1"]))
    side, deg = truth[0], int(truth[1])
    options = [f"{side}{d}" for d in (deg - 1, deg + 1) if 1 <= d <= 3] + (["N"] if deg == 1 else [])
    return str(rng.choice(options))


def simulate_reads(db: Database, accuracy: float, seed: int = 0, *, actor: Actor) -> int:
    """Let two simulated readers read every open synthetic slot through the real queue; return reads written.

    Each read is the hidden truth with probability `accuracy`, else a neighbouring grade. The
    reads are flagged `simulated` and go through the same claim/submit path as a person's. The
    simulated readers' accounts are created by `actor` (who needs 'users.manage') when missing.
    """
    require(actor, "demo.load")
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError("reader accuracy must be between 0 and 1")
    ensure_slots(db)
    truth = dict(db.execute("SELECT image_id, label FROM ground_truth").fetchall())
    rng = np.random.default_rng(seed + 2)
    written = 0
    t = dt.datetime.now(dt.timezone.utc)
    dwell_ms = int(settings.get(db, "key_dwell_ms"))
    for name in SIM_READERS:
        reader = get_user(db, name) or add_user(db, name, None, ["reader"], actor=actor)
        while True:
            # Looked at for a gamma-distributed time (never under the minimum viewing time): the
            # image is handed over that long before the read is given.
            ms = max(int(rng.gamma(4.0, 600.0)), dwell_ms)
            claimed = t - dt.timedelta(milliseconds=ms)
            claim = claim_next(db, reader, now=claimed)
            if claim is None:
                break
            if claim.image_id not in truth:  # a real photo: simulated readers never touch those
                release(db, reader)
                break
            # A quality-control item is answered like any image (the queue mixes them in): a mirror
            # item's truth is the flipped face's, the same degree on the other side.
            seen = mirror_label(truth[claim.image_id]) if claim.flipped else truth[claim.image_id]
            submit_choice(db, reader, claim.token, _simulated_label(seen, accuracy, rng), started_at=claim.claimed_at,
                          now=t, simulated=True, shown_ms=ms)
            written += claim.qc_id is None
    with transaction(db) as conn:
        audit(conn, authorize(conn, actor, "demo.load"), "demo.reads_simulated", "reads", None, count=written,
              accuracy=accuracy)
    return written


def simulate_adjudication(db: Database, *, actor: Actor) -> int:
    """Let a simulated adjudicator decide every synthetic image awaiting adjudication from the hidden truth.

    Returns the number of decisions. Flagged `simulated`; real photos are never touched.
    """
    require(actor, "demo.load")
    truth = dict(db.execute("SELECT image_id, label FROM ground_truth").fetchall())
    judge = get_user(db, SIM_ADJUDICATOR) or add_user(db, SIM_ADJUDICATOR, None, ["adjudicator"], actor=actor)
    done = 0
    for image_id in adjudication_queue(db, judge).image_id:
        if int(image_id) in truth:
            adjudicate(db, judge, int(image_id), truth[int(image_id)], simulated=True)
            done += 1
    return done


def carry_to_final(db: Database, store: Path, accuracy: float = 0.9, seed: int = 0, *, actor: Actor) -> dict:
    """Take the synthetic demo to final labels: simulated reads, measurement, ranges, check 2, adjudication.

    Returns counts of what each step did. Everything written is marked simulated/synthetic.
    """
    from asymmetry.measure import measure_pending

    reads = simulate_reads(db, accuracy, seed, actor=actor)
    measured = measure_pending(db, store, actor=actor)
    synthetic_only = not db.execute("SELECT 1 FROM images WHERE synthetic = 0 LIMIT 1").fetchone()
    if synthetic_only and settings.get(db, "range_min_count") > 1:
        # A demo has 2 subjects per class: too few for 5-image range cells. One image per cell
        # lets check 2 judge every image; real projects keep their own setting.
        settings.change(db, "range_min_count", 1, actor)
    learn_and_store_ranges(db, actor)
    check2 = run_check2(db, actor)
    decided = simulate_adjudication(db, actor=actor)
    return {"reads": reads, "measured": sum(measured.values()), "check2": check2, "adjudicated": decided}


def load_demo(db: Database, store: Path, subjects: int = 14, seed: int = 0,
              simulate_readers: float | None = None, *, actor: Actor, workers: int | None = None,
              progress: Callable[[int, int, str], None] | None = None) -> DemoResult:
    """Generate `subjects` synthetic subjects x 7 movements and import them as synthetic; return what was done."""
    require(actor, "demo.load")
    jobs = plan_photos(subjects, seed)
    rendered = render_photos(jobs, workers, progress)
    files: dict[str, bytes] = {}
    rows: list[ManifestRow] = []
    truth: dict[str, str] = {}
    for n, (job, jpeg) in enumerate(rendered):
        # Names reveal nothing about the class: a hash of the bytes, like a camera's counter.
        name = f"synthetic/{job['subject']}/{sha256_bytes(jpeg)[:16]}.jpg"
        files[name] = jpeg
        truth[sha256_bytes(jpeg)] = job["label"]
        rows.append(ManifestRow(n + 2, name, job["subject"], job["movement"], job["source"], job["mirrored"],
                                job["sex"], job["age_group"], job["cohort"]))
    report = import_rows(db, store, rows, files.get, synthetic=True, actor=actor, origin="synthetic demo",
                         manifest_name=f"demo seed={seed} subjects={subjects}",
                         progress=(lambda d, t, f: progress(d, t, "importing")) if progress else None)
    with transaction(db) as conn:
        authorize(conn, actor, "demo.load")
        for digest, label in truth.items():
            conn.execute("INSERT OR IGNORE INTO ground_truth (image_id, label, generator) "
                         "SELECT id, ?, ? FROM images WHERE sha256 = ?", (label, GENERATOR, digest))
    ensure_slots(db)
    reads = simulate_reads(db, simulate_readers, seed, actor=actor) if simulate_readers is not None else 0
    return DemoResult(report, len(rows), reads)


__all__ = ["CLASSES", "DemoResult", "load_demo", "plan_photos", "render_photos", "simulate_reads"]
