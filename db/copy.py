"""Move a project's database from SQLite to PostgreSQL, verified: `python -m labeling db copy --to URL`.

Every table is copied row for row, ids included, in one transaction on the target, then compared
table by table (row count and a SHA-256 over the rows in key order, values written out the same
way on both sides) before that transaction commits: the copy is whole and identical, or nothing
is written. A target that already holds any row is refused. The per-image read summary is not
copied but rebuilt by the target's own trigger from the reads, and then compared like the rest.
The photos stay where they are: point $FNP_IMAGE_STORE (or the data folder) of every server at them.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from db.access import Database
from db.project import open_project

# Parents before children (foreign keys), and each table's key, which orders its rows for the digest.
TABLES: tuple[tuple[str, str], ...] = (
    ("settings", "key"), ("users", "id"), ("subjects", "id"), ("imports", "id"), ("images", "id"),
    ("image_names", "image_id, original_name"), ("import_issues", "id"), ("ground_truth", "image_id"),
    ("reads", "id"), ("adjudications", "id"), ("adjudication_undos", "id"), ("audit_log", "id"),
    ("landmark_corrections", "id"), ("measurements", "id"), ("quality_overrides", "id"),
    ("read_slots", "image_id, slot"), ("range_tables", "version"), ("check2_results", "id"),
    ("crop_corrections", "id"), ("model_runs", "id"), ("model_predictions", "id"),
    ("image_read_summary", "image_id"), ("sessions", "id"), ("gold_marks", "id"), ("qc_items", "id"),
    ("qc_answers", "id"),
)
DERIVED = frozenset({"image_read_summary"})  # rebuilt by the target's trigger, then compared
BATCH = 5000


class CopyError(RuntimeError):
    """The copy cannot be made, or did not come out identical (nothing was written); the message says why."""


@dataclass
class CopyReport:
    """What was copied: per table, (rows, SHA-256 of the rows) on both sides, equal."""

    tables: dict[str, tuple[int, str]] = field(default_factory=dict)

    def summary(self) -> str:
        rows = sum(n for n, _ in self.tables.values())
        return f"{len(self.tables)} tables, {rows:,} rows copied and verified (row counts and SHA-256 per table)"


def _columns(db, table: str) -> list[str]:
    return [d[0] for d in db.execute(f"SELECT * FROM {table} LIMIT 0").description]


def _text(v) -> str:
    if v is None:
        return "\u2205"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def table_digest(db, table: str, key: str, columns: list[str]) -> tuple[int, str]:
    """(row count, SHA-256 of the rows in `key` order, each value written out the same on any backend)."""
    h = hashlib.sha256()
    n = 0
    cur = db.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {key}")
    for row in cur.fetchall():
        h.update("\x1f".join(_text(v) for v in row).encode("utf-8"))
        h.update(b"\x1e")
        n += 1
    return n, h.hexdigest()


def copy_to_postgres(source: Database, url: str) -> CopyReport:
    """Copy the SQLite project `source` into the empty PostgreSQL database at `url` (migrated
    here); return the verified report, or raise CopyError with nothing written."""
    if getattr(source, "backend", "sqlite") != "sqlite":
        raise CopyError("the source is not an SQLite project")
    if not url.startswith(("postgresql://", "postgres://")):
        raise CopyError("the target must be a postgresql:// URL")
    target = open_project(url=url)
    try:
        busy = [t for t, _ in TABLES if target.execute(f"SELECT EXISTS (SELECT 1 FROM {t})").fetchone()[0]]
        if busy:
            raise CopyError(f"the target is not empty ({', '.join(busy[:5])} hold rows): copy into a new, empty database")
        report = CopyReport()
        with target.transaction() as conn:
            for table, key in TABLES:
                columns = _columns(source, table)
                if table in DERIVED:
                    continue
                cur = source.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {key}")
                insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
                while rows := cur.fetchmany(BATCH):
                    conn.executemany(insert, rows)
                if "id" in columns:  # the next new row continues after the copied ids
                    conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                 f"(SELECT coalesce(max(id), 1) FROM {table}), "
                                 f"(SELECT count(*) > 0 FROM {table}))")
            for table, key in TABLES:
                columns = _columns(source, table)
                ours = table_digest(source, table, key, columns)
                theirs = table_digest(_InTransaction(conn), table, key, columns)
                if ours != theirs:
                    raise CopyError(f"{table} differs after the copy ({ours[0]} rows here, {theirs[0]} there): "
                                    "nothing was written")
                report.tables[table] = ours
        return report
    finally:
        target.shutdown()


class _InTransaction:
    """The copy's own connection, read inside its still-open transaction."""

    def __init__(self, conn):
        self.conn = conn

    def execute(self, sql, params=None):
        return self.conn.execute(sql, params)
