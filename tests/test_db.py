"""The store: migrations, connection settings and append-only tables enforced by SQLite itself."""
import sqlite3

import pytest

from db.access import audit, connect, database_path, open_project, transaction
from db.migrations import MIGRATIONS, applied, migrate


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


@pytest.mark.parametrize("table", ["reads", "adjudications", "audit_log"])
def test_append_only_tables_refuse_update_and_delete(db, table):
    _seed_read(db)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute(f"UPDATE {table} SET id = id WHERE 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute(f"DELETE FROM {table}")
    assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] >= 1
    # A raw connection that knows nothing of our code is refused too.
    raw = sqlite3.connect(database_path(db_path_folder(db)))
    with pytest.raises(sqlite3.IntegrityError):
        raw.execute(f"DELETE FROM {table}")
    raw.close()


def db_path_folder(db):
    from pathlib import Path

    return Path(db.execute("PRAGMA database_list").fetchone()[2]).parent


def test_reads_check_constraints(db):
    _seed_read(db)
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO reads (image_id, reader_id, label, submitted_at) VALUES (1, 1, 'X9', 'now')")
    with pytest.raises(sqlite3.IntegrityError):  # neither a label nor a reason
        db.execute("INSERT INTO reads (image_id, reader_id, submitted_at) VALUES (1, 1, 'now')")
    with pytest.raises(sqlite3.IntegrityError):  # foreign key
        db.execute("INSERT INTO reads (image_id, reader_id, label, submitted_at) VALUES (99, 1, 'N', 'now')")


def test_transaction_rolls_back_on_error(db):
    with pytest.raises(RuntimeError):
        with transaction(db) as conn:
            conn.execute("INSERT INTO subjects (code, created_at) VALUES ('S9', 'now')")
            raise RuntimeError("boom")
    assert db.execute("SELECT count(*) FROM subjects").fetchone()[0] == 0


def test_connect_creates_parent_folder(tmp_path):
    db = connect(tmp_path / "a" / "b" / "x.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
