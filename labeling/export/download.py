"""A finished export as one zip download, streamed from the export folder as it is read.

The zip holds exactly the folder's files (crops, manifest.csv, datacard.md, SHA256SUMS) and its
empty class folders, under NAME/, stored without compression (the crops are PNG already), so
unpacking it gives the folder back byte for byte. It is never built whole, in memory or on disk:
zipstream-ng reads each file in 64 KiB pieces while the bytes go out, and knows the zip's size
beforehand (so the browser shows progress and notices a cut-off download). Memory grows only with
the number of files (one central-directory entry each), not with their size.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from zipstream import ZIP_STORED, ZipStream

from db.access import Database, audit, transaction
from labeling.accounts.actors import Actor
from labeling.export.dataset import NAME_PATTERN, ExportError, exports_dir
from labeling.accounts.permissions import authorize, require

CHUNK = 1024 * 1024  # bytes handed to the web server at a time


@dataclass
class ExportZip:
    """A zip of one export, ready to stream: its file name, exact size and the bytes, lazily."""

    name: str
    file_name: str
    size: int
    stream: ZipStream

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        """Yield the zip in pieces of about `size` bytes (zipstream-ng's small pieces joined)."""
        pending: list[bytes] = []
        held = 0
        for piece in self.stream:
            pending.append(piece)
            held += len(piece)
            if held >= size:
                yield b"".join(pending)
                pending, held = [], 0
        if pending:
            yield b"".join(pending)


def finished_export(store: Path, name: str, out_dir: Path | None = None) -> Path:
    """Return the folder of the finished export `name`, or raise ExportError (no such export, a
    name that could leave the exports folder, one still being written)."""
    root = exports_dir(store, out_dir)
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise ExportError("no such export")
    path = root / name
    if path.is_symlink() or not path.is_dir() or not (path / "manifest.csv").is_file():
        raise ExportError(f"no finished export named {name!r}")
    return path


def _entries(folder: Path) -> Iterator[str]:
    """The folder's files and empty folders, sorted, without following links (an export has none;
    a link put there by hand is left out rather than followed outside the folder)."""
    for dirpath, dirnames, files in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not os.path.islink(os.path.join(dirpath, d)))
        kept = sorted(f for f in files if not os.path.islink(os.path.join(dirpath, f)))
        if not kept and not dirnames and dirpath != str(folder):
            yield dirpath + os.sep  # an empty class folder: kept so every split lists every class
        for f in kept:
            yield os.path.join(dirpath, f)


def export_zip(folder: Path) -> ExportZip:
    """Return the zip of the export `folder` (NAME/... inside), sized and not yet read."""
    folder = Path(folder)
    zs = ZipStream(compress_type=ZIP_STORED, sized=True)
    for path in _entries(folder):
        rel = os.path.relpath(path, folder)
        zs.add_path(path, f"{folder.name}/{rel}" + ("/" if path.endswith(os.sep) else ""), recurse=False)
    return ExportZip(folder.name, f"{folder.name}.zip", len(zs), zs)


def download_export(db: Database, store: Path, name: str, *, actor: Actor, out_dir: Path | None = None) -> ExportZip:
    """Return the zip of the finished export `name` for `actor` and log the download in the audit log.

    Raises PermissionDenied unless `actor` may export (checked again in the audit transaction),
    ExportError when there is no such finished export."""
    require(actor, "export")
    folder = finished_export(store, name, out_dir)
    z = export_zip(folder)
    with transaction(db) as conn:
        audit(conn, authorize(conn, actor, "export"), "export.downloaded", "export", name, bytes=z.size)
    return z
