"""Measuring a project's photos: the database job around `asymmetry.measure.measure_photo`.

`measure_pending` measures every stored image not yet measured with the current versions, in
parallel over processes, writing from this process only; it can be stopped and run again. A change
of index formula only recomputes the indices from the stored points (`reindex_stored`); a hand
correction of the landmarks survives both. Coordinators override the quality flags
(`override_flag`); `effective_flags` is what the export uses.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from asymmetry.indices import INDEX_VERSION, Indices, compute_indices
from asymmetry.measure import LANDMARK_VERSION, Measurement, finite_values, measure_job
from db.access import Database, audit, now, transaction
from labeling.accounts.permissions import authorize, require
from labeling.workflow import settings

# The columns of a measurements row, in the order INSERT names them; rows are dicts keyed by these.
COLUMNS = ("image_id", "landmark_version", "index_version", "status", "message", "points", "box", "score", "n_faces",
           "indices", "rgas", "anas", "rgas_signed", "anas_signed", "side", "ipd_px", "sharpness", "face_fraction",
           "blurry", "distant", "measured_at", "correction_id", "auto_points")
INSERT = (f"INSERT OR IGNORE INTO measurements ({', '.join(COLUMNS)}) "
          f"VALUES ({', '.join(':' + c for c in COLUMNS)})")


def _finite_or_none(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v


def points_json(points) -> str:
    """The stored form of 68 points: JSON, rounded to 0.01 px."""
    return json.dumps(np.round(np.asarray(points, dtype=np.float64), 2).tolist())


def index_values(idx: Indices | None) -> dict:
    """The index columns of a measurements row: indices (JSON), rgas, anas, rgas_signed,
    anas_signed, side, ipd_px (all None without indices)."""
    keys = ("indices", "rgas", "anas", "rgas_signed", "anas_signed", "side", "ipd_px")
    if idx is None:
        return dict.fromkeys(keys)
    f = _finite_or_none
    return {"indices": json.dumps(finite_values(idx.to_dict())), "rgas": f(idx.rgas), "anas": f(idx.anas),
            "rgas_signed": f(idx.rgas_signed), "anas_signed": f(idx.anas_signed), "side": idx.side,
            "ipd_px": f(idx.ipd_px)}


def latest_corrections(db: Database) -> dict[int, tuple[int, str]]:
    """Return {image id: (correction id, points JSON)} of the latest hand correction of each image."""
    return {r["image_id"]: (r["id"], r["points"]) for r in db.query(
        "SELECT c.image_id, c.id, c.points FROM landmark_corrections c WHERE c.id = "
        "(SELECT max(id) FROM landmark_corrections d WHERE d.image_id = c.image_id)")}


def measurement_row(image_id: int, m: Measurement, mirrored: bool, correction: tuple[int, str] | None = None) -> dict:
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
    return {"image_id": image_id, "landmark_version": LANDMARK_VERSION, "index_version": INDEX_VERSION,
            "status": status, "message": message, "points": points,
            "box": None if lm.box is None else json.dumps([round(v, 1) for v in lm.box]),
            "score": f(lm.score), "n_faces": lm.n_faces, **index_values(indices),
            "sharpness": f(q.get("sharpness")), "face_fraction": f(q.get("face_fraction")),
            "blurry": None if q.get("blurry") is None else int(q["blurry"]),
            "distant": None if q.get("distant") is None else int(q["distant"]),
            "measured_at": now(), "correction_id": correction_id, "auto_points": auto}


def pending(db: Database, store: Path) -> list[tuple[int, str, bool]]:
    """Return (image id, path in the image store, mirrored) of images without a current measurement."""
    rows = db.query("SELECT i.id, i.stored_path, i.mirrored FROM images i WHERE NOT EXISTS (SELECT 1 FROM measurements m "
                    "WHERE m.image_id = i.id AND m.landmark_version = ? AND m.index_version = ?) ORDER BY i.id",
                    [LANDMARK_VERSION, INDEX_VERSION])
    return [(r["id"], str(store / r["stored_path"]), bool(r["mirrored"])) for r in rows]


def reindex_stored(db: Database, batch: int = 500, *, actor) -> int:
    """Recompute the indices of images measured with the current landmark version but an older
    index version, from their stored points (no decoding, no dlib); return how many were done.

    A change of formula (INDEX_VERSION) thus costs milliseconds per image; only a change of the
    landmark model (LANDMARK_VERSION) measures the photos again. Images whose landmarking failed
    (no face, unreadable...) keep that outcome under the new index version. The points are stored
    rounded to 0.01 px, so the indices can differ from a fresh measurement in the 4th decimal.
    Stored points of a corrected image are the corrected ones, and stay so.
    """
    kept = ("image_id", "status", "message", "points", "box", "score", "n_faces", "sharpness", "face_fraction",
            "blurry", "distant", "correction_id", "auto_points")
    rows = db.query(
        f"SELECT {', '.join('m.' + c for c in kept)}, i.mirrored "
        "FROM measurements m JOIN images i ON i.id = m.image_id "
        "WHERE m.landmark_version = ? AND m.index_version <> ? AND m.id = (SELECT max(x.id) FROM measurements x "
        "WHERE x.image_id = m.image_id AND x.landmark_version = ?) AND NOT EXISTS (SELECT 1 FROM measurements c "
        "WHERE c.image_id = m.image_id AND c.landmark_version = ? AND c.index_version = ?) ORDER BY m.image_id",
        [LANDMARK_VERSION, INDEX_VERSION, LANDMARK_VERSION, LANDMARK_VERSION, INDEX_VERSION])
    out: list[dict] = []
    for old in rows:
        row = {c: old[c] for c in kept}
        idx = None
        if old["points"] is not None and old["status"] in ("ok", "degenerate"):
            idx = compute_indices(np.asarray(json.loads(old["points"]), dtype=np.float64), bool(old["mirrored"]))
            # An ok landmarking keeps its note (e.g. the best of two faces used); a degenerate one says why.
            row["message"] = idx.message if not idx.ok else (old["message"] if old["status"] == "ok" else "")
            row["status"] = "ok" if idx.ok else "degenerate"
        out.append({**row, "landmark_version": LANDMARK_VERSION, "index_version": INDEX_VERSION,
                    **index_values(idx), "measured_at": now()})
    for start in range(0, len(out), batch):
        with transaction(db) as conn:
            authorize(conn, actor, "measure")
            conn.executemany(INSERT, out[start:start + batch])
    return len(out)


def measure_pending(db: Database, store: Path, workers: int | None = None, batch: int = 32,
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
    pick_best = bool(settings.get(db, "pick_best_face"))
    jobs = [(i, p, m, pick_best) for i, p, m in todo]
    mirrored_of = {i: m for i, _, m in todo}
    corrections = latest_corrections(db) if todo else {}
    counts: dict[str, int] = {"reindexed": reindexed} if reindexed else {}
    buffer: list[dict] = []

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
    results = map(measure_job, jobs) if workers <= 1 or len(jobs) < 4 else None
    pool = None
    if results is None:
        pool = ProcessPoolExecutor(workers)
        results = pool.map(measure_job, jobs, chunksize=4)
    try:
        for image_id, m in results:
            counts[m.status] = counts.get(m.status, 0) + 1
            buffer.append(measurement_row(image_id, m, mirrored_of[image_id], corrections.get(image_id)))
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


def effective_flags(db: Database, image_id: int) -> dict[str, bool | None]:
    """Return the image's blurry/distant flags: the latest coordinator override, else the measured value."""
    row = db.execute("SELECT blurry, distant FROM measurements WHERE image_id = ? AND status = 'ok' "
                     "ORDER BY id DESC LIMIT 1", [image_id]).fetchone()
    flags = {"blurry": None if not row or row[0] is None else bool(row[0]),
             "distant": None if not row or row[1] is None else bool(row[1])}
    for flag, value in db.execute("SELECT flag, value FROM quality_overrides WHERE image_id = ? ORDER BY id", [image_id]):
        flags[flag] = bool(value)
    return flags


def override_flag(db: Database, image_id: int, flag: str, value: bool, actor, reason: str = "") -> None:
    """Record a coordinator's override of a quality flag (append-only; the latest wins)."""
    require(actor, "quality.override")
    with transaction(db) as conn:
        who = authorize(conn, actor, "quality.override")
        conn.execute("INSERT INTO quality_overrides (image_id, flag, value, reason, actor, at) VALUES (?,?,?,?,?,?)",
                     (image_id, flag, int(value), reason, who, now()))
        audit(conn, who, "quality.override", "image", image_id, flag=flag, value=value, reason=reason)
