"""Shared fixtures: a fresh project in a temporary data folder, and test photos made from the
astronaut face that ships with scikit-image (never a patient photo)."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
# XLA compiles the same ops at a lower optimisation level, so that tests compiling with XLA on (as a
# GPU does by default) fit a 2-core CPU; subprocesses inherit it.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true")

from db.project import open_project  # noqa: E402
from labeling.accounts.actors import SystemActor  # noqa: E402

# Who sets up test projects: the shell, as the command line does (never an invented user).
SHELL = SystemActor("system:tests")


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """An empty data folder, also exported as FNP_DATA_DIR for code and subprocesses."""
    d = tmp_path / "data"
    monkeypatch.setenv("FNP_DATA_DIR", str(d))
    return d


@pytest.fixture(scope="session")
def postgres_cluster():
    """A throwaway PostgreSQL cluster for the whole session (tests/postgres.py)."""
    from tests.postgres import Cluster

    cluster = Cluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def db(request, data_dir, monkeypatch):
    """A migrated project database: SQLite in the temporary data folder, or, for tests marked
    `both_backends` (run once on each), a fresh PostgreSQL database that $FNP_DATABASE_URL names
    for the code, the command line and any server the test starts."""
    backend = getattr(request, "param", "sqlite")
    name = None
    if backend == "postgresql":
        cluster = request.getfixturevalue("postgres_cluster")
        name, url = cluster.create()
        monkeypatch.setenv("FNP_DATABASE_URL", url)
    database = open_project(data_dir)
    yield database
    database.close()
    if name:
        from ui.common import _projects  # a page run in this process may hold one too

        for other in [database, *(p.db for p in _projects.values())]:
            getattr(other, "shutdown", other.close)()
        _projects.clear()
        cluster.drop(name)


def pytest_generate_tests(metafunc):
    """Tests marked `both_backends` run on SQLite and on PostgreSQL."""
    if "db" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_backends"):
        metafunc.parametrize("db", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's astronaut (512x512 RGB): a real face shipped in a package."""
    from skimage.data import astronaut as load

    return load()


def jpeg_bytes(rgb: np.ndarray, **save) -> bytes:
    """Return `rgb` encoded as JPEG."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90, **save)
    return buf.getvalue()


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def face_variants(astronaut: np.ndarray, n: int) -> list[bytes]:
    """Return `n` distinct JPEGs of the astronaut (small brightness changes make distinct bytes)."""
    out = []
    for i in range(n):
        arr = np.clip(astronaut.astype(np.int16) + (i % 20) - 10, 0, 255).astype(np.uint8)
        arr[:8, :8] = i % 256  # an 8x8 block survives JPEG, so every variant has its own bytes
        arr[:8, 8:16] = i // 256 % 256
        out.append(jpeg_bytes(arr))
    return out


def write_manifest(path: Path, rows: list[dict], header=("file", "subject", "movement", "source")) -> Path:
    """Write a manifest CSV with `header` columns from `rows`; return its path."""
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(header), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return path


def photo_folder(src: Path, astronaut: np.ndarray, n: int, side: int, prefix: str = "p",
                 subject: str = "S") -> Path:
    """Write `n` distinct astronaut JPEGs (`side` px square) into `src` with a manifest (7 movements
    per subject, all hospital photos); return the manifest's path."""
    src.mkdir(parents=True, exist_ok=True)
    small = np.asarray(Image.fromarray(astronaut).resize((side, side)))
    rows = []
    for i, jpeg in enumerate(face_variants(small, n)):
        (src / f"{prefix}{i:03d}.jpg").write_bytes(jpeg)
        rows.append({"file": f"{prefix}{i:03d}.jpg", "subject": f"{subject}{i // 7}", "movement": f"MV{i % 7}",
                     "source": "hospital"})
    return write_manifest(src / "m.csv", rows)


def read_next(db, reader, label=None, cannot_grade=None, now=None):
    """Claim `reader`'s next image and read it after looking at it for a second (past the minimum
    viewing time); return (image_id, read_id), or None when nothing is left for them."""
    import datetime as dt

    from labeling.workflow.queue import claim_next, submit_choice

    t = now or dt.datetime.now(dt.timezone.utc)
    claim = claim_next(db, reader, now=t - dt.timedelta(seconds=1))
    if claim is None:
        return None
    # A quality-control item (a share of every queue) is answered like any image; it is no read.
    return claim.image_id, submit_choice(db, reader, claim.token, label, cannot_grade=cannot_grade, now=t)


def read_image(db, reader, image_id, label=None, cannot_grade=None, now=None):
    """Have `reader` read a given image: the queue hands it over (its lowest open slot, as
    claim_next would, a second before) and the read goes through submit_read. For tests that need
    a particular image read: the reading order itself is random per reader."""
    import datetime as dt

    from db.access import transaction
    from labeling.workflow.queue import submit_read

    t = now or dt.datetime.now(dt.timezone.utc)
    before = (t - dt.timedelta(seconds=1)).isoformat(timespec="milliseconds")
    lease = (t + dt.timedelta(minutes=10)).isoformat(timespec="milliseconds")
    with transaction(db) as conn:
        slot = conn.execute("SELECT min(slot) FROM read_slots WHERE image_id = ? AND read_id IS NULL",
                            (image_id,)).fetchone()[0]
        assert slot is not None, f"image {image_id} has no open read slot"
        conn.execute("UPDATE read_slots SET reader_id = ?, lease_expires = ?, claimed_at = ? WHERE image_id = ? "
                     "AND slot = ?", (reader.id, lease, before, image_id, slot))
    return submit_read(db, reader, image_id, label, cannot_grade=cannot_grade, now=t)


def signed_in(at, user):
    """Sign `user` in for an AppTest run of the project in $FNP_DATA_DIR: a real session, its
    token where the page looks for it (AppTest cannot send the browser's cookie); return `at`."""
    from labeling.accounts.sessions import start_session
    from ui.common import TEST_TOKEN, project_database

    token, _ = start_session(project_database(), user)
    at.session_state[TEST_TOKEN] = token
    return at


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
