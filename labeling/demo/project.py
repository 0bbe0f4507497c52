"""The demo project: synthetic subjects imported like real photos, with hidden ground truth.

Optionally simulated readers read every image twice with a chosen accuracy, so check 1 has
something to agree and disagree about, and `carry_to_final` takes the demo on to final labels
(measurement, ranges, check 2, a simulated adjudicator). Everything here is marked synthetic /
simulated.

Minimum counts: a demo of S subjects cycles the seven classes, so each movement x class cell of
check 2's range table holds S // 7 images (a mild subject's rest photo is N, so MV0's N cell holds
more and its L1/R1 cells none). A range box needs `range_min_count` consensus images (default 5).
On a project holding only synthetic images `load_demo` lowers the setting to one fewer than its
smallest cell holds (`demo_range_min_count`: the Agreement page's out-of-fold figure learns each
cell without one subject; 14 subjects: 1; from 42 subjects the default 5 stays), audited, so check 2
runs on the browser demo and on `labeling demo --final` alike. A project with any real photo keeps
its own setting.
"""
from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from db.access import Database, audit, get_setting, put_setting, transaction
from labeling.vocabulary import CLASSES, MOVEMENTS
from labeling.workflow import settings
from labeling.accounts.actors import Actor
from labeling.intake.importer import ImportReport, import_rows, sha256_bytes
from labeling.intake.manifest import ManifestRow
from labeling.accounts.permissions import PermissionDenied, allowed, authorize, require
from labeling.workflow.queue import claim_next, ensure_slots, release, submit_choice
from labeling.workflow.reader_qc import mirror_label
from labeling.demo.synthetic import GENERATOR, make_image, movement_label, subject_plan
from labeling.accounts.users import add_simulated_user
from labeling.workflow.states import (adjudicate, adjudication_queue, image_states, learn_and_store_ranges, run_check2,
                               state_counts)

SIM_READERS = ("sim-reader-a", "sim-reader-b")
SIM_ADJUDICATOR = "sim-adjudicator"
BLURRY_SHARE = 0.05
DISTANT_SHARE = 0.05
# How the low-quality demo photos are made: both must trip the measured flags (tests/test_quality.py).
BLUR_SIGMA = 2.5      # Gaussian blur, pixels: sharpness ~40-60 against the threshold of 120
DISTANT_SCALE = 0.15  # face shrunk in the frame: face box ~0.095 of the width against 0.12


@dataclass
class DemoResult:
    """What the demo loader did; `range_note` says what it did to the range box minimum."""

    report: ImportReport
    images: int
    simulated_reads: int
    range_min_count: int = 5
    range_note: str = ""


@dataclass(frozen=True)
class DemoStatus:
    """Where a project stands as a demo: whether every image is synthetic, its synthetic subjects,
    the images its smallest movement x class cell holds, the range box minimum in force, and how
    many images have a final label (of all) or wait in 'agreed' for check 2."""

    synthetic_only: bool
    subjects: int
    images_per_cell: int | None
    range_min_count: int
    images: int
    final: int
    agreed: int

    def counts_sentence(self) -> str:
        """Say, in a sentence, what the demo's size gives check 2."""
        if not self.images_per_cell:
            return "No synthetic images yet."
        cells = (f"{self.subjects} synthetic subjects give {self.images_per_cell} image(s) in the smallest movement x "
                 f"class cell; check 2 learns a range box from a cell of at least {self.range_min_count} agreed "
                 f"image(s) (setting \"Range box: fewest images\").")
        if self.images_per_cell < self.range_min_count:
            cells += (" A cell with fewer agreed images gets no range box: add subjects (7 give one image per "
                      "cell) or lower the setting.")
        return cells


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


def _smallest_cell(conn) -> int | None:
    """Return the images in the smallest non-empty movement x class cell of the synthetic truth."""
    row = conn.execute("SELECT min(n) FROM (SELECT count(*) AS n FROM ground_truth g "
                       "JOIN images i ON i.id = g.image_id GROUP BY i.movement, g.label) AS cells").fetchone()
    return int(row[0]) if row and row[0] else None


def demo_range_min_count(cell: int) -> int:
    """Return the range box minimum a demo whose smallest movement x class cell holds `cell` images
    needs: one fewer than that (at least 1), so that check 2 and its out-of-fold figure on the
    Agreement page, which learns each cell without one subject's images, both have a box for
    every cell."""
    return max(1, cell - 1)


def fit_range_min_count(db: Database, *, actor: Actor) -> tuple[int, str]:
    """Lower `range_min_count` of a project holding only synthetic images to `demo_range_min_count`
    of its smallest movement x class cell (never raise it, never touch a project with a real
    photo), audited as a setting change by `actor` (who needs 'demo.load'); return (the minimum in
    force, a sentence saying what was done and why)."""
    require(actor, "demo.load")
    key = "range_min_count"
    label = settings.SETTINGS[key].label
    with transaction(db) as conn:
        who = authorize(conn, actor, "demo.load")
        current = int(get_setting(conn, key, settings.SETTINGS[key].default))
        subjects = conn.execute("SELECT count(*) FROM subjects WHERE synthetic = 1").fetchone()[0]
        cell = _smallest_cell(conn)
        if conn.execute("SELECT 1 FROM images WHERE synthetic = 0 LIMIT 1").fetchone():
            return current, (f"The project also holds real photos, so \"{label}\" stays {current} (a demo "
                             f"cell holds {cell or 0} image(s)).")
        gives = f"{subjects} synthetic subjects give {cell or 0} image(s) per movement x class cell"
        if cell is None or demo_range_min_count(cell) >= current:
            return current, f"{gives}: \"{label}\" stays {current}."
        target = demo_range_min_count(cell)
        put_setting(conn, key, target)
        audit(conn, who, "setting.changed", "setting", key, value=target, before=current,
              reason=f"synthetic demo: {subjects} subjects give {cell} image(s) per movement x class cell")
    return target, (f"{gives}, so \"{label}\" is now {target} (was {current}): check 2 can learn a range box for "
                    f"every cell, also without one subject (the Agreement page's out-of-fold figure). This project "
                    f"holds only synthetic images; a project of real photos keeps its own setting.")


def demo_status(db: Database) -> DemoStatus:
    """Return where the project stands as a demo (`DemoStatus`)."""
    images = db.execute("SELECT count(*), coalesce(sum(synthetic), 0) FROM images").fetchone()
    states = state_counts(db) if images[0] else {}
    return DemoStatus(synthetic_only=bool(images[0]) and images[0] == images[1],
                      subjects=db.execute("SELECT count(*) FROM subjects WHERE synthetic = 1").fetchone()[0],
                      images_per_cell=_smallest_cell(db.conn),
                      range_min_count=int(settings.get(db, "range_min_count")), images=int(images[0]),
                      final=states.get("accepted", 0) + states.get("final", 0), agreed=states.get("agreed", 0))


# What carrying the demo on does besides the simulated reads and decisions, and who may do each.
CARRY_STEPS = (("measure", "measure the faces"), ("ranges.learn", "learn the range table"),
               ("check2.run", "run check 2"))


def carry_blockers(actor: Actor | None) -> list[str]:
    """Return the steps of `carry_to_final` that `actor` may not do (empty: they may carry the demo
    on), each as "<step> (needs <roles>)"."""
    from labeling.accounts.permissions import ACTIONS

    steps = [("demo.load", "load the demo")] + list(CARRY_STEPS)
    return [f"{what} (needs {' or '.join(sorted(ACTIONS[action]))})" for action, what in steps
            if not allowed(actor, action)]


def _simulated_label(truth: str, accuracy: float, rng: np.random.Generator) -> str:
    """Return a reader's label: the truth with probability `accuracy`, else a neighbouring grade."""
    if rng.random() < accuracy:
        return truth
    if truth == "N":
        return str(rng.choice(["L1", "R1"]))
    side, deg = truth[0], int(truth[1])
    options = [f"{side}{d}" for d in (deg - 1, deg + 1) if 1 <= d <= 3] + (["N"] if deg == 1 else [])
    return str(rng.choice(options))


def _reads_to_go(db: Database) -> int:
    """Return how many reads the synthetic images still need."""
    st = image_states(db)
    st = st[st.synthetic == 1]
    return int((st.reads_required - st.n_reads).clip(lower=0)[~st.state.isin(["final", "excluded"])].sum())


def simulate_reads(db: Database, accuracy: float, seed: int = 0, *, actor: Actor,
                   progress: Callable[[int, int, str], None] | None = None) -> int:
    """Let two simulated readers read every open synthetic slot through the real queue; return reads written.

    Each read is the hidden truth with probability `accuracy`, else a neighbouring grade. The
    reads are flagged `simulated` and go through the same claim/submit path as a person's. The
    simulated readers' accounts (no one can sign in as them) are created by `actor` when missing.
    """
    require(actor, "demo.load")
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError("reader accuracy must be between 0 and 1")
    ensure_slots(db)
    truth = dict(db.execute("SELECT image_id, label FROM ground_truth").fetchall())
    rng = np.random.default_rng(seed + 2)
    written = 0
    total = _reads_to_go(db) if progress else 0
    t = dt.datetime.now(dt.timezone.utc)
    dwell_ms = int(settings.get(db, "key_dwell_ms"))
    for name in SIM_READERS:
        reader = add_simulated_user(db, name, "reader", actor)
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
            if progress:
                progress(written, max(total, written), "simulated reads")
    with transaction(db) as conn:
        audit(conn, authorize(conn, actor, "demo.load"), "demo.reads_simulated", "reads", None, count=written,
              accuracy=accuracy)
    return written


def simulate_adjudication(db: Database, *, actor: Actor,
                          progress: Callable[[int, int, str], None] | None = None) -> int:
    """Let a simulated adjudicator decide every synthetic image awaiting adjudication from the hidden truth.

    Returns the number of decisions. Flagged `simulated`; real photos are never touched.
    """
    require(actor, "demo.load")
    truth = dict(db.execute("SELECT image_id, label FROM ground_truth").fetchall())
    judge = add_simulated_user(db, SIM_ADJUDICATOR, "adjudicator", actor)
    todo = [int(i) for i in adjudication_queue(db, judge).image_id if int(i) in truth]
    for n, image_id in enumerate(todo):
        adjudicate(db, judge, image_id, truth[image_id], simulated=True)
        if progress:
            progress(n + 1, len(todo), "simulated adjudication")
    return len(todo)


def carry_to_final(db: Database, store: Path, accuracy: float = 0.9, seed: int = 0, *, actor: Actor,
                   progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Take the synthetic demo to final labels: simulated reads, measurement, ranges, check 2, adjudication.

    `actor` must be allowed every step (`carry_blockers`): a coordinator or the shell. The range
    box minimum is the project's own: `load_demo` fits it to the demo once (audited); images in a
    cell with fewer agreed images stay in 'agreed'. Returns counts of what each step did, and how
    many images then have a final label (`final`) or wait in 'agreed' (`agreed`). Everything
    written is marked simulated/synthetic.
    """
    from labeling.workflow.measuring import measure_pending

    blocked = carry_blockers(actor)
    if blocked:
        raise PermissionDenied(f"{getattr(actor, 'name', 'nobody')} may not carry the demo on: may not "
                               + "; ".join(blocked))
    reads = simulate_reads(db, accuracy, seed, actor=actor, progress=progress)
    measured = measure_pending(db, store, actor=actor, progress=progress)
    if progress:
        progress(0, 1, "range table and check 2")
    learn_and_store_ranges(db, actor)
    check2 = run_check2(db, actor)
    if progress:
        progress(1, 1, "range table and check 2")
    decided = simulate_adjudication(db, actor=actor, progress=progress)
    status = demo_status(db)
    return {"reads": reads, "measured": sum(measured.values()), "check2": check2, "adjudicated": decided,
            "final": status.final, "agreed": status.agreed, "images": status.images,
            "range_min_count": status.range_min_count}


def carry_summary(done: dict) -> str:
    """Say in sentences what `carry_to_final` did (its returned counts)."""
    c2 = ", ".join(f"{n} {outcome}" for outcome, n in sorted(done["check2"].items())) or "no image to check"
    text = (f"SYNTHETIC demo carried on: {done['reads']} simulated read(s), {done['measured']} image(s) measured, "
            f"check 2: {c2}, {done['adjudicated']} simulated adjudication(s). {done['final']} of {done['images']} "
            f"image(s) now have a final label.")
    if done["agreed"]:
        text += (f" {done['agreed']} agreed image(s) wait for check 2: their movement x class cells hold fewer than "
                 f"{done['range_min_count']} agreed images (setting \"Range box: fewest images\").")
    return text


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
    min_count, note = fit_range_min_count(db, actor=actor)
    reads = simulate_reads(db, simulate_readers, seed, actor=actor) if simulate_readers is not None else 0
    return DemoResult(report, len(rows), reads, min_count, note)


__all__ = ["CLASSES", "DemoResult", "DemoStatus", "carry_blockers", "carry_summary", "carry_to_final", "demo_status",
           "fit_range_min_count", "load_demo", "plan_photos", "render_photos", "simulate_reads"]
