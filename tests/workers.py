"""Worker functions for multi-process tests (importable by spawned processes)."""
from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path


def reader_loop(args: tuple[str, str, int, float]) -> dict:
    """Claim and submit as `name` until the queue is empty or time runs out; return what happened."""
    folder, name, seed, seconds = args
    from db.access import open_project
    from labeling.queue import QueueError, claim_next, submit_read
    from labeling.users import get_user

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
    db.conn.close()
    return {"name": name, "done": done, "errors": errors, "locked": locked}
