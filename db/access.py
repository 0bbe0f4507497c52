"""The one door to the project's database: `Database`, opened once per process, used by every thread.

SQLite file under the data folder (`FNP_DATA_DIR`, default ./data), WAL mode so readers never wait
for the writer, a busy timeout so writers queue instead of failing, foreign keys on.

The app server runs every browser session in threads of its own, so a connection is never shared:
`Database` hands each thread its own sqlite3 connection (opened on first use, closed when the
thread ends), and a write is one `with db.transaction():` block on that connection. Two sessions'
statements can then never land in one transaction, and SQLite's own write lock (BEGIN IMMEDIATE)
serialises the writers, across threads and server processes alike. docs/architecture.md explains
the choice (per-thread connections as datasette keeps them) and where a second backend would sit.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import threading
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import sqlite_utils

BUSY_TIMEOUT_MS = 30_000


class NestedTransaction(RuntimeError):
    """A write transaction was opened inside another on the same thread: a bug in the caller."""


def data_dir() -> Path:
    """Return the data folder: $FNP_DATA_DIR, or ./data next to the working directory."""
    return Path(os.environ.get("FNP_DATA_DIR") or "data").resolve()


def database_path(folder: Path | None = None) -> Path:
    """Return the path of the SQLite file inside `folder` (default: the data folder)."""
    return (folder or data_dir()) / "fnp.sqlite3"


def now() -> str:
    """Return the current UTC time as an ISO-8601 string with milliseconds (sortable text)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def _open_connection(path: Path) -> sqlite3.Connection:
    """Open one connection with the settings every connection needs.

    `isolation_level=None` leaves transactions to `Database.transaction`, so a write is one
    explicit BEGIN IMMEDIATE ... COMMIT and never an implicit, half-open one. The connection stays
    bound to the thread that opened it (`check_same_thread`): sharing one is refused by sqlite3
    itself instead of silently mixing two sessions' statements.
    """
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error) on the calling thread's connection.

    IMMEDIATE takes the write lock up front, so two writers queue on the busy timeout instead of
    one failing with "database is locked" when it tries to upgrade a read lock.
    """

    def __init__(self, database: Database):
        self.database = database

    def __enter__(self) -> sqlite3.Connection:
        conn = self.database.conn
        if conn.in_transaction:
            raise NestedTransaction("a write transaction is already open on this thread; "
                                    "domain functions open their own and must not be nested")
        conn.execute("BEGIN IMMEDIATE")
        return conn

    def __exit__(self, exc_type, exc, tb):
        conn = self.database.conn
        if conn.in_transaction:
            conn.execute("ROLLBACK" if exc_type else "COMMIT")
        return False


class Database:
    """The project database: one connection per thread, transactions never shared between threads.

    Use it as a sqlite-utils database (`execute`, `query`, `table_names`, `db["table"]`) and write
    with `with db.transaction() as conn:`. Safe to create once per process and hand to every thread.
    """

    backend = "sqlite"

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"<Database {self.path}>"

    @property
    def utils(self) -> sqlite_utils.Database:
        """This thread's sqlite-utils handle (opened on first use)."""
        handle = getattr(self._local, "utils", None)
        if handle is None:
            handle = self._local.utils = sqlite_utils.Database(_open_connection(self.path))
        return handle

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's sqlite3 connection."""
        return self.utils.conn

    def execute(self, sql: str, params=None) -> sqlite3.Cursor:
        """Run one statement on this thread's connection; return the cursor."""
        return self.conn.execute(sql, params or ())

    def query(self, sql: str, params=None):
        """Yield the rows of `sql` as dicts (sqlite-utils' `query`)."""
        return self.utils.query(sql, params or ())

    def frame(self, sql: str, params=None) -> pd.DataFrame:
        """Return the rows of `sql` as a pandas DataFrame (column names as the query gives them)."""
        return pd.read_sql_query(sql, self.conn, params=params or None)

    def table_names(self) -> list[str]:
        """Return the names of the tables."""
        return self.utils.table_names()

    def __getitem__(self, table: str):
        return self.utils[table]

    def transaction(self) -> _Transaction:
        """`with db.transaction() as conn:` runs the block as one write transaction of this thread."""
        return _Transaction(self)

    def close(self) -> None:
        """Close this thread's connection (another is opened if the thread uses the database again)."""
        handle = getattr(self._local, "utils", None)
        if handle is not None:
            handle.conn.close()
            self._local.utils = None


def transaction(db: Database) -> _Transaction:
    """`with transaction(db) as conn:` is `with db.transaction() as conn:`."""
    return db.transaction()


def connect(path: Path | str):
    """Return the `Database` of the SQLite file `path` (WAL, busy timeout, foreign keys on), or a
    `db.postgres.PostgresDatabase` when `path` is a postgresql:// URL."""
    if str(path).startswith(("postgresql://", "postgres://")):
        from db.postgres import PostgresDatabase

        return PostgresDatabase(str(path))
    return Database(path)


def database_url() -> str | None:
    """Return $FNP_DATABASE_URL (a postgresql:// URL) when the project lives on PostgreSQL, else None."""
    return os.environ.get("FNP_DATABASE_URL") or None


def image_store(folder: Path | None = None) -> Path:
    """Return the folder of the original photos: $FNP_IMAGE_STORE (shared by every server of a
    project, e.g. a network mount), else the data folder. The database holds only paths relative to
    it (images/ab/<sha256>.jpg), so the store can move."""
    env = os.environ.get("FNP_IMAGE_STORE")
    return Path(env).resolve() if env else (folder or data_dir())


def audit(conn: sqlite3.Connection, actor: str | None, action: str, entity: str = "",
          entity_id: object = None, **detail) -> None:
    """Append one event to the audit log (inside the caller's transaction)."""
    conn.execute(
        "INSERT INTO audit_log (at, actor, action, entity, entity_id, detail) VALUES (?, ?, ?, ?, ?, ?)",
        (now(), actor or "system", action, entity, None if entity_id is None else str(entity_id),
         json.dumps(detail, sort_keys=True, default=str)),
    )


def get_setting(db: Database, key: str, default=None):
    """Return the project setting `key` (decoded from JSON), or `default`."""
    row = db.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
    return default if row is None else json.loads(row[0])


def put_setting(conn: sqlite3.Connection, key: str, value) -> None:
    """Store the project setting `key` inside the caller's transaction."""
    conn.execute("INSERT INTO settings (key, value) VALUES (?, ?) "
                 "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, json.dumps(value)))


def fetch_columns(db: Database, sql: str, params=(),
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
    if getattr(db, "backend", "sqlite") != "sqlite":
        return db.fetch_columns(sql, params, text)
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
