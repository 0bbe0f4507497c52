"""Project-wide counts for the home and status pages (one query each, cheap at 100k images)."""
from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils


@dataclass(frozen=True)
class ProjectSummary:
    """Counts a coordinator checks first."""

    images: int
    synthetic_images: int
    subjects: int
    reads: int
    users: int
    imports: int
    interrupted_imports: int
    per_movement: dict[str, int]


def project_summary(db: sqlite_utils.Database) -> ProjectSummary:
    """Return the project's headline counts."""
    one = lambda sql: db.execute(sql).fetchone()[0] or 0  # noqa: E731
    per_movement = dict(db.execute("SELECT movement, count(*) FROM images GROUP BY movement ORDER BY movement").fetchall())
    return ProjectSummary(
        images=one("SELECT count(*) FROM images"),
        synthetic_images=one("SELECT count(*) FROM images WHERE synthetic = 1"),
        subjects=one("SELECT count(*) FROM subjects"),
        reads=one("SELECT count(*) FROM reads WHERE kind = 'read'"),
        users=one("SELECT count(*) FROM users"),
        imports=one("SELECT count(*) FROM imports"),
        interrupted_imports=one("SELECT count(*) FROM imports WHERE finished_at IS NULL"),
        per_movement=per_movement,
    )


def import_history(db: sqlite_utils.Database, limit: int = 20) -> list[dict]:
    """Return the latest imports, newest first, with their counts (started: UTC, ISO 8601)."""
    import json

    rows = db.query("SELECT id, started_at, finished_at, actor, origin, manifest, counts FROM imports "
                    "ORDER BY id DESC LIMIT ?", [limit])
    out = []
    for r in rows:
        counts = json.loads(r["counts"]) if r["counts"] else {}
        out.append({"import": r["id"], "started": r["started_at"],
                    "status": "finished" if r["finished_at"] else "interrupted", "by": r["actor"],
                    "origin": r["origin"], "manifest": r["manifest"], **counts})
    return out


def import_issues(db: sqlite_utils.Database, import_id: int) -> list[dict]:
    """Return the report rows of one import."""
    return [{"file": f, "row": row, "severity": s, "reason": reason} for f, row, s, reason in
            db.execute("SELECT file, row, severity, reason FROM import_issues WHERE import_id = ? ORDER BY id", [import_id])]
