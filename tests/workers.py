"""Worker functions for multi-process tests, each run in a fresh interpreter by `start`.

Not multiprocessing: its spawned children re-run the parent's __main__, which after a Streamlit
AppTest in the same pytest process is that test's page script, and the pool then hangs.
"""
from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]



def _unexpected(out: dict, exc: Exception) -> None:
    """Record an exception the caller did not expect; "database is locked" is counted apart."""
    out["locked"] += isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
    out["errors"].append(repr(exc))

def start(function: str, *args) -> subprocess.Popen:
    """Start `function(args)` of this module in a new Python process; `result(proc)` returns its value."""
    return subprocess.Popen([sys.executable, "-m", "tests.workers", function, json.dumps(args)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen, timeout: float) -> dict:
    """Wait for a process from `start` and return what its function returned (JSON: tuples become lists)."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.splitlines()[-1])


def reader_loop(args: tuple[str, str, int, float]) -> dict:
    """Claim and submit as `name` until the queue is empty or time runs out; return what happened."""
    folder, name, seed, seconds = args
    from db.project import open_project
    from labeling.workflow.queue import QueueError, claim_next, submit_read
    from labeling.accounts.users import get_user

    db = open_project(Path(folder))
    user = get_user(db, name)
    rng = random.Random(seed)
    done, errors, locked = [], [], 0
    end = time.time() + seconds
    while time.time() < end:
        try:
            claim = claim_next(db, user)
            if claim is None:
                break
            read_id = submit_read(db, user, claim.image_id, rng.choice(["N", "L1", "R2"]))
            done.append((claim.image_id, read_id))
        except sqlite3.OperationalError as exc:
            locked += "locked" in str(exc)
            errors.append(str(exc))
        except QueueError as exc:
            errors.append(str(exc))
    db.close()
    return {"name": name, "done": done, "errors": errors, "locked": locked}


def hammer_reader(args: tuple[str, str, int, float, float]) -> dict:
    """Claim, submit and now and then undo as `name` for `seconds`; return every acknowledged read
    and undo, the errors the app shows a reader (QueueError), and any other error."""
    folder, name, seed, seconds, undo_rate = args
    from db.project import open_project
    from labeling.workflow.queue import QueueError, claim_next, submit_read, undo_last_read
    from labeling.accounts.users import get_user

    db = open_project(Path(folder))
    user = get_user(db, name)
    rng = random.Random(seed)
    out = {"name": name, "done": [], "undone": [], "refused": [], "errors": [], "locked": 0}
    effective: list[int] = []  # this reader's reads not undone, oldest first: an undo takes the newest
    end = time.time() + seconds
    while time.time() < end:
        try:
            if effective and rng.random() < undo_rate:
                undo_last_read(db, user)
                out["undone"].append(effective.pop())
                continue
            claim = claim_next(db, user)
            if claim is None:
                break
            label, reason = (None, "eyes closed") if rng.random() < 0.05 else (rng.choice(["N", "L1", "R2"]), None)
            read_id = submit_read(db, user, claim.image_id, label, cannot_grade=reason)
            out["done"].append((claim.image_id, read_id))
            effective.append(read_id)
        except QueueError as exc:
            out["refused"].append(str(exc))
        except Exception as exc:  # noqa: BLE001 - the test reports anything unexpected
            _unexpected(out, exc)
    db.close()
    return out


def hammer_adjudicator(args: tuple[str, str, int, float]) -> dict:
    """Decide (or now and then exclude) whatever comes up for adjudication, for `seconds`."""
    folder, name, seed, seconds = args
    from db.project import open_project
    from labeling.accounts.users import get_user
    from labeling.workflow.states import WorkflowError, adjudicate, adjudication_queue

    db = open_project(Path(folder))
    judge = get_user(db, name)
    rng = random.Random(seed)
    out = {"name": name, "decided": [], "refused": [], "errors": [], "locked": 0, "rounds": 0}
    end = time.time() + seconds
    while time.time() < end:
        try:
            out["rounds"] += 1
            queue = adjudication_queue(db, judge)
            if queue.empty:
                time.sleep(0.05)
                continue
            image_id = int(queue.image_id.iloc[rng.randrange(min(len(queue), 10))])
            if rng.random() < 0.1:
                adj = adjudicate(db, judge, image_id, exclude_reason="<b>'; DROP TABLE reads; --</b>")
            else:
                adj = adjudicate(db, judge, image_id, rng.choice(["N", "L1", "R2"]))
            out["decided"].append((image_id, adj))
        except WorkflowError as exc:
            out["refused"].append(str(exc))
        except Exception as exc:  # noqa: BLE001 - the test reports anything unexpected
            _unexpected(out, exc)
    db.close()
    return out


def hammer_coordinator(args: tuple[str, float]) -> dict:
    """Export again and again (and look at the status counts) for `seconds`; return the exports."""
    folder, seconds = args
    from db.project import open_project
    from labeling.export.dataset import export_dataset
    from labeling.accounts.actors import SystemActor
    from labeling.workflow.states import state_counts

    db = open_project(Path(folder))
    coord = SystemActor("system:hammer-exporter")
    out = {"exports": [], "errors": [], "locked": 0}
    end = time.time() + seconds
    n = 0
    while time.time() < end:
        n += 1
        try:
            res = export_dataset(db, Path(folder), f"hammer-{n}", actor=coord, workers=1)
            state_counts(db)
            out["exports"].append((res.name, res.images))
        except Exception as exc:  # noqa: BLE001 - the test reports anything unexpected
            _unexpected(out, exc)
    db.close()
    return out


def acknowledged_reads(folder: str, names: str, seed: int, undo_rate: float) -> None:
    """Read with the readers `names` (comma-separated) in turn until the queue is empty, printing
    "R <read id>" after each committed read and "U <read id>" after each committed undo: a parent
    that kills this process knows what was acknowledged. Run as a subprocess by the crash test."""
    from db.project import open_project
    from labeling.workflow.queue import QueueError, claim_next, submit_read, undo_last_read
    from labeling.accounts.users import get_user

    db = open_project(Path(folder))
    users = [get_user(db, n) for n in names.split(",")]
    rng = random.Random(seed)
    last: dict[str, int] = {}
    working = list(users)
    while working:
        user = working[rng.randrange(len(working))]
        if user.name in last and rng.random() < undo_rate:
            try:
                undo_last_read(db, user)
                print(f"U {last[user.name]}", flush=True)
            except QueueError:
                pass
            del last[user.name]  # one undo per read at most: the next would reach an older read
            continue
        claim = claim_next(db, user)
        if claim is None:
            working.remove(user)
            continue
        read_id = submit_read(db, user, claim.image_id, rng.choice(["N", "L1"]))
        last[user.name] = read_id
        print(f"R {read_id}", flush=True)
    db.close()


if __name__ == "__main__":
    print(json.dumps(globals()[sys.argv[1]](tuple(json.loads(sys.argv[2])))))
