"""Several processes claim and submit at once against one database (an SQLite file, or PostgreSQL): no slot is read twice,
no read is lost, and no "database is locked" escapes."""
import pytest
import uuid

from db.access import transaction
from labeling.workflow import settings
from labeling.workflow.queue import ensure_slots
from labeling.accounts.users import add_user
from tests.workers import result, start
from tests.conftest import SHELL

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL (tests/conftest.py)

N_IMAGES = 80
N_READERS = 6


def test_parallel_readers_lose_nothing_and_double_nothing(db, data_dir):
    with transaction(db) as conn:
        conn.execute("INSERT INTO subjects (code, created_at) VALUES ('S1', 'x')")
        for _ in range(N_IMAGES):
            conn.execute("INSERT INTO images (sha256, subject_id, movement, source, mirrored, width, height, format, "
                         "mode, bytes, stored_path, imported_at) VALUES (?, 1, 'MV0', 'hospital', 0, 1, 1, 'JPEG', "
                         "'RGB', 1, 'x', 'x')", (uuid.uuid4().hex,))
    ensure_slots(db)
    settings.change(db, "key_dwell_ms", 0, SHELL)  # machine-speed readers: the database under load, not people
    settings.change(db, "qc_share", 0, SHELL)  # reads only (quality-control items: tests/test_reader_qc.py)
    names = [f"r{i}" for i in range(N_READERS)]
    for n in names:
        add_user(db, n, "a long password", ["reader"], actor=SHELL)
    procs = [start("reader_loop", str(data_dir), n, i, 90.0) for i, n in enumerate(names)]
    results = [result(p, timeout=300) for p in procs]
    assert sum(r["locked"] for r in results) == 0, [r["errors"][:3] for r in results]
    assert all(not r["errors"] for r in results), [r["errors"][:3] for r in results]
    returned = [read_id for r in results for _, read_id in r["done"]]
    stored = [r[0] for r in db.execute("SELECT id FROM reads")]
    assert sorted(returned) == sorted(stored)  # every acknowledged read is there, nothing else
    assert len(stored) == 2 * N_IMAGES  # every slot read exactly once
    per_image = db.execute("SELECT image_id, count(*), count(DISTINCT reader_id) FROM reads GROUP BY image_id").fetchall()
    assert len(per_image) == N_IMAGES and all(n == 2 and readers == 2 for _, n, readers in per_image)
    assert db.execute("SELECT count(*) FROM read_slots WHERE read_id IS NULL").fetchone()[0] == 0
    if db.backend == "sqlite":
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
