"""The project: the first object to learn. Every page, command and benchmark starts from one.

    project = Project.open()            # the data folder of $FNP_DATA_DIR (default ./data)
    project.db                          # the database door (db.access.Database, or PostgreSQL's)
    project.store                       # the folder of the photos and exports ($FNP_IMAGE_STORE)
    project.settings()                  # every setting as it stands, read at once
    project.vocabulary.CLASSES          # the protocol's words (labeling/vocabulary.py)

The domain functions take what they use (`import_folder(project.db, project.store, ...)`), so they
stay testable with any database and folder; the project object is where those come from.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, ModuleType

from db.access import Database, data_dir, image_store
from db.project import open_project
from labeling import vocabulary as _vocabulary
from labeling.workflow import settings as _settings

__all__ = ["Project"]


@dataclass(eq=False)
class Project:
    """One FNP TripleCheck project: its database, its image store, its settings and vocabulary."""

    db: Database
    folder: Path  # the data folder (the SQLite file lives here unless a PostgreSQL URL is set)
    store: Path  # the photos (content-addressed) and the exports; shared by every server of a project

    vocabulary: ModuleType = _vocabulary

    @classmethod
    def open(cls, folder: Path | None = None, url: str | None = None) -> Project:
        """Open (creating if needed) the project of `folder` (default: the data folder), on
        PostgreSQL when `url` (or $FNP_DATABASE_URL) names one; apply pending migrations."""
        folder = Path(folder) if folder is not None else data_dir()
        return cls(open_project(folder, url), folder, image_store(folder))

    @property
    def backend(self) -> str:
        """The database backend: "sqlite" or "postgresql"."""
        return self.db.backend

    def settings(self) -> MappingProxyType:
        """Every project setting as it stands now (declared defaults for those never changed), read
        in one query: an operation reads them once and works from this."""
        return _settings.snapshot(self.db)

    def close(self) -> None:
        """Close this thread's database connection (a PostgreSQL pool too)."""
        getattr(self.db, "shutdown", self.db.close)()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
