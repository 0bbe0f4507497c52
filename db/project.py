"""Opening a project: its database (SQLite by default, PostgreSQL when a URL names one) with every
migration applied. `db.access` is the door itself and knows nothing of the migrations, which use it."""
from __future__ import annotations

from pathlib import Path

from db.access import connect, data_dir, database_path, database_url
from db.migrations import migrate

__all__ = ["open_project"]


def open_project(folder: Path | None = None, url: str | None = None):
    """Open (creating if needed) the project database and apply pending migrations: on PostgreSQL
    when `url` (or $FNP_DATABASE_URL) names one, else the SQLite file in `folder` (default: the
    data folder, which holds the photos either way unless $FNP_IMAGE_STORE says otherwise)."""
    folder = folder or data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    db = connect(url or database_url() or database_path(folder))
    migrate(db)
    return db
