"""PostgreSQL behind the same door: `PostgresDatabase`, chosen by `FNP_DATABASE_URL=postgresql://...`.

The domain code is written once, in the SQL SQLite speaks; this module runs it on PostgreSQL
(psycopg 3) by translating each statement once (`translate`, cached): placeholders, `INSERT OR
IGNORE`, `json_extract`, `group_concat`, SQLite's null-safe `IS NOT`, case-insensitive `LIKE`,
and the `id` a new row got (`lastrowid`, by `RETURNING id`). Every thread has its own connection,
in autocommit between transactions, as with SQLite. A write transaction takes one
transaction-level advisory lock first: writes are serialised across every server process exactly
as SQLite's `BEGIN IMMEDIATE` serialises them, so every check-then-act of the domain (a claim,
an adjudication under the image's state, a settings change) is as correct on PostgreSQL as on
SQLite; the read queue's claim also locks its row (`FOR UPDATE SKIP LOCKED`). docs/deploy.md.
"""
from __future__ import annotations

import functools
import re
import threading
import weakref

import numpy as np
import pandas as pd

WRITE_LOCK = 0x666E70  # "fnp": the advisory lock every write transaction of a project takes

# Tables whose rows have an integer `id`: an INSERT into one hands back the new id (`lastrowid`).
ID_TABLES = frozenset({"users", "subjects", "imports", "images", "import_issues", "reads", "adjudications", "audit_log",
                       "measurements", "quality_overrides", "check2_results", "crop_corrections", "model_runs",
                       "model_predictions", "sessions", "adjudication_undos", "landmark_corrections", "gold_marks",
                       "qc_items", "qc_answers"})


class NestedTransaction(RuntimeError):
    """A write transaction was opened inside another on the same thread: a bug in the caller."""


def _split_literals(sql: str) -> list[tuple[bool, str]]:
    """The statement in pieces, each (is a quoted literal, text), so rewrites never touch literals."""
    out, i, n = [], 0, len(sql)
    while i < n:
        j = sql.find("'", i)
        if j < 0:
            out.append((False, sql[i:]))
            break
        out.append((False, sql[i:j]))
        k = j + 1
        while True:
            k = sql.find("'", k)
            if k < 0:
                raise ValueError("unterminated string literal in SQL")
            if k + 1 < n and sql[k + 1] == "'":
                k += 2
                continue
            break
        out.append((True, sql[j:k + 1]))
        i = k + 1
    return out


_JSON_EXTRACT = re.compile(r"json_extract\(\s*([\w.]+)\s*,\s*'\$\.(\w+)'\s*\)")
_EPOCH_MS = re.compile(r"CAST\(round\(\(julianday\(([\w.]+)\)\s*-\s*2440587\.5\)\s*\*\s*86400000\)\s*AS INTEGER\)")
_PROB = re.compile(r'(?<!["\w])prob_(N|L1|L2|L3|R1|R2|R3)\b(?!")')


@functools.lru_cache(maxsize=4096)
def translate(sql: str, with_params: bool = True) -> str:
    """Return SQLite-dialect `sql` in PostgreSQL's (with psycopg's %s / %(name)s placeholders; a
    literal % is doubled only when parameters go with it, as psycopg then reads the statement)."""
    sql = _JSON_EXTRACT.sub(lambda m: f"(CAST({m.group(1)} AS jsonb) ->> '{m.group(2)}')", sql)
    sql = _EPOCH_MS.sub(lambda m: f"CAST(round(extract(epoch from CAST({m.group(1)} AS timestamptz)) * 1000) AS BIGINT)",
                        sql)
    ignore = bool(re.match(r"\s*INSERT\s+OR\s+IGNORE\s+INTO", sql, re.I))
    if ignore:
        sql = re.sub(r"INSERT\s+OR\s+IGNORE\s+INTO", "INSERT INTO", sql, count=1, flags=re.I)
    pieces = []
    for literal, text in _split_literals(sql):
        if literal:
            pieces.append(text.replace("%", "%%") if with_params else text)
            continue
        if with_params:
            text = text.replace("%", "%%")
        text = re.sub(r"\bIS NOT\s+(\?|:\w+)", r"IS DISTINCT FROM \1", text)
        text = re.sub(r"\bIS\s+(\?|:\w+)", r"IS NOT DISTINCT FROM \1", text)
        text = re.sub(r":(\w+)", r"%(\1)s", text)
        text = text.replace("?", "%s")
        text = re.sub(r"\bLIKE\b", "ILIKE", text)
        text = re.sub(r"\bgroup_concat\(", "string_agg(", text)
        text = _PROB.sub(lambda m: f'"prob_{m.group(1)}"', text)
        pieces.append(text)
    sql = "".join(pieces)
    if ignore:
        sql = sql.rstrip().rstrip(";") + " ON CONFLICT DO NOTHING"
    return sql


def _returns_id(sql: str) -> bool:
    m = re.match(r"\s*INSERT\s+(?:OR\s+\w+\s+)?INTO\s+(\w+)", sql, re.I)
    return bool(m) and m.group(1).lower() in ID_TABLES and "RETURNING" not in sql.upper()


def _params(params):
    """psycopg takes a sequence or a mapping; SQLite callers also pass None and tuples of numpy scalars."""
    if params is None:
        return None
    if isinstance(params, dict):
        return {k: _plain(v) for k, v in params.items()}
    return [_plain(v) for v in params]


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    return v


class Cursor:
    """What `execute` returns: the rows, `rowcount`, `description` and, after an INSERT into a table
    with an id, `lastrowid` (as sqlite3's cursor has them)."""

    def __init__(self, cursor, lastrowid=None):
        self._cursor = cursor
        self.lastrowid = lastrowid
        self.rowcount = cursor.rowcount
        self.description = cursor.description

    def fetchone(self):
        if self._cursor.description is None:
            return None
        row = self._cursor.fetchone()
        return None if row is None else tuple(row)

    def fetchall(self):
        if self._cursor.description is None:
            return []
        return [tuple(r) for r in self._cursor.fetchall()]

    def __iter__(self):
        return iter(self.fetchall())


class Connection:
    """One thread's psycopg connection, spoken to in SQLite's SQL (translated)."""

    backend = "postgresql"

    def __init__(self, raw):
        self.raw = raw
        self.in_transaction = False
        self.returned = False  # given back to the pool: this wrapper is done

    def execute(self, sql: str, params=None) -> Cursor:
        pg = translate(sql, params is not None)
        wants_id = _returns_id(sql)
        if wants_id:
            pg = pg + " RETURNING id"
        cur = self.raw.cursor()
        cur.execute(pg, _params(params))
        if wants_id:
            row = cur.fetchone() if cur.description is not None else None
            return Cursor(cur, None if row is None else row[0])
        return Cursor(cur)

    def executemany(self, sql: str, seq) -> Cursor:
        cur = self.raw.cursor()
        cur.executemany(translate(sql), [_params(p) for p in seq])
        return Cursor(cur)

    def close(self) -> None:
        self.raw.close()


class _Transaction:
    def __init__(self, database: PostgresDatabase):
        self.database = database

    def __enter__(self) -> Connection:
        conn = self.database.conn
        if conn.in_transaction:
            raise NestedTransaction("a write transaction is already open on this thread; "
                                    "domain functions open their own and must not be nested")
        conn.raw.execute("BEGIN")
        conn.in_transaction = True
        try:
            conn.raw.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        except BaseException:
            conn.raw.execute("ROLLBACK")
            conn.in_transaction = False
            raise
        return conn

    def __exit__(self, exc_type, exc, tb):
        conn = self.database.conn
        try:
            conn.raw.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            conn.in_transaction = False
        return False


class PostgresDatabase:
    """The project database on PostgreSQL: the same door as `db.access.Database` (one connection
    per thread, `transaction()` for writes, `execute`, `query`, `frame`, `table_names`)."""

    backend = "postgresql"

    def __init__(self, url: str, max_connections: int = 40):
        self.url = url
        self._local = threading.local()
        self._pool = None
        self._pool_lock = threading.Lock()
        self.max_connections = max_connections

    def _connections(self):
        """The pool the threads borrow connections from (opened on first use): the server runs each
        page in a thread of its own, and a fresh PostgreSQL connection per page would cost a backend
        process start every time."""
        if self._pool is None:
            with self._pool_lock:
                if self._pool is None:
                    from psycopg_pool import ConnectionPool

                    self._pool = ConnectionPool(self.url, min_size=1, max_size=self.max_connections,
                                                kwargs={"autocommit": True}, open=True, name="fnp")
        return self._pool

    def __repr__(self) -> str:
        return f"<PostgresDatabase {re.sub(r'//[^@/]*@', '//***@', self.url)}>"

    @property
    def conn(self) -> Connection:
        """This thread's connection, borrowed from the pool on first use and given back when the
        thread ends (or at `close`)."""
        c = getattr(self._local, "conn", None)
        if c is None or c.returned or c.raw.closed:
            pool = self._connections()
            c = self._local.conn = Connection(pool.getconn())
            weakref.finalize(threading.current_thread(), _give_back, pool, c)
        return c

    def execute(self, sql: str, params=None) -> Cursor:
        """Run one statement on this thread's connection; return the cursor."""
        return self.conn.execute(sql, params)

    def query(self, sql: str, params=None):
        """Yield the rows of `sql` as dicts."""
        cur = self.conn.execute(sql, params)
        names = [d[0] for d in cur.description or ()]
        for row in cur.fetchall():
            yield dict(zip(names, row))

    def frame(self, sql: str, params=None) -> pd.DataFrame:
        """Return the rows of `sql` as a pandas DataFrame."""
        cur = self.conn.execute(sql, params)
        names = [d[0] for d in cur.description or ()]
        return pd.DataFrame(cur.fetchall(), columns=names)

    def fetch_columns(self, sql: str, params=(), text: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
        """`db.access.fetch_columns` on PostgreSQL: the columns of `sql` by name, as numpy arrays
        (integers as int64, float64 with NaN where one is NULL; text as objects)."""
        cur = self.conn.execute(sql, params)
        names = [d[0] for d in cur.description or ()]
        rows = cur.fetchall()
        out = {}
        for i, name in enumerate(names):
            values = [r[i] for r in rows]
            if name in text or any(isinstance(v, str) for v in values):
                out[name] = np.array(values, dtype=object)
            elif values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                out[name] = np.array(values, dtype=np.int64)
            elif not values:
                out[name] = np.array([], dtype=object if name in text else np.int64)
            else:
                out[name] = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
        return out

    def table_names(self) -> list[str]:
        """Return the names of the tables."""
        return [r[0] for r in self.conn.raw.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_type = 'BASE TABLE' ORDER BY table_name").fetchall()]

    def transaction(self) -> _Transaction:
        """`with db.transaction() as conn:` runs the block as one write transaction of this thread."""
        return _Transaction(self)

    def close(self) -> None:
        """Give this thread's connection back to the pool."""
        c = getattr(self._local, "conn", None)
        if c is not None:
            self._local.conn = None
            _give_back(self._pool, c)

    def shutdown(self) -> None:
        """Close every connection of the pool (at the end of a process or a test)."""
        self.close()
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def _give_back(pool, conn: Connection) -> None:
    """Return a borrowed connection once (its thread ended, or it was closed): the pool rolls back
    a transaction left open and drops a connection that went bad."""
    if pool is None or conn.returned:
        return
    conn.returned = True
    try:
        pool.putconn(conn.raw)
    except Exception:  # the pool was closed meanwhile
        pass

