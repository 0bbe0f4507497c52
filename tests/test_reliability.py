"""Reliability evidence (issue 8): ten processes hammering one database lose and double nothing;
kill -9 at twenty random points of import, measurement, reading and export never corrupts the
database, never loses what was committed, never leaves an export that looks complete, and running
the job again finishes it; the scale bench runs and prints its figures.

The hammer runs FNP_HAMMER_SECONDS (default the issue's 60 s; set it lower for a quick run).
"""
from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from db.access import transaction
from db.project import open_project
from labeling.workflow import settings
from labeling.accounts.users import add_user
from tests.conftest import ROOT, SHELL, photo_folder, read_next
from tests.workers import result, start

HAMMER_SECONDS = float(os.environ.get("FNP_HAMMER_SECONDS", "60"))
HAMMER_READERS = 8
HAMMER_IMAGES = int(1500 * HAMMER_SECONDS)  # more open slots than the readers fill (~1,250 reads/s here)
K = 2  # reads per image (the default)


# ---- what every test here checks afterwards ------------------------------------------------------


EFFECTIVE = "r.kind = 'read' AND NOT EXISTS (SELECT 1 FROM reads u WHERE u.supersedes = r.id)"  # reads r not undone


def assert_consistent(dbfile: Path) -> sqlite3.Connection:
    """Assert the database passes integrity_check and its derived tables agree with the events;
    return an open connection for further checks."""
    con = sqlite3.connect(dbfile, timeout=30)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    eff = EFFECTIVE
    # The summary kept by the trigger equals a full recount of the effective reads.
    kept = con.execute("SELECT image_id, n, lo, hi, labelled, last_read FROM image_read_summary WHERE n > 0 "
                       "ORDER BY image_id").fetchall()
    full = con.execute(f"SELECT image_id, count(*), min(label), max(label), count(label), max(submitted_at) FROM reads r "
                       f"WHERE {eff} GROUP BY image_id ORDER BY image_id").fetchall()
    assert kept == full
    # Every effective read fills exactly one slot; no slot holds an undone or missing read.
    assert con.execute(f"SELECT count(*) FROM reads r WHERE {eff} AND "
                       "(SELECT count(*) FROM read_slots s WHERE s.read_id = r.id) <> 1").fetchone()[0] == 0
    assert con.execute(f"SELECT count(*) FROM read_slots s WHERE s.read_id IS NOT NULL AND NOT EXISTS "
                       f"(SELECT 1 FROM reads r WHERE r.id = s.read_id AND {eff})").fetchone()[0] == 0
    # No image read twice by one reader (inter mode), none read more often than it has slots.
    assert con.execute(f"SELECT count(*) FROM (SELECT image_id FROM reads r WHERE {eff} GROUP BY image_id "
                       "HAVING count(*) > ? OR count(DISTINCT reader_id) < count(*))", (K,)).fetchone()[0] == 0
    # Every image has its slots (committed with the image).
    assert con.execute("SELECT count(*) FROM images i WHERE (SELECT count(*) FROM read_slots s "
                       "WHERE s.image_id = i.id) < ?", (K,)).fetchone()[0] == 0
    return con


def assert_exports_whole(exports: Path) -> list[str]:
    """Assert every visible export folder is complete and matches its checksums; hidden leftovers
    are only `.NAME.partial-…` folders. Return the complete exports' names."""
    whole = []
    for p in sorted(exports.iterdir()) if exports.is_dir() else []:
        if p.name.startswith("."):
            assert re.fullmatch(r"\..+\.partial-\d+-[0-9a-f]+", p.name), p.name
            continue
        assert (p / "manifest.csv").is_file() and (p / "datacard.md").is_file(), f"{p.name} is half-written"
        sums = (p / "SHA256SUMS").read_text().splitlines()
        listed = {}
        for line in sums:
            digest, rel = line.split("  ", 1)
            listed[rel] = digest
        files = {f.relative_to(p).as_posix() for f in p.rglob("*") if f.is_file()} - {"SHA256SUMS"}
        assert files == set(listed), f"{p.name}: files and SHA256SUMS differ"
        for rel, digest in listed.items():
            assert hashlib.sha256((p / rel).read_bytes()).hexdigest() == digest, f"{p.name}/{rel}"
        rows = (p / "manifest.csv").read_text().count("\n") - 1
        assert rows == sum(1 for f in files if f.endswith(".png"))
        whole.append(p.name)
    return whole


# ---- a small project with final labels, measurements and stored photos (built once) ------------


TEMPLATE_IMAGES = 14


@pytest.fixture(scope="module")
def final_template(tmp_path_factory, astronaut):
    """A data folder of 14 stored photos (astronaut variants), measured, read twice, all final."""
    folder = tmp_path_factory.mktemp("reliability-template") / "data"
    src = folder.parent / "in"
    manifest = photo_folder(src, astronaut, TEMPLATE_IMAGES, 256, prefix="t", subject="T")
    db = open_project(folder)
    from labeling.workflow.measuring import measure_pending
    from labeling.intake.importer import import_folder
    import_folder(db, folder, src, manifest, actor=SHELL)
    assert measure_pending(db, folder, workers=1, actor=SHELL) == {"ok": TEMPLATE_IMAGES}
    settings.change(db, "check2_enabled", False, SHELL)  # two agreeing reads make a final label
    for name in ("template-a", "template-b"):
        reader = add_user(db, name, "a long password", ["reader"], actor=SHELL)
        while read_next(db, reader, "N") is not None:
            pass
    from labeling.workflow.states import final_labels

    assert len(final_labels(db)) == TEMPLATE_IMAGES
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return folder


# ---- 1. the hammer -----------------------------------------------------------------------------


@pytest.mark.slow
def test_hammer_8_readers_an_adjudicator_and_an_exporting_coordinator(final_template, tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(final_template, folder)
    db = open_project(folder)
    finals_before = db.execute("SELECT count(*) FROM adjudications").fetchone()[0]
    last_read_before = db.execute("SELECT coalesce(max(id), 0) FROM reads").fetchone()[0]
    with transaction(db) as conn:  # the images to read: rows only (reading never opens the pixels here)
        sid = conn.execute("INSERT INTO subjects (code, created_at) VALUES ('HAMMER', 'x')").lastrowid
        conn.executemany("INSERT INTO images (sha256, subject_id, movement, source, mirrored, width, height, format, "
                         "mode, bytes, stored_path, imported_at) VALUES (?, ?, ?, 'hospital', 0, 1, 1, 'JPEG', 'RGB', "
                         "1, 'x', 'x')", [(uuid.uuid4().hex, sid, f"MV{i % 7}") for i in range(HAMMER_IMAGES)])
    from labeling.workflow.queue import ensure_slots

    ensure_slots(db)
    # Machine-speed readers measure the database under load, not people: no minimum viewing time
    # (tests/test_deliberate.py and the browser tests hold the people to it).
    settings.change(db, "key_dwell_ms", 0, SHELL)
    settings.change(db, "qc_share", 0, SHELL)  # reads only (quality-control items: tests/test_reader_qc.py)
    readers = [add_user(db, f"hammer-r{i}", "a long password", ["reader"], actor=SHELL).name for i in range(HAMMER_READERS)]
    judge = add_user(db, "hammer-judge", "a long password", ["adjudicator"], actor=SHELL).name
    db.close()

    t0 = time.time()
    procs = [start("hammer_reader", str(folder), n, i, HAMMER_SECONDS, 0.08) for i, n in enumerate(readers)]
    adj_proc = start("hammer_adjudicator", str(folder), judge, 99, HAMMER_SECONDS)
    coord_proc = start("hammer_coordinator", str(folder), HAMMER_SECONDS)
    results = [result(p, HAMMER_SECONDS + 240) for p in procs]
    adj, coord = result(adj_proc, HAMMER_SECONDS + 240), result(coord_proc, HAMMER_SECONDS + 240)
    wall = time.time() - t0

    everyone = [*results, adj, coord]
    assert sum(r["locked"] for r in everyone) == 0, [(r.get("name"), r["errors"][:2]) for r in everyone if r["locked"]]
    assert [e for r in everyone for e in r["errors"]] == []
    # The only refusals a reader may meet here: undoing a read of an image already adjudicated.
    assert all("adjudicated" in m for r in results for m in r["refused"]), [r["refused"][:3] for r in results]

    con = assert_consistent(folder / "fnp.sqlite3")
    acknowledged = sorted(read_id for r in results for _, read_id in r["done"])
    stored = [row[0] for row in con.execute("SELECT id FROM reads WHERE kind = 'read' AND id > ? ORDER BY id",
                                            (last_read_before,))]
    assert acknowledged == stored, "a read was lost, or one was stored that nobody was told of"
    undone = sorted(u for r in results for u in r["undone"])
    superseded = [row[0] for row in con.execute("SELECT supersedes FROM reads WHERE kind = 'undo' AND id > ? "
                                                "ORDER BY supersedes", (last_read_before,))]
    assert undone == superseded
    # Every decision is stored, and was taken on an image whose reads were all in and stayed in.
    decided = [a for _, a in adj["decided"]]
    assert len(decided) == con.execute("SELECT count(*) FROM adjudications").fetchone()[0] - finals_before
    assert con.execute(f"SELECT count(*) FROM adjudications a WHERE a.id > ? AND (SELECT count(*) FROM reads r "
                       f"WHERE r.image_id = a.image_id AND {EFFECTIVE}) < ?",
                       (finals_before, K)).fetchone()[0] == 0
    # The coordinator's exports are whole, and each holds the template's croppable final images.
    names = assert_exports_whole(folder / "exports")
    assert sorted(names) == sorted(n for n, _ in coord["exports"]) and coord["exports"]
    assert {n for _, n in coord["exports"]} == {TEMPLATE_IMAGES}
    n_reads, n_undos = len(acknowledged), len(undone)
    print(f"\nhammer {HAMMER_SECONDS:.0f} s ({wall:.0f} s wall with start-up): {n_reads} reads "
          f"({n_reads / HAMMER_SECONDS:.0f}/s), {n_undos} undos, {len(decided)} adjudications, "
          f"{len(coord['exports'])} exports, {sum(len(r['refused']) for r in results)} refused undos, 0 locked")
    assert n_reads > 100 and n_undos > 0 and decided and len(coord["exports"]) >= 2
    con.close()


# ---- 2. kill -9 at random points ----------------------------------------------------------------


CRASH_IMAGES = 200
KILLS_PER_STEP = 5
STEP_DEADLINE = 90  # seconds per step, kills and the final run included


def _start(args: list[str], data: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "FNP_DATA_DIR": str(data)}
    # A session of its own, so kill -9 reaches the process and any worker it started.
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, start_new_session=True,
                            stderr=subprocess.DEVNULL, **kw)


def _run_to_end(args: list[str], data: Path) -> None:
    """Run the job again, uninterrupted; it must finish cleanly."""
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env={**os.environ, "FNP_DATA_DIR": str(data)},
                          capture_output=True, text=True, timeout=STEP_DEADLINE)
    assert done.returncode == 0, done.stderr[-2000:]


def _kill9(proc: subprocess.Popen) -> bool:
    """SIGKILL the process group if it still runs; return whether it was killed."""
    if proc.poll() is not None:
        return False
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


def _count(dbfile: Path, sql: str) -> int:
    try:
        con = sqlite3.connect(dbfile, timeout=5)
        try:
            return con.execute(sql).fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:
        return -1  # not created yet


def _kill_when(proc, dbfile: Path, sql: str, target: int, delay: float, deadline: float) -> bool:
    """Wait until `sql` counts `target`, then `delay` seconds more, then kill -9; return whether it died by it."""
    while time.time() < deadline and proc.poll() is None and _count(dbfile, sql) < target:
        time.sleep(0.005)
    time.sleep(delay)
    return _kill9(proc)


@pytest.mark.slow
def test_kill_9_twenty_times_during_import_measure_read_and_export(tmp_path, astronaut):
    rng = random.Random(8)
    data = tmp_path / "data"
    dbfile = data / "fnp.sqlite3"
    db = open_project(data)
    readers = [add_user(db, f"crash-r{i}", "a long password", ["reader"], actor=SHELL) for i in range(2)]
    judge = add_user(db, "crash-judge", "a long password", ["adjudicator"], actor=SHELL)
    settings.change(db, "key_dwell_ms", 0, SHELL)  # machine-speed readers (see the hammer)
    settings.change(db, "qc_share", 0, SHELL)  # reads only (quality-control items: tests/test_reader_qc.py)
    db.close()
    kills, took, t = {}, {}, time.time()

    # -- import: photos committed one by one; a killed import is finished by running it again
    src = tmp_path / "in"
    manifest = photo_folder(src, astronaut, CRASH_IMAGES, 256)
    cmd = ["-m", "labeling", "import", "--images", str(src), "--manifest", str(manifest), "--json"]
    deadline = time.time() + STEP_DEADLINE
    committed: set[str] = set()
    kills["import"] = 0
    while kills["import"] < KILLS_PER_STEP and time.time() < deadline:
        target = len(committed) + rng.randint(5, 35)
        proc = _start(cmd, data, stdout=subprocess.DEVNULL)
        kills["import"] += _kill_when(proc, dbfile, "SELECT count(*) FROM images", target, rng.uniform(0, 0.05), deadline)
        con = assert_consistent(dbfile)
        now = {r[0] for r in con.execute("SELECT sha256 FROM images")}
        assert committed <= now, "a committed image was lost"
        for sha, rel in con.execute("SELECT sha256, stored_path FROM images"):  # committed => its original is whole
            assert hashlib.sha256((data / rel).read_bytes()).hexdigest() == sha
        committed = now
        con.close()
    assert kills["import"] == KILLS_PER_STEP and len(committed) < CRASH_IMAGES
    _run_to_end(cmd, data)
    con = assert_consistent(dbfile)
    assert con.execute("SELECT count(*), count(DISTINCT sha256) FROM images").fetchone() == (CRASH_IMAGES, CRASH_IMAGES)
    assert con.execute("SELECT count(*) FROM imports WHERE finished_at IS NULL").fetchone()[0] == KILLS_PER_STEP
    visible = {p.stem for p in (data / "images").rglob("*") if p.is_file() and not p.name.startswith(".")}
    assert visible == {r[0] for r in con.execute("SELECT sha256 FROM images")}
    assert not list((data / "images").rglob(".part-*")), "half-written originals of killed imports were left"
    con.close()

    took["import"], t = time.time() - t, time.time()

    # -- measurement: results committed in batches; committed ones are never lost or duplicated
    cmd = ["-m", "labeling", "measure", "--workers", "1"]  # one process: one model load per run
    deadline = time.time() + STEP_DEADLINE
    measured: dict[int, tuple] = {}
    kills["measure"] = 0
    while kills["measure"] < KILLS_PER_STEP and time.time() < deadline:
        # Results are committed 32 at a time: kill at a random moment of the batch after the next commit.
        proc = _start(cmd, data, stdout=subprocess.DEVNULL)
        kills["measure"] += _kill_when(proc, dbfile, "SELECT count(*) FROM measurements", len(measured) + 1,
                                       rng.uniform(0, 0.6), deadline)
        con = assert_consistent(dbfile)
        now = {r[0]: tuple(r[1:]) for r in con.execute("SELECT id, image_id, status, points FROM measurements")}
        assert all(now.get(i) == v for i, v in measured.items()), "a committed measurement was lost or changed"
        assert con.execute("SELECT count(*) - count(DISTINCT image_id) FROM measurements").fetchone()[0] == 0
        measured = now
        con.close()
    assert kills["measure"] == KILLS_PER_STEP and len(measured) < CRASH_IMAGES
    _run_to_end(cmd, data)
    con = assert_consistent(dbfile)
    assert con.execute("SELECT count(DISTINCT image_id), count(*) FROM measurements").fetchone() == (CRASH_IMAGES,) * 2
    con.close()

    took["measure"], t = time.time() - t, time.time()

    # -- reads: a reader process is killed; every read it was told of is stored, none twice
    names = ",".join(r.name for r in readers)
    deadline = time.time() + STEP_DEADLINE
    acked_reads: set[int] = set()
    acked_undos: set[int] = set()
    kills["read"] = 0

    def run_readers(target: int | None, seed: int) -> bool:
        code = f"from tests.workers import acknowledged_reads; acknowledged_reads({str(data)!r}, {names!r}, {seed}, 0.1)"
        proc = _start(["-c", code], data, stdout=subprocess.PIPE, text=True)
        seen = 0
        for line in proc.stdout:
            kind, read_id = line.split()
            (acked_reads if kind == "R" else acked_undos).add(int(read_id))
            seen += 1
            if target is not None and seen >= target:
                time.sleep(rng.uniform(0, 0.02))
                killed = _kill9(proc)
                for rest in proc.stdout:  # lines printed before the kill were acknowledged too
                    kind, read_id = rest.split()
                    (acked_reads if kind == "R" else acked_undos).add(int(read_id))
                return killed
        proc.wait()
        assert proc.returncode == 0
        return False

    while kills["read"] < KILLS_PER_STEP and time.time() < deadline:
        kills["read"] += run_readers(rng.randint(10, 60), seed=kills["read"])
        con = assert_consistent(dbfile)
        stored = {r[0] for r in con.execute("SELECT id FROM reads WHERE kind = 'read'")}
        undone = {r[0] for r in con.execute("SELECT supersedes FROM reads WHERE kind = 'undo'")}
        assert acked_reads <= stored, "an acknowledged read was lost"
        assert acked_undos <= undone, "an acknowledged undo was lost"
        con.close()
    assert kills["read"] == KILLS_PER_STEP
    run_readers(None, seed=99)  # running again finishes the job, the killed readers' claims included
    con = assert_consistent(dbfile)
    assert con.execute("SELECT count(*) FROM read_slots WHERE read_id IS NULL").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM reads r WHERE " + EFFECTIVE).fetchone()[0] == K * CRASH_IMAGES
    con.close()

    took["read"], t = time.time() - t, time.time()

    # -- export: every image gets a final label, then exports are killed at random moments
    db = open_project(data)
    settings.change(db, "check2_enabled", False, SHELL)  # agreed = final; disagreements go to the adjudicator
    from labeling.workflow.states import adjudicate, adjudication_queue

    for image_id in adjudication_queue(db, judge).image_id:
        adjudicate(db, judge, int(image_id), "N")
    db.close()
    exports = data / "exports"
    deadline = time.time() + 2 * STEP_DEADLINE
    killed_names, attempt = [], 0
    kills["export"] = 0
    while kills["export"] < KILLS_PER_STEP and time.time() < deadline:
        attempt += 1
        name = f"crash-{attempt}"
        proc = _start(["-m", "labeling", "export", "--name", name, "--workers", "1"], data, stdout=subprocess.DEVNULL)
        while time.time() < deadline and proc.poll() is None and not any(exports.glob(f".{name}.partial-*")):
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 1.5))  # cropping 200 photos takes about 1.5 s here
        if _kill9(proc):
            kills["export"] += 1
            killed_names.append(name)
        assert_exports_whole(exports)
        assert_consistent(dbfile).close()
    assert kills["export"] == KILLS_PER_STEP
    from labeling.export.dataset import list_exports

    listed = set(list_exports(data).name)
    assert listed == set(assert_exports_whole(exports)), "an export listed as done is not whole"
    # Running again finishes each (or finds it finished just before the kill): the first by the
    # command line, the others in this process to save start-up time.
    again = subprocess.run([sys.executable, "-m", "labeling", "export", "--name", killed_names[0], "--workers", "1"],
                           cwd=ROOT, env={**os.environ, "FNP_DATA_DIR": str(data)}, capture_output=True, text=True,
                           timeout=STEP_DEADLINE)
    assert again.returncode == 0 or "already exists" in again.stderr, again.stderr[-2000:]
    from labeling.export.dataset import ExportError, export_dataset

    db = open_project(data)
    for name in killed_names[1:]:
        try:
            export_dataset(db, data, name, actor=SHELL, workers=1)
        except ExportError as exc:
            assert "already exists" in str(exc)
    db.close()
    whole = assert_exports_whole(exports)
    assert set(killed_names) <= set(whole)
    assert not [p.name for p in exports.iterdir() if p.name.startswith(".")], "stale partial exports were left"
    assert sum(kills.values()) == 20, kills
    took["export"] = time.time() - t
    print(f"\nkill -9: {kills}; {len(whole)} whole exports afterwards; seconds per step "
          + ", ".join(f"{k} {v:.0f}" for k, v in took.items()))


# ---- 5. the scale bench runs (small) --------------------------------------------------------------


def test_scale_bench_runs_and_prints_its_figures():
    args = ["--images", "2000", "--ops", "40", "--n-boot", "0", "--rounds", "2"]
    out = subprocess.run([sys.executable, "bench/scale.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    for figure in ("claim-next", "submit-read", "status page", "agreement", "export manifest", "RSS"):
        assert figure in out.stdout, out.stdout
