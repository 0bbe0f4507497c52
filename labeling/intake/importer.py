"""Import photos with their manifest: validate, store content-addressed, record, report.

Originals are stored once under `images/<sha[:2]>/<sha>.<ext>` and never modified; the SHA-256
of the bytes is an image's identity, so importing the same files again adds nothing. Each image
is committed on its own, so an import killed half-way is finished by running it again.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from asymmetry.imaging import probe
from db.access import Database, audit, now, transaction
from labeling.workflow import settings
from labeling.intake.manifest import ImportIssue, ManifestRow, parse_manifest
from labeling.accounts.actors import Actor
from labeling.accounts.permissions import authorize, require

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".heic"}
EXT_BY_FORMAT = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tiff", "BMP": ".bmp", "WEBP": ".webp",
                 "GIF": ".gif", "MPO": ".jpg"}
MAX_FILE_BYTES = 200 * 1024 * 1024
ZIP_MAX_TOTAL = 20 * 1024**3
ZIP_MAX_RATIO = 200
PART_PREFIX = ".part-"

Progress = Callable[[int, int, str], None]


@dataclass
class ImportReport:
    """What an import did: counts and one issue per problem file or row."""

    import_id: int | None = None
    rows: int = 0
    added: int = 0
    already_present: int = 0
    issues: list[ImportIssue] = field(default_factory=list)

    @property
    def errors(self) -> list[ImportIssue]:
        return [i for i in self.issues if i.severity == "error"]

    def counts(self) -> dict:
        """Return the summary counts as a dict (stored with the import)."""
        return {"rows": self.rows, "added": self.added, "already_present": self.already_present,
                "errors": len(self.errors), "warnings": sum(i.severity == "warning" for i in self.issues)}

    def summary(self) -> str:
        """Return a one-line, human summary."""
        from labeling.words import plural

        c = self.counts()
        return (f"{plural(c['added'], 'image')} added, {c['already_present']:,} already present; "
                f"{plural(c['errors'], 'error')} and {plural(c['warnings'], 'warning')} in the report; "
                f"{plural(c['rows'], 'manifest row')} read")


def sha256_bytes(data: bytes) -> str:
    """Return the hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def store_original(store: Path, data: bytes, digest: str, ext: str) -> Path:
    """Write `data` to the content-addressed store unless present; return its path relative to `store`.

    Written to a temporary file and renamed, so a crash never leaves a partial original under
    its final name.
    """
    rel = Path("images") / digest[:2] / f"{digest}{ext}"
    dest = store / rel
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f"{PART_PREFIX}{os.getpid()}-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return rel


def process_alive(pid: int) -> bool:
    """Return True unless no process `pid` runs on this machine (another user's process counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def left_by_dead_processes(paths: Iterable[Path], pattern: re.Pattern) -> list[Path]:
    """Return the `paths` whose name matches `pattern` (group 1: the writing process's id) and
    whose process no longer runs: what a killed import or export left half-written. The files of
    a running process, and names without a process id, are never returned."""
    out = []
    for p in paths:
        m = pattern.fullmatch(p.name)
        if m and not process_alive(int(m.group(1))):
            out.append(p)
    return out


_PART = re.compile(re.escape(PART_PREFIX) + r"(\d+)-.*")


def remove_stale_parts(store: Path) -> int:
    """Delete half-written originals (`.part-PID-…`) left by import processes that were killed;
    return how many. Files of a running import are left alone."""
    stale = left_by_dead_processes((Path(store) / "images").glob(f"*/{PART_PREFIX}*"), _PART)
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def _subject_id(conn, row: ManifestRow, synthetic: bool, issues: list[ImportIssue]) -> int:
    """Return the id of `row`'s subject, creating it; warn when its attributes disagree."""
    found = conn.execute("SELECT id, sex, age_group, cohort FROM subjects WHERE code = ?", (row.subject,)).fetchone()
    if found is None:
        cur = conn.execute("INSERT INTO subjects (code, sex, age_group, cohort, synthetic, created_at) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           (row.subject, row.sex, row.age_group, row.cohort, int(synthetic), now()))
        return cur.lastrowid
    sid, *known = found
    for col, old, new in zip(("sex", "age_group", "cohort"), known, (row.sex, row.age_group, row.cohort)):
        if new is not None and old is None:
            conn.execute(f"UPDATE subjects SET {col} = ? WHERE id = ?", (new, sid))
        elif new is not None and old != new:
            issues.append(ImportIssue(row.file, row.row, "warning",
                                      f"subject {row.subject} already has {col} {old!r}; {new!r} ignored"))
    return sid


def _record(db, store: Path, import_id: int, row: ManifestRow, data: bytes, digest: str, synthetic: bool,
            actor: Actor, report: ImportReport, slots: int) -> int | None:
    """Probe, store and record one image; return its id (None when refused)."""
    info = probe(data)
    if not info.ok:
        report.issues.append(ImportIssue(row.file, row.row, "error", info.message))
        return None
    ext = EXT_BY_FORMAT.get(info.format, Path(row.file).suffix.lower() or ".img")
    rel = store_original(store, data, digest, ext)
    for note in info.notes:
        report.issues.append(ImportIssue(row.file, row.row, "info", f"imported; {note} when decoded (original kept as is)"))
    with transaction(db) as conn:
        who = authorize(conn, actor, "import")
        existing = conn.execute("SELECT i.id, s.code, i.movement, i.source, i.mirrored FROM images i "
                                "JOIN subjects s ON s.id = i.subject_id WHERE i.sha256 = ?", (digest,)).fetchone()
        if existing:
            image_id, code, mv, src, mir = existing
            if (code, mv, src, bool(mir)) != (row.subject, row.movement, row.source, row.mirrored):
                report.issues.append(ImportIssue(row.file, row.row, "warning",
                                                 f"already imported as subject {code}, {mv}, {src}, mirrored={bool(mir)}; "
                                                 "the stored metadata was not changed"))
            report.already_present += 1
        else:
            sid = _subject_id(conn, row, synthetic, report.issues)
            cur = conn.execute(
                "INSERT INTO images (sha256, subject_id, movement, source, mirrored, width, height, format, mode, "
                "bytes, stored_path, notes, synthetic, import_id, imported_at, reads_required) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (digest, sid, row.movement, row.source, int(row.mirrored), info.size[0], info.size[1], info.format,
                 info.mode, len(data), rel.as_posix(), "; ".join(info.notes), int(synthetic), import_id, now(), slots))
            image_id = cur.lastrowid
            # Its read slots in the same transaction: an import killed right after leaves no image
            # that the read queue cannot see.
            conn.executemany("INSERT OR IGNORE INTO read_slots (image_id, slot) VALUES (?, ?)",
                             [(image_id, k) for k in range(1, slots + 1)])
            report.added += 1
            audit(conn, who, "image.imported", "image", image_id, sha256=digest, import_id=import_id)
        conn.execute("INSERT OR IGNORE INTO image_names (image_id, original_name, import_id) VALUES (?, ?, ?)",
                     (image_id, row.file, import_id))
    return image_id


def import_rows(db: Database, store: Path, rows: list[ManifestRow], read: Callable[[str], bytes | None],
                *, actor: Actor, issues: Iterable[ImportIssue] = (), synthetic: bool = False,
                origin: str = "", manifest_name: str = "", progress: Progress | None = None) -> ImportReport:
    """Import validated manifest rows whose bytes `read(file)` returns (None = missing).

    Returns the report, also stored in `imports` / `import_issues`. Used by the folder import,
    the app's upload and the demo loader alike. Raises PermissionDenied when `actor` may not import.
    """
    require(actor, "import")
    report = ImportReport(rows=len(rows), issues=list(issues))
    remove_stale_parts(store)
    slots = int(settings.get(db, "reads_per_image"))
    with transaction(db) as conn:
        who = authorize(conn, actor, "import")
        report.import_id = conn.execute("INSERT INTO imports (started_at, actor, origin, manifest) VALUES (?,?,?,?)",
                                        (now(), who, origin, manifest_name)).lastrowid
    seen: dict[str, ManifestRow] = {}
    total = len(rows)
    for n, row in enumerate(rows, 1):
        if progress:
            progress(n - 1, total, row.file)
        try:
            data = read(row.file)
        except OSError as exc:
            report.issues.append(ImportIssue(row.file, row.row, "error", f"cannot read the file: {exc.strerror or exc}"))
            continue
        if data is None:
            report.issues.append(ImportIssue(row.file, row.row, "error", "listed in the manifest but no such file was given"))
            continue
        if len(data) == 0:
            report.issues.append(ImportIssue(row.file, row.row, "error", "empty file (0 bytes)"))
            continue
        digest = sha256_bytes(data)
        if digest in seen:
            first = seen[digest]
            report.issues.append(ImportIssue(row.file, row.row, "error",
                                             f"same image as {first.file} (row {first.row}): imported once, with that row's "
                                             "metadata; fix the manifest if this row was meant for another photo"))
            continue
        seen[digest] = row
        _record(db, store, report.import_id, row, data, digest, synthetic, actor, report, slots)
    if progress:
        progress(total, total, "")
    with transaction(db) as conn:
        conn.executemany("INSERT INTO import_issues (import_id, file, row, severity, reason) VALUES (?,?,?,?,?)",
                         [(report.import_id, i.file, i.row, i.severity, i.reason) for i in report.issues])
        conn.execute("UPDATE imports SET finished_at = ?, counts = ? WHERE id = ?",
                     (now(), json.dumps(report.counts()), report.import_id))
        audit(conn, who, "import.finished", "import", report.import_id, **report.counts())
    from labeling.workflow.queue import ensure_slots

    ensure_slots(db)  # and every older image the slots of a raised reads_per_image
    return report


def _listed_files(root: Path, exclude: set[Path]) -> list[str]:
    """Return the image-like files under `root` (relative POSIX paths), hidden files left out."""
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts) and p.resolve() not in exclude:
            out.append(p.relative_to(root).as_posix())
    return out


def refused_rows(issues: Iterable[ImportIssue]) -> set[str]:
    """Return the files named by manifest rows that were refused for an error (their issue already
    says why the file was not imported)."""
    from labeling.intake.manifest import safe_relative

    return {safe_relative(i.file) or i.file for i in issues if i.row is not None and i.severity == "error"}


def unlisted_issues(files: Iterable[str], rows: list[ManifestRow], refused: Iterable[str] = (),
                    by_base_name: bool = False) -> list[ImportIssue]:
    """Return a warning for each given file that no manifest row names. A file whose row was refused
    (`refused`, see refused_rows) is not warned about again: that row's error already names it.
    `by_base_name`: a refused row also covers a file of the same base name (uploads, where the
    manifest may name base names only)."""
    listed = {r.file for r in rows} | set(refused)
    bases = {Path(f).name for f in refused} if by_base_name else set()
    out = []
    for f in files:
        if f not in listed and Path(f).name not in bases:
            kind = "image" if Path(f).suffix.lower() in IMAGE_EXTENSIONS else "file"
            out.append(ImportIssue(f, None, "warning", f"{kind} not in the manifest; skipped"))
    return out


def import_folder(db: Database, store: Path, images_dir: Path, manifest_path: Path, *,
                  actor: Actor, synthetic: bool = False, progress: Progress | None = None) -> ImportReport:
    """Import the photos under `images_dir` described by `manifest_path`; return the report.

    Raises ManifestError (before anything is written) when the manifest cannot be used.
    """
    images_dir = Path(images_dir)
    manifest_path = Path(manifest_path)
    rows, issues = parse_manifest(manifest_path.read_bytes(), manifest_path.name)
    files = _listed_files(images_dir, {manifest_path.resolve()})
    issues += unlisted_issues(files, rows, refused_rows(issues))
    root = images_dir.resolve()

    def read(rel: str) -> bytes | None:
        p = (root / rel)
        if not p.is_file():
            return None
        if p.stat().st_size > MAX_FILE_BYTES:
            raise OSError(f"{p.stat().st_size // 2**20} MiB is over the {MAX_FILE_BYTES // 2**20} MiB limit per photo")
        return p.read_bytes()

    return import_rows(db, store, rows, read, issues=issues, synthetic=synthetic, actor=actor,
                       origin=str(images_dir), manifest_name=manifest_path.name, progress=progress)


def read_zip(data: bytes) -> tuple[dict[str, bytes], list[ImportIssue]]:
    """Return the files of an uploaded zip (name -> bytes) and issues for refused members.

    Refuses members that would escape the folder, and archives that inflate too much (zip bombs).
    """
    from labeling.intake.manifest import safe_relative

    issues: list[ImportIssue] = []
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        return {}, [ImportIssue("upload.zip", None, "error", f"not a readable zip file: {exc}")]
    members = [m for m in zf.infolist() if not m.is_dir()]
    total = sum(m.file_size for m in members)
    if total > ZIP_MAX_TOTAL or (data and total / max(len(data), 1) > ZIP_MAX_RATIO and total > 100 * 2**20):
        return {}, [ImportIssue("upload.zip", None, "error",
                                f"the zip would inflate to {total // 2**20} MiB from {len(data) // 2**20} MiB; refused as a zip bomb")]
    files: dict[str, bytes] = {}
    for m in members:
        name = safe_relative(m.filename)
        if name is None:
            issues.append(ImportIssue(m.filename, None, "error", "path escapes the archive; skipped"))
            continue
        if any(part.startswith(".") or part == "__MACOSX" for part in Path(name).parts):
            continue
        if m.file_size > MAX_FILE_BYTES:
            issues.append(ImportIssue(name, None, "error", f"{m.file_size // 2**20} MiB is over the per-photo limit"))
            continue
        try:
            files[name] = zf.read(m)
        except (zipfile.BadZipFile, OSError, RuntimeError, EOFError) as exc:
            issues.append(ImportIssue(name, None, "error", f"cannot extract: {exc}"))
    return files, issues


def import_uploaded(db: Database, store: Path, manifest: bytes, manifest_name: str,
                    files: dict[str, bytes], *, actor: Actor, issues: Iterable[ImportIssue] = (),
                    progress: Progress | None = None) -> ImportReport:
    """Import files uploaded in the app (name -> bytes, names as the manifest gives them).

    Files are matched by their relative path, or by their base name when the manifest names
    only base names. Raises ManifestError when the manifest cannot be used, PermissionDenied
    when `actor` may not import.
    """
    require(actor, "import")
    rows, manifest_issues = parse_manifest(manifest, manifest_name)
    by_base: dict[str, str] = {}
    for name in files:
        by_base.setdefault(Path(name).name, name)
    resolved = {r.file: (r.file if r.file in files else by_base.get(Path(r.file).name)) for r in rows}
    used = {v for v in resolved.values() if v}
    unlisted = unlisted_issues([f for f in files if f not in used], [], refused_rows(manifest_issues),
                               by_base_name=True)
    return import_rows(db, store, rows, lambda f: files.get(resolved.get(f) or ""),
                       issues=[*issues, *manifest_issues, *unlisted], actor=actor,
                       origin="upload", manifest_name=manifest_name, progress=progress)
