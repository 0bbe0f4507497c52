"""The agreement audit's inputs, loaded from the project database, and trainer runs' predictions
imported into it (issue 5). One query per table, never one per image: fast at 100,000 images.

`load_audit_data(db)` returns the DataFrames whose column contracts labeling/agreement/summary.py states
(reads, finals, ranges, checks, predictions) plus the asymmetry points and range boxes for the
plots; `load_audit(db)` returns the Audit itself. `data_version(db)` is the cheap fingerprint the
app caches on. docs/agreement.md ("From the database") says where each column comes from.
"""
from __future__ import annotations

import hashlib
import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sqlite_utils

from asymmetry.indices import INDEX_VERSION
from asymmetry.measure import LANDMARK_VERSION
from asymmetry.ranges import RangeTable, classify_points
from db.access import audit as audit_event
from db.access import fetch_columns, now, transaction
from labeling.vocabulary import CLASSES, MOVEMENTS, SOURCES
from labeling.agreement import summary as agreement
from labeling.workflow import settings
from labeling.agreement.report import context_figures, overview  # noqa: F401  (the page's and CLI's headline)
from labeling.agreement.range_oof import out_of_fold_frame
from labeling.workflow.states import image_states, latest_ranges

PROBABILITY_COLUMNS = tuple(f"prob_{c}" for c in CLASSES)
PREDICTION_COLUMNS = ("image_sha256", "split", "fold", "movement", "label", "predicted", *PROBABILITY_COLUMNS)
# Written by the trainer since issue 15 (the export's hashed subject and the image's source);
# optional on import, so runs evaluated before still import (their intervals then cluster by this
# project's subjects, or by image for images it does not hold).
OPTIONAL_PREDICTION_COLUMNS = ("subject_hash", "source")
NO_FINAL = "no final label"

# The effective reads: kind 'read' not superseded by an undo row. Reader names and image
# attributes are joined in numpy afterwards, which is faster than the same joins in SQL at
# 1,000,000 reads (docs/agreement.md, Performance). SQLite turns the ISO-8601 submission time
# into milliseconds since 1970 (NULL if it cannot read it): the app writes it with milliseconds
# and an offset (db.access.now), which julianday reads exactly, and a million numbers cost 0.2 s
# less to hand over and convert than a million strings. No ORDER BY: the rows come in id order
# from the table scan anyway, and load_reads checks that on the ids rather than pay SQLite 0.15 s
# for a sorted subquery.
_READS_SQL = """
SELECT r.id, r.image_id, r.reader_id, r.label,
       CAST(round((julianday(r.submitted_at) - 2440587.5) * 86400000) AS INTEGER) AS submitted_ms,
       r.duration_ms, r.simulated FROM reads r
WHERE r.kind = 'read' AND NOT EXISTS (SELECT 1 FROM reads x WHERE x.supersedes = r.id)"""


def _take(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """values[positions], NaN where a position is -1 (integers then become float64)."""
    return pd.api.extensions.take(values, positions, allow_fill=True)


def load_reads(db: sqlite_utils.Database) -> pd.DataFrame:
    """Return the effective reads: image_id, reader (name), label (None = cannot grade),
    submitted_at (UTC timestamp, NaT if unreadable), duration_ms, movement, source, synthetic (0/1),
    subject (the image's subject id: the resampling unit of every interval), simulated (0/1)."""
    reads = fetch_columns(db, _READS_SQL, text=("label",))
    if (np.diff(reads["id"]) < 0).any():  # in read order (id), as the audit breaks time ties by it
        order = np.argsort(reads["id"], kind="stable")
        reads = {name: values[order] for name, values in reads.items()}
    users = fetch_columns(db, "SELECT id, name FROM users", text=("name",))
    images = fetch_columns(db, "SELECT id, movement, source, synthetic, subject_id FROM images", text=("movement", "source"))
    image = pd.Index(images["id"]).get_indexer(reads["image_id"])
    columns = {"image_id": reads["image_id"],
               "reader": _take(users["name"], pd.Index(users["id"]).get_indexer(reads["reader_id"])),
               "label": reads["label"],
               "submitted_at": pd.to_datetime(reads["submitted_ms"], unit="ms", utc=True).as_unit("us"),
               "duration_ms": reads["duration_ms"],
               "movement": _take(images["movement"], image), "source": _take(images["source"], image),
               "synthetic": _take(images["synthetic"], image), "subject": _take(images["subject_id"], image),
               "simulated": reads["simulated"]}
    # Text stays as Python objects (pandas would make Arrow strings of it, which the audit turns back).
    return pd.DataFrame({name: pd.Series(values, dtype=object) if values.dtype == object else values
                         for name, values in columns.items()})


def finals_from_states(states: pd.DataFrame) -> pd.DataFrame:
    """Return image_id, movement, final_label of the images that have one (accepted or adjudicated)."""
    have = states[states["final_label"].notna()]
    return have[["image_id", "movement", "final_label"]].reset_index(drop=True)


def checks_from_states(states: pd.DataFrame, reads_per_image: int | None = None) -> pd.DataFrame:
    """Return image_id, check1, check2 per image.

    check1: 'agree' when the image has a check-1 consensus, 'disagree' when all its reads are in
    but they differ (or a reader could not grade it), None while reads are missing. check2: the
    newest check-2 outcome ('accepted', 'mismatch', 'undetermined') of a current consensus image,
    else None.
    """
    consensus = states["consensus"].notna()
    # Each image's own requirement (a later change of the setting never reopens a finished check 1);
    # `reads_per_image` only for frames made without it.
    required = states["reads_required"] if "reads_required" in states else reads_per_image
    complete = states["n_reads"] >= required
    check1 = np.where(consensus, "agree", np.where(complete, "disagree", None))
    check2 = states["check2"].where(consensus & states["check2"].notna(), None)
    return pd.DataFrame({"image_id": states["image_id"].to_numpy(), "check1": check1,
                         "check2": check2.to_numpy(dtype=object)})


def load_measurements(db: sqlite_utils.Database) -> pd.DataFrame:
    """Return image_id, movement, status, rgas, anas (signed RgAs and AnAs) of every image measured
    with the current landmark and index versions."""
    return db.frame(
        "SELECT m.image_id, i.movement, m.status, m.rgas_signed AS rgas, m.anas_signed AS anas "
        "FROM measurements m JOIN images i ON i.id = m.image_id "
        "WHERE m.landmark_version = ? AND m.index_version = ? ORDER BY m.image_id", [LANDMARK_VERSION, INDEX_VERSION])


def range_boxes(table: RangeTable | None) -> pd.DataFrame:
    """Return every movement's boxes: movement, cls, rgas_lo, rgas_hi, anas_lo, anas_hi, n, enough."""
    cols = ["movement", "cls", "rgas_lo", "rgas_hi", "anas_lo", "anas_hi", "n", "enough"]
    if table is None:
        return pd.DataFrame(columns=cols)
    frames = [table.boxes_frame(mv).assign(movement=mv) for mv in table.movements]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


# ---- the range classifier, vectorised --------------------------------------------------------


def ranges_frame(measurements: pd.DataFrame, table: RangeTable | None) -> pd.DataFrame:
    """Return image_id, movement, range_class (both indices, as check 2 classifies),
    range_class_rgas and range_class_anas (one index each) of every measured image, by `table`."""
    ok = measurements[measurements["status"] == "ok"].reset_index(drop=True)
    cols = ["image_id", "movement", "range_class", "range_class_rgas", "range_class_anas"]
    if table is None or not len(ok):
        return pd.DataFrame(columns=cols)
    out = ok[["image_id", "movement"]].copy()
    out["range_class"] = classify_points(ok, table)["range_class"].to_numpy()
    out["range_class_rgas"] = classify_points(ok, table, ("rgas",))["range_class"].to_numpy()
    out["range_class_anas"] = classify_points(ok, table, ("anas",))["range_class"].to_numpy()
    return out[cols]


def points_frame(measurements: pd.DataFrame, states: pd.DataFrame) -> pd.DataFrame:
    """Return image_id, movement, rgas, anas, label of every measured image for the scatter: label
    is the final label, or 'no final label'."""
    ok = measurements[measurements["status"] == "ok"]
    pts = ok.merge(states[["image_id", "final_label"]], on="image_id", how="left")
    label = pts["final_label"].astype(object).where(pts["final_label"].notna(), NO_FINAL)
    return pd.DataFrame({"image_id": pts["image_id"], "movement": pts["movement"], "rgas": pts["rgas"],
                         "anas": pts["anas"], "label": label})


# ---- model predictions ------------------------------------------------------------------------


class PredictionImportError(ValueError):
    """A trainer run folder cannot be imported; the message says why in one line."""


@dataclass(frozen=True)
class ImportedRun:
    """What import_predictions did: the run's name and arch, whether it was new, how many
    predictions it holds and how many of them match an image of this project."""
    name: str
    arch: str | None
    created: bool
    n_predictions: int
    n_matched: int
    message: str


def _read_run_folder(run_dir: Path) -> tuple[pd.DataFrame, dict, bytes]:
    """Return (predictions, config, raw predictions bytes) of a trainer run folder, validated."""
    if not run_dir.is_dir():
        raise PredictionImportError(f"run folder {run_dir} does not exist")
    path = run_dir / "predictions.csv"
    if not path.is_file():
        raise PredictionImportError(f"{path} does not exist: evaluate the run first (python -m model evaluate)")
    raw = path.read_bytes()
    config: dict = {}
    config_path = run_dir / "config.json"
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise PredictionImportError(f"{config_path} is not valid JSON ({exc})") from None
        if not isinstance(config, dict):
            raise PredictionImportError(f"{config_path} does not hold a JSON object")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise PredictionImportError(f"{path} is not a readable CSV ({str(exc).splitlines()[0]})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise PredictionImportError(f"{path} lacks column(s) {', '.join(missing)} "
                                    f"(expected {','.join(PREDICTION_COLUMNS)})")
    if not len(frame):
        raise PredictionImportError(f"{path} holds no predictions")
    for col in OPTIONAL_PREDICTION_COLUMNS:
        if col not in frame.columns:
            frame[col] = ""
    columns = list(PREDICTION_COLUMNS + OPTIONAL_PREDICTION_COLUMNS)
    return _validated(frame[columns].apply(lambda s: s.str.strip()), path), config, raw


def _validated(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Return the predictions with typed columns; raise PredictionImportError at the first bad row."""
    def refuse(mask, what):
        if mask.any():
            i = int(np.flatnonzero(mask.to_numpy())[0])
            raise PredictionImportError(f"{path} row {i + 2}: {what(frame.iloc[i])}")

    refuse(~frame["image_sha256"].str.fullmatch(r"[0-9a-fA-F]{64}"),
           lambda r: f"image_sha256 {r['image_sha256'][:80]!r} is not a SHA-256 (64 hex digits)")
    refuse(frame["split"] == "", lambda r: "split is empty")
    refuse(~frame["predicted"].isin(CLASSES), lambda r: f"predicted {r['predicted'][:40]!r} is not one of "
           f"{', '.join(CLASSES)}")
    refuse(~frame["label"].isin(CLASSES + ("",)), lambda r: f"label {r['label'][:40]!r} is not one of "
           f"{', '.join(CLASSES)} (or empty)")
    refuse(~frame["movement"].isin(MOVEMENTS + ("",)), lambda r: f"movement {r['movement'][:40]!r} is not one of "
           f"{', '.join(MOVEMENTS)} (or empty)")
    refuse(~frame["subject_hash"].str.fullmatch(r"([0-9a-fA-F]{8,64})?"),
           lambda r: f"subject_hash {r['subject_hash'][:80]!r} is not a hashed subject (8-64 hex digits, or empty)")
    refuse(~frame["source"].str.fullmatch(r"[A-Za-z0-9_-]{0,40}"),
           lambda r: f"source {r['source'][:40]!r} is not a source name (e.g. {', '.join(SOURCES)}, or empty)")
    fold = pd.to_numeric(frame["fold"].mask(frame["fold"] == ""), errors="coerce")
    refuse(fold.isna() & (frame["fold"] != "") | (fold.notna() & (fold != fold.round())),
           lambda r: f"fold {r['fold'][:40]!r} is not a whole number (or empty)")
    out = frame.copy()
    out["image_sha256"] = out["image_sha256"].str.lower()
    out["subject_hash"] = out["subject_hash"].str.lower()
    out["fold"] = fold.astype("Int64")
    for col in ("label", "movement", "subject_hash", "source"):
        out[col] = out[col].astype(object).where(out[col] != "", None)
    for col in PROBABILITY_COLUMNS:
        values = pd.to_numeric(out[col].mask(out[col] == ""), errors="coerce")
        refuse(values.isna() & (out[col] != "") | (values < 0) | (values > 1),
               lambda r, col=col: f"{col} {r[col][:40]!r} is not a probability between 0 and 1 (or empty)")
        out[col] = values
    return out


def _arch(config: dict, run_dir: Path) -> str | None:
    """The architecture named by the run's config.json (or metrics.json), if any."""
    train = config.get("train") if isinstance(config.get("train"), dict) else {}
    arch = train.get("arch") or config.get("arch")
    if not arch and (run_dir / "metrics.json").is_file():
        try:
            arch = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8")).get("arch")
        except (ValueError, UnicodeDecodeError, AttributeError):
            arch = None
    return str(arch) if arch else None


def import_predictions(db: sqlite_utils.Database, run_dir: str | Path, name: str | None = None, *,
                       actor) -> ImportedRun:
    """Store a trainer run's predictions.csv (and config.json) as run `name` (default: the
    folder's name); return what was done. Idempotent: the same predictions again add nothing.
    Runs are immutable: different predictions under a stored run's name are refused."""
    from labeling.accounts.permissions import authorize, require

    require(actor, "predictions.import")
    run_dir = Path(run_dir)
    frame, config, raw = _read_run_folder(run_dir)
    name = (name or run_dir.resolve().name).strip()
    if not name or len(name) > 200:
        raise PredictionImportError("give the run a name of 1-200 characters (--name)")
    digest = hashlib.sha256(raw).hexdigest()
    arch = _arch(config, run_dir)
    with transaction(db) as conn:
        who = authorize(conn, actor, "predictions.import")
        same = conn.execute("SELECT name, arch, n_predictions FROM model_runs WHERE predictions_sha256 = ?",
                            (digest,)).fetchone()
        if same is not None:
            matched = conn.execute("SELECT count(*) FROM model_predictions p JOIN model_runs r ON r.id = p.run_id "
                                   "JOIN images i ON i.sha256 = p.image_sha256 WHERE r.name = ?",
                                   (same[0],)).fetchone()[0]
            return ImportedRun(same[0], same[1], False, same[2], matched,
                               f"run {same[0]} already holds these predictions: nothing changed")
        if conn.execute("SELECT 1 FROM model_runs WHERE name = ?", (name,)).fetchone():
            raise PredictionImportError(f"a different run named {name!r} is already imported; runs are never "
                                        "replaced: import this one under another name (--name)")
        run_id = conn.execute(
            "INSERT INTO model_runs (name, arch, imported_at, actor, source, config, predictions_sha256, "
            "n_predictions) VALUES (?,?,?,?,?,?,?,?)", (name, arch, now(), who, str(run_dir), json.dumps(config),
                                         digest, len(frame))).lastrowid
        ids = dict(conn.execute("SELECT sha256, id FROM images").fetchall()) if len(frame) else {}
        image_id = frame["image_sha256"].map(ids)
        rows = zip(range(len(frame)), frame["image_sha256"], (None if pd.isna(v) else int(v) for v in image_id),
                   frame["split"], (None if pd.isna(v) else int(v) for v in frame["fold"]),
                   frame["movement"], frame["label"], frame["predicted"], frame["subject_hash"], frame["source"],
                   *[(None if math.isnan(v) else float(v) for v in frame[c]) for c in PROBABILITY_COLUMNS])
        conn.executemany(
            f"INSERT INTO model_predictions (run_id, row, image_sha256, image_id, split, fold, movement, label, "
            f"predicted, subject_hash, source, {', '.join(PROBABILITY_COLUMNS)}) "
            f"VALUES ({', '.join('?' * (11 + len(CLASSES)))})", ((run_id, *r) for r in rows))
        matched = int(image_id.notna().sum())
        audit_event(conn, who, "predictions.imported", "model_run", name, arch=arch, predictions=len(frame),
                    matched=matched, sha256=digest)
    return ImportedRun(name, arch, True, len(frame), matched,
                       f"run {name}{f' ({arch})' if arch else ''}: {len(frame)} predictions imported, "
                       f"{matched} of them match an image of this project")


def list_runs(db: sqlite_utils.Database) -> pd.DataFrame:
    """Return the imported runs: name, arch, imported_at, n_predictions, n_matched, splits."""
    return db.frame(
        "SELECT r.name, r.arch, r.imported_at, r.n_predictions, "
        "(SELECT count(*) FROM model_predictions p JOIN images i ON i.sha256 = p.image_sha256 "
        " WHERE p.run_id = r.id) AS n_matched, "
        "(SELECT group_concat(split, ', ') FROM (SELECT DISTINCT split FROM model_predictions p "
        " WHERE p.run_id = r.id ORDER BY split) s) AS splits "
        "FROM model_runs r ORDER BY r.id")


def prediction_splits(db: sqlite_utils.Database) -> list[str]:
    """Return the splits present in the imported predictions (test first)."""
    found = [r[0] for r in db.execute("SELECT DISTINCT split FROM model_predictions")]
    return sorted(found, key=lambda s: ({"test": 0, "val": 1, "train": 2}.get(s, 3), s))


def load_predictions(db: sqlite_utils.Database, split: str | None = "test") -> pd.DataFrame:
    """Return the imported predictions of `split` (None: every split): run, arch, image_sha256,
    image_id (when the image is in this project), subject (the resampling unit: this project's
    subject of the image, else the run's hashed subject, else None), subject_hash, source, split,
    fold, movement, label, predicted, prob_*."""
    where = "WHERE p.split = ?" if split is not None else ""
    return db.frame(
        "SELECT r.name AS run, r.arch, p.image_sha256, coalesce(i.id, p.image_id) AS image_id, "
        "coalesce('project:' || i.subject_id, 'export:' || p.subject_hash) AS subject, p.subject_hash, "
        "coalesce(p.source, i.source) AS source, p.split, p.fold, "
        "coalesce(p.movement, i.movement) AS movement, p.label, p.predicted, "
        f"{', '.join('p.' + c for c in PROBABILITY_COLUMNS)} "
        "FROM model_predictions p JOIN model_runs r ON r.id = p.run_id LEFT JOIN images i ON i.sha256 = p.image_sha256 "
        f"{where} ORDER BY r.id, p.row", [split] if split is not None else None)


# ---- everything at once -----------------------------------------------------------------------


def data_version(db: sqlite_utils.Database) -> tuple:
    """Return a cheap fingerprint of everything the audit reads: it changes whenever a read, an
    undo, an adjudication, a check-2 result, a measurement, an image, a range table, a user, a
    setting or an imported run is added (those tables are append-only or insert-only)."""
    return tuple(db.execute(
        "SELECT (SELECT max(id) FROM reads), (SELECT max(id) FROM adjudications), "
        "(SELECT max(id) FROM check2_results), (SELECT max(id) FROM measurements), "
        "(SELECT count(*) FROM measurements), (SELECT max(id) FROM images), (SELECT count(*) FROM images), "
        "(SELECT count(*) FROM range_tables), (SELECT max(id) FROM users), "
        "(SELECT group_concat(key || '=' || value, ';') FROM (SELECT key, value FROM settings "
        "WHERE key <> 'export_subject_secret' ORDER BY key) s), "  # the secret never enters a cache key
        "(SELECT max(id) FROM model_runs)").fetchone())


@dataclass(frozen=True)
class AuditData:
    """The audit's inputs for one data state (columns as labeling/agreement/summary.py expects), plus the
    asymmetry points and range boxes for the scatter and the report. `range_version` is the range
    table the range classes come from; `split` the prediction split evaluated."""
    reads: pd.DataFrame
    finals: pd.DataFrame
    ranges: pd.DataFrame
    checks: pd.DataFrame
    predictions: pd.DataFrame
    points: pd.DataFrame
    boxes: pd.DataFrame
    range_version: str | None
    split: str | None
    subjects: pd.DataFrame | None = None

    def audit(self, **options) -> agreement.Audit:
        """Return agreement.audit(...) of these inputs (options: n_boot, seed, confidence, time_freq)."""
        return agreement.audit(self.reads, self.finals, self.ranges, self.checks,
                               self.predictions if len(self.predictions) else None, subjects=self.subjects,
                               **options)


def _on_own_connection(db, load):
    """Return load(db) run on a thread of its own: the database door gives that thread its own
    connection, so the two loads run side by side."""
    try:
        return load(db)
    finally:
        db.close()  # that thread's connection: the thread ends with the load


def load_audit_data(db: sqlite_utils.Database, split: str | None = "test") -> AuditData:
    """Return every input of the agreement audit from the database (one query per table)."""
    # The image states load on a second connection while this one loads the reads (a million at
    # bench/scale.py): SQLite works without holding Python's GIL, so the two share the cores (0.4 s
    # less there on 2 cores). Each query sees the data as committed when it runs, as before.
    with ThreadPoolExecutor(1) as pool:
        states = pool.submit(_on_own_connection, db, image_states)
        reads = load_reads(db)
        states = states.result()
    table = latest_ranges(db)
    measurements = load_measurements(db)
    # The range classifier's accuracy is out-of-fold: each image classified by ranges learned without
    # its subject (labeling/agreement/range_oof.py); `table`, the stored one check 2 uses, draws the boxes.
    s = settings.snapshot(db)
    ranges = out_of_fold_frame(measurements, states, lo=float(s["range_lo"]), hi=float(s["range_hi"]),
                               min_count=int(s["range_min_count"]))
    return AuditData(
        reads=reads, finals=finals_from_states(states), ranges=ranges,
        checks=checks_from_states(states),
        predictions=load_predictions(db, split), points=points_frame(measurements, states),
        boxes=range_boxes(table), range_version=table.version if table else None, split=split,
        subjects=pd.DataFrame(fetch_columns(db, "SELECT id AS image_id, subject_id AS subject FROM images")))


def load_audit(db: sqlite_utils.Database, split: str | None = "test", **options) -> agreement.Audit:
    """Return the Audit of the project's current data (options as for agreement.audit)."""
    return load_audit_data(db, split).audit(**options)


# ---- one subject (prediagnosis) ---------------------------------------------------------------


def list_subjects(db: sqlite_utils.Database) -> pd.DataFrame:
    """Return code (pseudonymous), synthetic and n_images of every subject, by code."""
    return db.frame(
        "SELECT s.code, s.synthetic, count(i.id) AS n_images FROM subjects s LEFT JOIN images i ON i.subject_id = s.id "
        "GROUP BY s.id ORDER BY s.code")


def _subject_image_ids(db: sqlite_utils.Database, code: str) -> list[int]:
    return [r[0] for r in db.execute("SELECT i.id FROM images i JOIN subjects s ON s.id = i.subject_id "
                                     "WHERE s.code = ? ORDER BY i.movement, i.id", [code])]


def subject_labels(db: sqlite_utils.Database, code: str) -> pd.DataFrame:
    """Return one row per image of subject `code`: image_id, movement, state, final_label (None
    until accepted or adjudicated), sorted by movement."""
    ids = _subject_image_ids(db, code)
    cols = ["image_id", "movement", "state", "final_label"]
    if not ids:
        return pd.DataFrame(columns=cols)
    return image_states(db, ids)[cols].sort_values(["movement", "image_id"], ignore_index=True)


def subject_predictions(db: sqlite_utils.Database, code: str, run: str) -> pd.DataFrame:
    """Return run `run`'s prediction for each image of subject `code`: image_id, movement, split,
    predicted, label (one per image: the test split first, then val, then any other)."""
    cols = ["image_id", "movement", "split", "predicted", "label"]
    frame = db.frame(
        "SELECT i.id AS image_id, i.movement, p.split, p.predicted, p.label FROM images i "
        "JOIN subjects s ON s.id = i.subject_id JOIN model_predictions p ON p.image_sha256 = i.sha256 "
        "JOIN model_runs r ON r.id = p.run_id WHERE s.code = ? AND r.name = ? ORDER BY p.row", [code, run])
    if not len(frame):
        return pd.DataFrame(columns=cols)
    frame["rank"] = frame["split"].map({"test": 0, "val": 1}).fillna(2)
    frame = frame.sort_values(["image_id", "rank"], kind="stable").drop_duplicates("image_id")
    return frame[cols].sort_values(["movement", "image_id"], ignore_index=True)
