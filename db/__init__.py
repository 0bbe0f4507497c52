"""The SQLite store: connection, numbered migrations and the queries the rest of the app uses."""
from db.access import connect, data_dir, database_path
from db.project import open_project

__all__ = ["connect", "data_dir", "database_path", "open_project"]
