"""The store: migrations, connection settings and append-only tables enforced by the database
itself (SQLite's triggers, PostgreSQL's), whoever connects."""
import sqlite3

import psycopg
import pytest

from db.access import audit, connect, transaction
from db.project import open_project
from db.migrations import MIGRATIONS, applied, migrate

REFUSED = (sqlite3.IntegrityError, psycopg.errors.IntegrityError, psycopg.errors.RaiseException)


def test_migrations_from_empty_then_reapplied_are_a_no_op(data_dir):
    db = open_project(data_dir)
    assert applied(db) == [n for n, _, _ in MIGRATIONS]
    for table in ("users", "subjects", "images", "reads", "adjudications", "audit_log", "ground_truth"):
        assert table in db.table_names()
    assert migrate(db) == []
    db2 = open_project(data_dir)  # a second process starting later
    assert applied(db2) == applied(db)


def test_connection_settings(db):
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def _seed_read(db):
    with transaction(db) as conn:
        conn.execute("INSERT INTO users (name, password_hash, roles, created_at) VALUES ('r1', 'x', 'reader', 'now')")
        conn.execute("INSERT INTO subjects (code, created_at) VALUES ('S1', 'now')")
        conn.execute("INSERT INTO images (sha256, subject_id, movement, source, mirrored, width, height, format, mode, "
                     "bytes, stored_path, imported_at) VALUES ('h', 1, 'MV0', 'hospital', 0, 10, 10, 'PNG', 'RGB', 1, 'p', 'now')")
        conn.execute("INSERT INTO reads (image_id, reader_id, label, submitted_at) VALUES (1, 1, 'N', 'now')")
        conn.execute("INSERT INTO adjudications (image_id, adjudicator_id, decision, label, at) VALUES (1, 1, 'final', 'N', 'now')")
        audit(conn, "tester", "test.event")


def _raw(db):
    """A connection that knows nothing of our code (sqlite3 on the file, psycopg on the URL)."""
    if db.backend == "postgresql":
        return psycopg.connect(db.url, autocommit=True)
    return sqlite3.connect(db.path, isolation_level=None)


@pytest.mark.both_backends
@pytest.mark.parametrize("table", ["reads", "adjudications", "audit_log"])
def test_append_only_tables_refuse_update_and_delete(db, table):
    _seed_read(db)
    with pytest.raises(REFUSED, match="append-only"):
        db.execute(f"UPDATE {table} SET id = id WHERE 1 = 1")
    with pytest.raises(REFUSED, match="append-only"):
        db.execute(f"DELETE FROM {table}")
    assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] >= 1
    raw = _raw(db)  # a raw connection that knows nothing of our code is refused too
    with pytest.raises(REFUSED):
        raw.execute(f"DELETE FROM {table}")
    if db.backend == "postgresql":
        with pytest.raises(REFUSED):
            raw.execute(f"TRUNCATE {table} CASCADE")
    raw.close()


@pytest.mark.both_backends
def test_reads_check_constraints(db):
    _seed_read(db)
    with pytest.raises(REFUSED):
        db.execute("INSERT INTO reads (image_id, reader_id, label, submitted_at) VALUES (1, 1, 'X9', 'now')")
    with pytest.raises(REFUSED):  # neither a label nor a reason
        db.execute("INSERT INTO reads (image_id, reader_id, submitted_at) VALUES (1, 1, 'now')")
    with pytest.raises(REFUSED):  # foreign key
        db.execute("INSERT INTO reads (image_id, reader_id, label, submitted_at) VALUES (99, 1, 'N', 'now')")


@pytest.mark.both_backends
def test_transaction_rolls_back_on_error(db):
    with pytest.raises(RuntimeError):
        with transaction(db) as conn:
            conn.execute("INSERT INTO subjects (code, created_at) VALUES ('S9', 'now')")
            raise RuntimeError("boom")
    assert db.execute("SELECT count(*) FROM subjects").fetchone()[0] == 0


def test_connect_creates_parent_folder(tmp_path):
    db = connect(tmp_path / "a" / "b" / "x.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
