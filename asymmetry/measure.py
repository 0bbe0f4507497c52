"""Measure photos: landmarks, asymmetry indices and quality flags, one result per image.

`measure_photo` is the whole per-image pipeline (used by the CLI, `run` and the benchmark);
`measure_pending` measures every stored image not yet measured with the current versions, in
parallel over processes, writing from one process only; it can be stopped and run again.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sqlite_utils

from asymmetry.imaging import decode_image
from asymmetry.indices import INDEX_VERSION, Indices, compute_indices
from asymmetry.landmarks import ALGORITHM, PREDICT_SIDE, Landmarks, landmarks_from_decoded
from asymmetry.quality import quality_flags
from db.access import audit, get_setting, now, transaction
from labeling.accounts.permissions import authorize, require

# The landmark step's version (model, mirror averaging, sizes): measurements of another version are
# measured again. asym-1.x stored "dlib-68-ibug300w@1280" (one pass, no mirror).
LANDMARK_VERSION = ALGORITHM


@dataclass
class Measurement:
    """Everything measured on one photo; `indices` is None unless the face was found."""

    status: str
    message: str
    landmarks: Landmarks
    indices: Indices | None = None
    quality: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Return a JSON-ready dict (what `python -m asymmetry measure --json` prints)."""
        lm = self.landmarks
        return {"status": self.status, "message": self.message,
                "indices": None if self.indices is None else _finite(self.indices.to_dict()),
                "face_box": None if lm.box is None else [round(v, 1) for v in lm.box],
                "faces": lm.n_faces, "other_faces": [[round(v, 1) for v in b] for b in lm.others],
                "image_size": list(lm.size),
                "quality": _finite({k: v for k, v in self.quality.items() if k != "message"}),
                "landmark_version": LANDMARK_VERSION, "index_version": INDEX_VERSION}


def _finite(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def measure_photo(src: str | Path | bytes, mirrored: bool, pick_best: bool = False) -> Measurement:
    """Decode, find landmarks, compute indices and quality flags for one photo; never raises."""
    decoded = decode_image(src, max_side=PREDICT_SIDE, draft_only=True)
    lm = landmarks_from_decoded(decoded, pick_best=pick_best)
    if not lm.ok:
        return Measurement(lm.status, lm.message, lm)
    idx = compute_indices(lm.points, mirrored)
    quality = quality_flags(decoded, lm)
    status = "ok" if idx.ok else "degenerate"
    return Measurement(status, lm.message or idx.message, lm, idx, quality)


def _job(args: tuple[int, str, bool, bool]) -> tuple[int, Measurement]:
    image_id, path, mirrored, pick_best = args
    return image_id, measure_photo(path, mirrored, pick_best)


def points_json(points) -> str:
    """The stored form of 68 points: JSON, rounded to 0.01 px."""
    return json.dumps(np.round(np.asarray(points, dtype=np.float64), 2).tolist())


def latest_corrections(db: sqlite_utils.Database) -> dict[int, tuple[int, str]]:
    """Return {image id: (correction id, points JSON)} of the latest hand correction of each image."""
    return {r[0]: (r[1], r[2]) for r in db.execute(
        "SELECT c.image_id, c.id, c.points FROM landmark_corrections c WHERE c.id = "
        "(SELECT max(id) FROM landmark_corrections d WHERE d.image_id = c.image_id)")}


def _row(image_id: int, m: Measurement, mirrored: bool, correction: tuple[int, str] | None = None) -> tuple:
    """The measurements row of one image. With a hand `correction` (id, points JSON) of the image,
    the row holds the corrected points and their indices; dlib's points go to auto_points."""
    lm, q = m.landmarks, m.quality
    f = _finite_or_none
    status, message, indices = m.status, m.message, m.indices
    points = None if lm.points is None else points_json(lm.points)
    auto, correction_id = None, None
    if correction is not None:
        correction_id, auto = correction[0], points
        points = correction[1]
        indices = compute_indices(np.asarray(json.loads(points), dtype=np.float64), mirrored)
        status = "ok" if indices.ok else "degenerate"
        message = f"landmarks corrected by hand (correction {correction_id})" + (f"; {indices.message}"
                                                                                  if not indices.ok else "")
    return (image_id, LANDMARK_VERSION, INDEX_VERSION, status, message, points,
            None if lm.box is None else json.dumps([round(v, 1) for v in lm.box]), f(lm.score), lm.n_faces,
            *index_columns(indices),
            f(q.get("sharpness")), f(q.get("face_fraction")),
            None if q.get("blurry") is None else int(q["blurry"]), None if q.get("distant") is None else int(q["distant"]),
            now(), correction_id, auto)


def index_columns(idx: Indices | None) -> tuple:
    """The measurements columns indices, rgas, anas, rgas_signed, anas_signed, side, ipd_px."""
    if idx is None:
        return (None,) * 7
    f = _finite_or_none
    return (json.dumps(_finite(idx.to_dict())), *(f(getattr(idx, k)) for k in ("rgas", "anas", "rgas_signed",
                                                                               "anas_signed")),
            idx.side, f(idx.ipd_px))


INSERT = ("INSERT OR IGNORE INTO measurements (image_id, landmark_version, index_version, status, message, points, box, "
          "score, n_faces, indices, rgas, anas, rgas_signed, anas_signed, side, ipd_px, sharpness, face_fraction, "
          "blurry, distant, measured_at, correction_id, auto_points) VALUES (" + ",".join("?" * 23) + ")")


def pending(db: sqlite_utils.Database, store: Path) -> list[tuple[int, str, bool]]:
    """Return (image id, stored path, mirrored) of images without a current measurement."""
    rows = db.execute("SELECT i.id, i.stored_path, i.mirrored FROM images i WHERE NOT EXISTS (SELECT 1 FROM measurements m "
                      "WHERE m.image_id = i.id AND m.landmark_version = ? AND m.index_version = ?) ORDER BY i.id",
                      [LANDMARK_VERSION, INDEX_VERSION]).fetchall()
    return [(r[0], str(store / r[1]), bool(r[2])) for r in rows]


def reindex_stored(db: sqlite_utils.Database, batch: int = 500, *, actor) -> int:
    """Recompute the indices of images measured with the current landmark version but an older
    index version, from their stored points (no decoding, no dlib); return how many were done.

    A change of formula (INDEX_VERSION) thus costs milliseconds per image; only a change of the
    landmark model (LANDMARK_VERSION) measures the photos again. Images whose landmarking failed
    (no face, unreadable...) keep that outcome under the new index version. The points are stored
    rounded to 0.01 px, so the indices can differ from a fresh measurement in the 4th decimal.
    Stored points of a corrected image are the corrected ones, and stay so.
    """
    rows = db.execute(
        "SELECT m.image_id, i.mirrored, m.status, m.message, m.points, m.box, m.score, m.n_faces, m.sharpness, "
        "m.face_fraction, m.blurry, m.distant, m.correction_id, m.auto_points "
        "FROM measurements m JOIN images i ON i.id = m.image_id "
        "WHERE m.landmark_version = ? AND m.index_version <> ? AND m.id = (SELECT max(x.id) FROM measurements x "
        "WHERE x.image_id = m.image_id AND x.landmark_version = ?) AND NOT EXISTS (SELECT 1 FROM measurements c "
        "WHERE c.image_id = m.image_id AND c.landmark_version = ? AND c.index_version = ?) ORDER BY m.image_id",
        [LANDMARK_VERSION, INDEX_VERSION, LANDMARK_VERSION, LANDMARK_VERSION, INDEX_VERSION]).fetchall()
    out: list[tuple] = []
    for (image_id, mirrored, status, message, points, box, score, n_faces, sharpness, fraction, blurry, distant,
         correction_id, auto) in rows:
        idx = None
        if points is not None and status in ("ok", "degenerate"):
            idx = compute_indices(np.asarray(json.loads(points), dtype=np.float64), bool(mirrored))
            # An ok landmarking keeps its note (e.g. the best of two faces used); a degenerate one says why.
            message = idx.message if not idx.ok else (message if status == "ok" else "")
            status = "ok" if idx.ok else "degenerate"
        out.append((image_id, LANDMARK_VERSION, INDEX_VERSION, status, message, points, box, score, n_faces,
                    *index_columns(idx), sharpness, fraction, blurry, distant, now(), correction_id, auto))
    for start in range(0, len(out), batch):
        with transaction(db) as conn:
            authorize(conn, actor, "measure")
            conn.executemany(INSERT, out[start:start + batch])
    return len(out)


def _finite_or_none(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v


def measure_pending(db: sqlite_utils.Database, store: Path, workers: int | None = None, batch: int = 32,
                    progress: Callable[[int, int, str], None] | None = None, *, actor) -> dict[str, int]:
    """Measure every image lacking a current measurement; return counts per status.

    Images whose stored landmarks are current only need their indices recomputed
    (`reindex_stored`, counted under "reindexed"). The rest: workers decode and run dlib (an image
    corrected by hand keeps its corrected points; dlib's new ones are stored beside them); this
    process alone writes, `batch` results per transaction, so stopping at any point loses at most
    one batch of work and nothing committed.
    """
    require(actor, "measure")
    reindexed = reindex_stored(db, actor=actor)
    todo = pending(db, store)
    pick_best = bool(get_setting(db, "pick_best_face", False))
    jobs = [(i, p, m, pick_best) for i, p, m in todo]
    mirrored_of = {i: m for i, _, m in todo}
    corrections = latest_corrections(db) if todo else {}
    counts: dict[str, int] = {"reindexed": reindexed} if reindexed else {}
    buffer: list[tuple] = []

    def flush():
        if buffer:
            with transaction(db) as conn:
                authorize(conn, actor, "measure")
                conn.executemany(INSERT, buffer)
            buffer.clear()

    workers = workers or os.cpu_count() or 1
    done = 0
    if progress:
        progress(0, len(jobs), "measuring")
    results = map(_job, jobs) if workers <= 1 or len(jobs) < 4 else None
    pool = None
    if results is None:
        pool = ProcessPoolExecutor(workers)
        results = pool.map(_job, jobs, chunksize=4)
    try:
        for image_id, m in results:
            counts[m.status] = counts.get(m.status, 0) + 1
            buffer.append(_row(image_id, m, mirrored_of[image_id], corrections.get(image_id)))
            done += 1
            if len(buffer) >= batch:
                flush()
            if progress:
                progress(done, len(jobs), "measuring")
        flush()
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    if counts:
        with transaction(db) as conn:
            audit(conn, authorize(conn, actor, "measure"), "measure.run", "images", None, **counts)
    return counts


def effective_flags(db: sqlite_utils.Database, image_id: int) -> dict[str, bool | None]:
    """Return the image's blurry/distant flags: the latest coordinator override, else the measured value."""
    row = db.execute("SELECT blurry, distant FROM measurements WHERE image_id = ? AND status = 'ok' "
                     "ORDER BY id DESC LIMIT 1", [image_id]).fetchone()
    flags = {"blurry": None if not row or row[0] is None else bool(row[0]),
             "distant": None if not row or row[1] is None else bool(row[1])}
    for flag, value in db.execute("SELECT flag, value FROM quality_overrides WHERE image_id = ? ORDER BY id", [image_id]):
        flags[flag] = bool(value)
    return flags


def override_flag(db: sqlite_utils.Database, image_id: int, flag: str, value: bool, actor, reason: str = "") -> None:
    """Record a coordinator's override of a quality flag (append-only; the latest wins)."""
    require(actor, "quality.override")
    with transaction(db) as conn:
        who = authorize(conn, actor, "quality.override")
        conn.execute("INSERT INTO quality_overrides (image_id, flag, value, reason, actor, at) VALUES (?,?,?,?,?,?)",
                     (image_id, flag, int(value), reason, who, now()))
        audit(conn, who, "quality.override", "image", image_id, flag=flag, value=value, reason=reason)
