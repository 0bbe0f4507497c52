"""Open the project's SQLite database with the settings every connection needs.

One file under the data folder (`FNP_DATA_DIR`, default ./data), WAL mode so readers never wait
for the writer, a busy timeout so writers queue instead of failing, foreign keys on.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import warnings
from pathlib import Path

import numpy as np
import sqlite_utils

BUSY_TIMEOUT_MS = 30_000


def data_dir() -> Path:
    """Return the data folder: $FNP_DATA_DIR, or ./data next to the working directory."""
    return Path(os.environ.get("FNP_DATA_DIR") or "data").resolve()


def database_path(folder: Path | None = None) -> Path:
    """Return the path of the SQLite file inside `folder` (default: the data folder)."""
    return (folder or data_dir()) / "fnp.sqlite3"


def now() -> str:
    """Return the current UTC time as an ISO-8601 string with milliseconds (sortable text)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def connect(path: Path | str) -> sqlite_utils.Database:
    """Open `path` with WAL, busy timeout and foreign keys; return a sqlite_utils Database.

    `isolation_level=None` leaves transactions to `transaction()` below, so a write is one
    explicit BEGIN IMMEDIATE ... COMMIT and never an implicit, half-open one.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return sqlite_utils.Database(conn)


class transaction:
    """`with transaction(db):` runs the block in BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error).

    IMMEDIATE takes the write lock up front, so two writers queue on the busy timeout instead of
    one failing with "database is locked" when it tries to upgrade a read lock.
    """

    def __init__(self, db: sqlite_utils.Database):
        self.conn = db.conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        return False


def open_project(folder: Path | None = None) -> sqlite_utils.Database:
    """Open (creating if needed) the project database in `folder` and apply pending migrations."""
    from db.migrations import migrate

    folder = folder or data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    db = connect(database_path(folder))
    migrate(db)
    return db


def audit(conn: sqlite3.Connection, actor: str | None, action: str, entity: str = "",
          entity_id: object = None, **detail) -> None:
    """Append one event to the audit log (inside the caller's transaction)."""
    conn.execute(
        "INSERT INTO audit_log (at, actor, action, entity, entity_id, detail) VALUES (?, ?, ?, ?, ?, ?)",
        (now(), actor or "system", action, entity, None if entity_id is None else str(entity_id),
         json.dumps(detail, sort_keys=True, default=str)),
    )


def get_setting(db: sqlite_utils.Database, key: str, default=None):
    """Return the project setting `key` (decoded from JSON), or `default`."""
    row = db.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
    return default if row is None else json.loads(row[0])


def set_setting(db: sqlite_utils.Database, key: str, value, actor: str | None = None) -> None:
    """Store the project setting `key` and audit the change."""
    with transaction(db) as conn:
        conn.execute("INSERT INTO settings (key, value) VALUES (?, ?) "
                     "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, json.dumps(value)))
        audit(conn, actor, "setting.changed", "setting", key, value=value)


def fetch_columns(db: sqlite_utils.Database, sql: str, params=(),
                  text: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Return the columns of `sql`'s rows by name, in row order, as numpy arrays typed as
    read_sql_query types them: integers as int64 (float64 with NaN if one is NULL), text as Python
    objects (None for NULL). Name the text columns in `text` (one holding only NULLs would come
    back as NaN). For integer and text columns: SQLite writes a REAL to JSON with 15 digits only.

    SQLite hands each column over as one JSON array, which json.loads decodes in C, and an integer
    column without NULLs np.fromstring reads straight into int64, five times faster still. A
    million rows fetched as Python tuples took twice as long, and read_sql_query then spends as
    long again turning their text into Arrow strings (docs/performance.md, "Scale").
    """
    names = [d[0] for d in db.execute(f"SELECT * FROM ({sql}) LIMIT 0", params).description]
    quoted = ['"' + name.replace('"', '""') + '"' for name in names]
    arrays = list(db.execute(f"SELECT {', '.join(f'json_group_array({q})' for q in quoted)} FROM ({sql})",
                             params).fetchone())
    out = {}
    for i, name in enumerate(names):
        out[name] = _json_column(arrays[i], name in text)
        arrays[i] = None  # each JSON text goes as soon as it is read: a million rows' worth is 60 MB
    return out


def _json_column(array: str, is_text: bool) -> np.ndarray:
    """One column of fetch_columns from its JSON array."""
    if not is_text and '"' not in array:  # numbers and NULLs only (JSON quotes every string)
        numbers = array[1:-1]
        with warnings.catch_warnings():  # numpy warns, and will raise, on text it cannot read
            warnings.simplefilter("error", DeprecationWarning)
            try:
                return np.fromstring(numbers, dtype=np.int64, sep=",")
            except (ValueError, DeprecationWarning):  # a NULL or a number with a point
                pass
            try:
                return np.fromstring(numbers.replace("null", "nan"), dtype=float, sep=",")
            except (ValueError, DeprecationWarning):
                pass
    return np.array(json.loads(array), dtype=object)
