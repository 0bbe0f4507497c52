"""Parse and validate an import manifest (CSV): one row per photo with its subject and movement.

Columns: file, subject, movement (MV0-MV6), source (hospital|mobile); optional mirrored, sex,
age_group, cohort. A manifest that cannot be read at all raises `ManifestError` (nothing is
imported); a bad row becomes an `ImportIssue` and the other rows go on.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

from labeling.vocabulary import MOVEMENTS, SOURCES

REQUIRED = ("file", "subject", "movement", "source")
OPTIONAL = ("mirrored", "sex", "age_group", "cohort")
MAX_MANIFEST_BYTES = 50 * 1024 * 1024

TRUE = {"1", "true", "yes", "y", "t", "mirrored"}
FALSE = {"0", "false", "no", "n", "f", "not mirrored"}
SEX = {"f": "F", "female": "F", "w": "F", "m": "M", "male": "M", "x": "X", "other": "X", "d": "X"}
AGE = {"<40": "<40", "40-65": "40-65", "40–65": "40-65", "40 - 65": "40-65", ">65": ">65"}
COHORT = {"patient": "patient", "control": "control"}


class ManifestError(Exception):
    """The manifest as a whole cannot be used; the message says why, naming the file."""


@dataclass(frozen=True)
class ImportIssue:
    """One line of an import report: which file or manifest row, how bad, and why."""

    file: str
    row: int | None
    severity: str  # "error" (not imported), "warning" (imported, check it) or "info"
    reason: str


@dataclass(frozen=True)
class ManifestRow:
    """One validated manifest row. `row` is the 1-based line number in the CSV (header = 1)."""

    row: int
    file: str
    subject: str
    movement: str
    source: str
    mirrored: bool
    sex: str | None = None
    age_group: str | None = None
    cohort: str | None = None


def _decode(raw: bytes, name: str) -> tuple[str, list[ImportIssue]]:
    """Return the manifest text and any warning about its encoding."""
    if b"\x00" in raw[:4096]:
        raise ManifestError(f"{name}: not a CSV text file (it contains binary data)")
    try:
        return raw.decode("utf-8-sig"), []
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{name}: not UTF-8 text and not Windows-1252 either ({exc.reason})") from None
    return text, [ImportIssue(name, None, "warning", "manifest is not UTF-8; it was read as Windows-1252 — "
                                                    "check accented subject codes")]


def normalise_movement(value: str) -> str | None:
    """Return 'MV0'..'MV6' for 'MV3', 'mv3' or '3'; None when it is not a movement code."""
    v = value.strip().upper().replace(" ", "")
    if v.isdigit():
        v = "MV" + v
    return v if v in MOVEMENTS else None


def safe_relative(value: str) -> str | None:
    """Return `value` as a clean relative POSIX path, or None if it is absolute or escapes upward."""
    v = value.strip().replace("\\", "/")
    if not v or PureWindowsPath(value.strip()).drive or v.startswith("/"):
        return None
    parts = PurePosixPath(v).parts
    if any(p == ".." for p in parts):
        return None
    return str(PurePosixPath(*[p for p in parts if p != "."]))


def _one_row(line: int, rec: dict[str, str], name: str) -> tuple[ManifestRow | None, list[ImportIssue]]:
    """Validate one CSV record; return the row (or None when unusable) and its issues."""
    issues: list[ImportIssue] = []
    label = rec.get("file", "").strip() or f"{name} row {line}"

    def bad(reason: str):
        return None, issues + [ImportIssue(label, line, "error", reason)]

    file = safe_relative(rec.get("file", ""))
    if not rec.get("file", "").strip():
        return bad("empty 'file' column")
    if file is None:
        return bad("'file' must be a path inside the images folder (no absolute paths, no '..')")
    subject = rec.get("subject", "").strip()
    if not subject:
        return bad("empty 'subject' column")
    movement = normalise_movement(rec.get("movement", ""))
    if movement is None:
        return bad(f"unknown movement {rec.get('movement', '')!r}: use MV0 to MV6")
    source = rec.get("source", "").strip().lower()
    if source not in SOURCES:
        return bad(f"unknown source {rec.get('source', '')!r}: use hospital or mobile")
    m = rec.get("mirrored", "").strip().lower()
    if m == "":
        mirrored = source == "mobile"  # front cameras mirror
    elif m in TRUE:
        mirrored = True
    elif m in FALSE:
        mirrored = False
    else:
        return bad(f"'mirrored' must be yes/no (or 1/0), not {rec.get('mirrored')!r}")
    optional = {}
    for col, table in (("sex", SEX), ("age_group", AGE), ("cohort", COHORT)):
        raw = rec.get(col, "").strip()
        if not raw:
            optional[col] = None
        elif raw.lower() in table:
            optional[col] = table[raw.lower()]
        else:
            optional[col] = None
            allowed = ", ".join(sorted(set(table.values())))
            issues.append(ImportIssue(label, line, "warning", f"{col} {raw!r} not understood (use {allowed}); left blank"))
    return ManifestRow(line, file, subject, movement, source, mirrored, **optional), issues


def parse_manifest(raw: bytes, name: str = "manifest.csv") -> tuple[list[ManifestRow], list[ImportIssue]]:
    """Parse manifest bytes; return the valid rows and the issues of the others.

    Raises ManifestError when the file as a whole is unusable (binary, empty, no header, a
    required column missing).
    """
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{name}: {len(raw) // 2**20} MiB is too large for a manifest")
    text, issues = _decode(raw, name)
    if not text.strip():
        raise ManifestError(f"{name}: the manifest is empty")
    first = text.splitlines()[0]
    delimiter = max(",;\t", key=first.count)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
        header = [h.strip().lower().replace(" ", "_") for h in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise ManifestError(f"{name}: not a readable CSV ({exc})") from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ManifestError(f"{name}: missing required column(s) {', '.join(missing)}; found "
                            f"{', '.join(h for h in header if h) or 'no header'}. "
                            f"Required: {', '.join(REQUIRED)}; optional: {', '.join(OPTIONAL)}")
    reader.fieldnames = header
    rows: list[ManifestRow] = []
    seen: dict[str, int] = {}
    try:
        for rec in reader:
            line = reader.line_num
            rec = {k: (v if isinstance(v, str) else "") for k, v in rec.items() if k}
            if not any(v.strip() for v in rec.values()):
                continue
            row, row_issues = _one_row(line, rec, name)
            issues += row_issues
            if row is None:
                continue
            if row.file in seen:
                issues.append(ImportIssue(row.file, line, "error", f"listed twice in the manifest (first on row {seen[row.file]})"))
                continue
            seen[row.file] = line
            rows.append(row)
    except csv.Error as exc:
        raise ManifestError(f"{name}: CSV error near line {reader.line_num}: {exc}") from None
    return rows, issues
