"""Dataset export for the trainer (docs/export.md): final labels only, de-identified landmark crops,
subject-grouped 7:2:1 splits and 10-fold cross-validation, written once into an immutable folder.

Layout: NAME/{train,val,test}/{N,L1,...,R3}/<image sha256>.png, manifest.csv, datacard.md and
SHA256SUMS. docs/export.md describes the format for someone writing their own trainer.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import json
import math
import os
import re
import secrets
import shutil
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import sqlite_utils
from PIL import Image, ImageDraw

from asymmetry.crop import CROP_SIZE, MARGINS, crop_box, crop_for_model
from asymmetry.imaging import decode_image
from asymmetry.measure import effective_flags
from db.access import audit, now, transaction
from labeling.vocabulary import CLASSES, MAX_REASON, MOVEMENTS, SOURCES
from labeling.csvsafe import to_csv_bytes
from labeling.intake.importer import left_by_dead_processes
from labeling.accounts.actors import Actor
from labeling.accounts.permissions import authorize, require
from labeling.version import software_version
from labeling.words import join_words, plural
from labeling.workflow.states import final_labels, image_states

SPLITS = ("train", "val", "test")
RATIOS = (0.7, 0.2, 0.1)
N_FOLDS = 10
TRAIN_ONLY_FLAGS = ("blurry", "distant")  # paper §2.3.4: used for training, never to validate or test
# The trainer (model/manifest.py) reads these columns by name; keep the order.
MANIFEST_COLUMNS = ("image_sha256", "subject_hash", "movement", "label", "split", "fold", "source", "flags",
                    "synthetic", "path")
EXPORTS_FOLDER = "exports"
SECRET_SETTING = "export_subject_secret"  # never exported, never shown, never written to the audit log
SUBJECT_HASH_HEX = 16
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# zlib level 1: ~4x faster to write than Pillow's default 6 for ~7% larger files (bench/export.py).
# Lossless either way, and deterministic: the same crop gives the same bytes.
PNG_COMPRESS_LEVEL = 1
MIN_BOX_PX = 32
PARTIAL = ".partial-"
_STALE = re.compile(r"\..+" + re.escape(PARTIAL) + r"(\d+)-[0-9a-f]+")


class ExportError(ValueError):
    """An export or a crop correction is refused; the message says why and what to do."""


@dataclass(frozen=True)
class CropBox:
    """The box an image is cropped with (full-resolution pixels of the stored photo, EXIF
    orientation applied), where it comes from ("correction" or "landmarks"), or why there is none."""

    box: tuple[float, float, float, float] | None
    source: str
    reason: str = ""


@dataclass
class ExportResult:
    """What an export wrote: where, how many images, the class x split counts and what was left out."""

    name: str
    path: Path
    images: int
    counts: pd.DataFrame
    left_out: dict[str, int]
    synthetic: bool
    seconds: float
    datacard: str
    manifest: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)
    missing: dict[str, list[str]] = field(default_factory=dict)  # split -> classes of the export it lacks
    seed: int = 0
    every_class_in_train: bool = False

    def summary(self) -> str:
        """Return one line saying what was exported where (and which classes a split lacks)."""
        split = ", ".join(f"{int(self.counts.loc['total', s])} {s}" for s in SPLITS)
        out = sum(self.left_out.values())
        gaps = f"; {missing_sentence(self.missing, present_classes(self.manifest))}" if self.missing else ""
        return (f"{'SYNTHETIC ' if self.synthetic else ''}export {self.name}: {self.images} images ({split}) "
                f"in {self.path}; {plural(out, 'image')} left out (see datacard.md){gaps}; {self.seconds:.1f} s")


# ---- names and folders -----------------------------------------------------------------------


def exports_dir(store: Path, out_dir: Path | None = None) -> Path:
    """Return the folder that holds the exports: `out_dir`, or <data folder>/exports."""
    return Path(out_dir) if out_dir is not None else Path(store) / EXPORTS_FOLDER


def export_path(name: str, root: Path) -> Path:
    """Return root/name for a valid new export name, or raise ExportError saying why it is refused."""
    shown = repr(name) if name is not None else "(none)"
    if not name or not name.strip():
        raise ExportError("the export needs a name, e.g. 2026-02-fnp-v1")
    if not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise ExportError(f"export name {shown} refused: use 1-64 letters, digits, '.', '_' or '-', starting with a "
                          "letter or digit (no '/', '\\', '..', spaces or absolute paths), so the export stays "
                          f"inside {root}")
    path = root / name
    if path.exists() or path.is_symlink():  # a dangling symlink too: the export is never written through one
        raise ExportError(f"an export named {name!r} already exists at {path}; exports are never overwritten, "
                          "choose another name")
    return path


def list_exports(store: Path, out_dir: Path | None = None) -> pd.DataFrame:
    """Return the finished exports (name, images, synthetic, created (UTC, ISO), path), newest first;
    partial folders are skipped."""
    root = exports_dir(store, out_dir)
    rows = []
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(".") or not (p / "manifest.csv").is_file():
                continue
            m = pd.read_csv(p / "manifest.csv", dtype=str, keep_default_na=False)
            rows.append({"name": p.name, "images": len(m), "synthetic": bool((m["synthetic"] == "1").any()),
                         "created": dt.datetime.fromtimestamp(p.stat().st_mtime, dt.timezone.utc).isoformat(
                             timespec="seconds"),
                         "path": str(p), "_mtime": p.stat().st_mtime})
    df = pd.DataFrame(rows, columns=["name", "images", "synthetic", "created", "path", "_mtime"])
    return df.sort_values("_mtime", ascending=False).drop(columns="_mtime").reset_index(drop=True)


def remove_stale_partials(root: Path) -> list[str]:
    """Delete the hidden `.NAME.partial-PID-xxxx` folders of export processes that no longer run
    (killed half-way: they hold face crops nobody will use); return their names. A partial folder
    of a running export, or one whose name carries no process id, is left alone."""
    folders = (p for p in Path(root).iterdir() if p.is_dir()) if Path(root).is_dir() else ()
    stale = left_by_dead_processes(folders, _STALE)
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return [p.name for p in stale]


# ---- de-identification -----------------------------------------------------------------------


def subject_secret(db: sqlite_utils.Database) -> bytes:
    """Return the project's secret for hashing subject codes, creating it once (never exported)."""
    row = db.execute("SELECT value FROM settings WHERE key = ?", [SECRET_SETTING]).fetchone()
    if row is None:
        with transaction(db) as conn:
            # INSERT OR IGNORE: two first exports at once agree on whichever secret was stored first.
            created = conn.execute("INSERT OR IGNORE INTO settings (key, value) VALUES (?, ?)",
                                   (SECRET_SETTING, json.dumps(secrets.token_hex(32)))).rowcount
            if created:
                audit(conn, "system", "export.secret_created", "setting", SECRET_SETTING)  # the value is not logged
        row = db.execute("SELECT value FROM settings WHERE key = ?", [SECRET_SETTING]).fetchone()
    return bytes.fromhex(json.loads(row[0]))


def hash_subject(secret: bytes, code: str) -> str:
    """Return the pseudonymous subject id of the export: HMAC-SHA256(secret, code), first 16 hex digits."""
    return hmac.new(secret, code.encode("utf-8"), hashlib.sha256).hexdigest()[:SUBJECT_HASH_HEX]


# ---- crops and their corrections ---------------------------------------------------------------


def effective_crop_box(db: sqlite_utils.Database, image_id: int) -> CropBox:
    """Return the image's crop box: the latest coordinator correction, else the landmark box for its movement."""
    row = db.execute("SELECT x0, y0, x1, y1 FROM crop_corrections WHERE image_id = ? ORDER BY id DESC LIMIT 1",
                     [image_id]).fetchone()
    if row:
        return CropBox(tuple(float(v) for v in row), "correction")
    img = db.execute("SELECT movement, width, height FROM images WHERE id = ?", [image_id]).fetchone()
    if img is None:
        return CropBox(None, "none", f"no image {image_id}")
    # Same rule as asymmetry.measure.effective_flags: the latest successful measurement.
    m = db.execute("SELECT points FROM measurements WHERE image_id = ? AND status = 'ok' AND points IS NOT NULL "
                   "ORDER BY id DESC LIMIT 1", [image_id]).fetchone()
    if m is None:
        last = db.execute("SELECT status FROM measurements WHERE image_id = ? ORDER BY id DESC LIMIT 1",
                          [image_id]).fetchone()
        return CropBox(None, "none", "not measured yet" if last is None else f"no usable landmarks ({last[0]})")
    pts = np.asarray(json.loads(m[0]), dtype=np.float64)
    return CropBox(tuple(round(float(v), 2) for v in crop_box(pts, img[0], (img[1], img[2]))), "landmarks")


def correct_crop(db: sqlite_utils.Database, user: Actor, image_id: int, box, reason: str
                 ) -> tuple[float, float, float, float]:
    """Store a coordinator's crop box for an image (append-only, the latest wins); return the stored box.

    `box` is (x0, y0, x1, y1) in full-resolution pixels of the stored photo. A box that is not
    square is widened about its centre to the longer side, since crops are square.
    """
    require(user, "export")
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ExportError("a crop box is four numbers: x0, y0, x1, y1 (pixels of the original photo)") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 <= x0 or y1 <= y0:
        raise ExportError("a crop box needs x1 > x0 and y1 > y0 (pixels of the original photo)")
    reason = (reason or "").strip()
    if not reason:
        raise ExportError("say why the crop is corrected (the reason is kept with the correction)")
    img = db.execute("SELECT width, height FROM images WHERE id = ?", [image_id]).fetchone()
    if img is None:
        raise ExportError(f"no image {image_id}")
    w, h = img
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) / 2
    if 2 * half < MIN_BOX_PX:
        raise ExportError(f"a crop box needs at least {MIN_BOX_PX} pixels on its side")
    if not (0 <= cx <= w and 0 <= cy <= h) or 2 * half > 2 * max(w, h):
        raise ExportError(f"the box must be centred inside the {w}x{h} photo and at most twice its size")
    stored = tuple(round(v, 2) for v in (cx - half, cy - half, cx + half, cy + half))
    with transaction(db) as conn:
        who = authorize(conn, user, "export")
        conn.execute("INSERT INTO crop_corrections (image_id, x0, y0, x1, y1, reason, actor, at) VALUES (?,?,?,?,?,?,?,?)",
                     (image_id, *stored, reason[:MAX_REASON], who, now()))
        audit(conn, who, "crop.corrected", "image", image_id, box=stored, reason=reason[:MAX_REASON])
    return stored


def crop_pixels(path: str | Path, movement: str, box, mirrored: bool) -> tuple[np.ndarray | None, str]:
    """Return (299x299x3 uint8 crop, "ok") of a stored photo as exported, or (None, why not).

    Mirrored (front-camera) photos are flipped, so every exported crop shows the patient as a
    normal camera does: the patient's left on the image's right. The class labels are the
    patient's sides, so after this one convention holds for every image of the export.
    """
    return crop_for_model(str(path), movement, CROP_SIZE, box=tuple(box), mirrored=mirrored)


def _encode_png(rgb: np.ndarray) -> bytes:
    """Return `rgb` as PNG bytes with no metadata chunk (no EXIF, text, time or ICC profile)."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def _crop_job(job: tuple[int, str, str, tuple, bool]) -> tuple[int, bytes | None, str]:
    """Crop and encode one image (runs in a worker process); return (row, PNG bytes or None, status)."""
    row, path, movement, box, mirrored = job
    crop, status = crop_pixels(path, movement, box, mirrored)
    return row, None if crop is None else _encode_png(crop), status


@dataclass(frozen=True)
class CropPreview:
    """A crop as the export would write it, the full photo with the box drawn, and the box used."""

    crop: np.ndarray | None
    overlay: np.ndarray | None
    box: CropBox
    size: tuple[int, int]
    message: str = ""
    mirrored: bool = False


def crop_preview(db: sqlite_utils.Database, store: Path, image_id: int, box=None, overlay_side: int = 480) -> CropPreview:
    """Return the crop of one image as exported (with `box` instead of the stored one when given)."""
    img = db.execute("SELECT movement, stored_path, mirrored, width, height FROM images WHERE id = ?",
                     [image_id]).fetchone()
    if img is None:
        return CropPreview(None, None, CropBox(None, "none", f"no image {image_id}"), (0, 0), f"no image {image_id}")
    movement, stored, mirrored, w, h = img
    cb = CropBox(tuple(float(v) for v in box), "proposed") if box is not None else effective_crop_box(db, image_id)
    decoded = decode_image(Path(store) / stored, max_side=overlay_side)
    if not decoded.ok:
        return CropPreview(None, None, cb, (w, h), f"the photo cannot be decoded: {decoded.message}", bool(mirrored))
    pil = Image.fromarray(decoded.rgb)
    if cb.box is not None:
        ImageDraw.Draw(pil).rectangle([v * decoded.scale for v in cb.box], outline=(255, 200, 0), width=3)
    overlay = np.asarray(pil)
    if cb.box is None:
        return CropPreview(None, overlay, cb, (w, h), cb.reason, bool(mirrored))
    crop, status = crop_pixels(Path(store) / stored, movement, cb.box, bool(mirrored))
    return CropPreview(crop, overlay, cb, (w, h), "" if crop is not None else status, bool(mirrored))


def review_candidates(db: sqlite_utils.Database) -> pd.DataFrame:
    """Return the images with a final label (image_id, movement, label, crop source) for crop review."""
    fl = final_labels(db)
    movement = dict(db.execute("SELECT id, movement FROM images").fetchall())
    rows = []
    for r in fl.sort_values("image_id").itertuples():
        cb = effective_crop_box(db, int(r.image_id))
        rows.append({"image_id": int(r.image_id), "movement": movement[int(r.image_id)], "label": r.final_label,
                     "crop": cb.source if cb.box is not None else cb.reason})
    return pd.DataFrame(rows, columns=["image_id", "movement", "label", "crop"])


# ---- splits and folds --------------------------------------------------------------------------


def _split_cost(n: np.ndarray, target: np.ndarray) -> float:
    return float(((n - target) ** 2).sum() + ((n.sum(1) - target.sum(1)) ** 2).sum())


def _allocate(frame: pd.DataFrame, seed: int, ratios) -> pd.Series:
    """Return a bin number per row of `frame` (columns subject, label, train_only): whole subjects
    placed so that every class is shared between the bins as `ratios` say (see assign_splits)."""
    classes = [c for c in CLASSES if c in set(frame.label)] or sorted(set(frame.label))
    per_subject = pd.crosstab(frame.subject, frame.label).reindex(columns=classes, fill_value=0).sort_index()
    forced = frame.groupby("subject").train_only.any().reindex(per_subject.index).fillna(False).to_numpy(dtype=bool)
    counts = per_subject.to_numpy(dtype=np.float64)
    target = np.outer(np.asarray(ratios, dtype=np.float64), counts.sum(0))
    n = np.zeros_like(target)
    where = np.full(len(counts), -1)
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(len(counts))
    order = sorted(shuffled, key=lambda i: (not forced[i], -counts[i].sum()))  # stable: seeded ties

    def cost_if(i: int, k: int) -> float:
        n[k] += counts[i]
        c = _split_cost(n, target)
        n[k] -= counts[i]
        return c

    for i in order:
        k = 0 if forced[i] else int(np.argmin([cost_if(i, k) for k in range(len(ratios))]))
        n[k] += counts[i]
        where[i] = k
    for _ in range(100):  # local improvement: move single subjects while the cost falls
        improved = False
        for i in shuffled:
            if forced[i]:
                continue
            n[where[i]] -= counts[i]
            costs = [cost_if(i, k) for k in range(len(ratios))]
            best = int(np.argmin(costs))
            if costs[best] < costs[where[i]] - 1e-9:
                where[i] = best
                improved = True
            n[where[i]] += counts[i]
        if not improved:
            break
    return frame.subject.map(dict(zip(per_subject.index, where.tolist())))


def train_anchors(frame: pd.DataFrame, seed: int = 0) -> set:
    """Return the subjects to pin to train so that every class of `frame` (columns subject, label,
    train_only) has an image there: for each class no pinned subject holds yet, the subject holding
    the most such classes (then the fewest images; remaining ties in a seeded order)."""
    held = frame.groupby("subject")["label"].agg(set)
    size = frame.groupby("subject").size()
    order = {s: k for k, s in enumerate(np.random.default_rng(seed).permutation(sorted(held.index)))}
    pinned = set(frame.loc[frame["train_only"], "subject"])
    uncovered = set(frame["label"]) - set().union(*(held[s] for s in pinned))
    anchors = set()
    while uncovered:
        best = min((s for s in held.index if held[s] & uncovered),
                   key=lambda s: (-len(held[s] & uncovered), int(size[s]), order[s]))
        anchors.add(best)
        uncovered -= held[best]
    return anchors


def assign_splits(frame: pd.DataFrame, seed: int = 0, ratios=RATIOS, every_class_in_train: bool = False) -> pd.Series:
    """Return train/val/test per row of `frame` (columns subject, label, train_only).

    Grouped: all images of a subject share a split. Subjects with a train-only (blurry/distant)
    image go to train. The others are placed greedily, largest subject first (ties in a seeded
    order), each where it brings the per-class and total counts closest (least squares) to
    `ratios`; then single subjects are moved while that brings them closer still. With one image
    per subject this gives every class within one image of its 7:2:1 share.
    `every_class_in_train` first pins to train one subject per class that train would otherwise
    lack (train_anchors), for projects where a class belongs to a few subjects only.
    scikit-learn's grouped splitters cannot pin subjects to train, hence this allocation.
    """
    if every_class_in_train:
        frame = frame.assign(train_only=frame["train_only"] | frame["subject"].isin(train_anchors(frame, seed)))
    return _allocate(frame, seed, ratios).map(lambda k: SPLITS[k]).rename("split")


def _grouped_folds(part: pd.DataFrame, seed: int, n_folds: int) -> pd.Series:
    """Return a fold per row of `part`: scikit-learn's StratifiedGroupKFold (shuffled, seeded), or
    where it cannot run (fewer subjects than folds, or every class smaller than the number of
    folds) the same greedy allocation as the splits with `n_folds` equal shares."""
    folds = pd.Series(-1, index=part.index, dtype="int64")
    if part.subject.nunique() >= n_folds and part.label.value_counts().max() >= n_folds:
        from sklearn.model_selection import StratifiedGroupKFold

        sgkf = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "least populated class has fewer than n_splits"
            for k, (_, idx) in enumerate(sgkf.split(np.zeros(len(part)), part.label.to_numpy(), part.subject.to_numpy())):
                folds.iloc[idx] = k
        return folds
    return _allocate(part.assign(train_only=False), seed, [1 / n_folds] * n_folds).astype("int64")


def assign_folds(frame: pd.DataFrame, seed: int = 0, n_folds: int = N_FOLDS) -> pd.Series:
    """Return a cross-validation fold (0..n_folds-1) per row of `frame` (columns subject, label, split).

    The train+val images are divided into `n_folds` folds grouped by subject and stratified by
    class (StratifiedGroupKFold, seeded): this is what a cross-validating trainer pools. Test
    images get folds of their own, so that every subject is in exactly one fold.
    """
    folds = pd.Series(-1, index=frame.index, dtype="int64", name="fold")
    pool = frame["split"].isin(["train", "val"])
    for mask in (pool, ~pool):
        if mask.any():
            folds[mask] = _grouped_folds(frame[mask].sort_values(["subject", "image_sha256"] if "image_sha256" in frame
                                                                 else ["subject"]), seed, n_folds)
    return folds


# ---- the export ----------------------------------------------------------------------------


def readiness(db: sqlite_utils.Database) -> dict[str, int]:
    """Return how many images have a final label, are excluded, or are still unfinished."""
    states = image_states(db).state
    final = int(states.isin(["accepted", "final"]).sum())
    excluded = int((states == "excluded").sum())
    return {"final": final, "excluded": excluded, "unfinished": int(len(states) - final - excluded)}


def _table(frame: pd.DataFrame) -> str:
    """Return `frame` (index included) as a GitHub markdown table."""
    cols = [frame.index.name or ""] + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in frame.iterrows():
        lines.append("| " + " | ".join([str(idx)] + [str(v) for v in row.tolist()]) + " |")
    return "\n".join(lines)


def _by_split(manifest: pd.DataFrame, column: str, order) -> pd.DataFrame:
    t = pd.crosstab(manifest[column], manifest["split"]).reindex(index=list(order), columns=list(SPLITS), fill_value=0)
    t = t[t.sum(axis=1) > 0] if column != "label" else t
    t["total"] = t.sum(axis=1)
    t.loc["total"] = t.sum(axis=0)
    t.index.name = column
    return t.astype(int)


def _datacard(name: str, manifest: pd.DataFrame, left_out: dict[str, int], how: dict[str, int], corrected: int,
              mirrored: int, seed: int, version: str, manifest_sha: str, total_images: int,
              every_class_in_train: bool = False) -> str:
    synthetic = int((manifest["synthetic"] == 1).sum())
    counts = _by_split(manifest, "label", CLASSES)
    share = (counts[list(SPLITS)].div(counts["total"].where(counts["total"] > 0), axis=0) * 100).round(1).fillna(0.0)
    flagged = manifest[manifest["flags"] != ""]
    missing = missing_from_splits(manifest)
    present = present_classes(manifest)
    lines = [f"# Dataset export `{name}`", ""]
    if synthetic:
        lines += [f"> **SYNTHETIC DATA.** {synthetic} of the {len(manifest)} images are synthetic (generated from "
                  "scikit-image's astronaut photo by the FNP TripleCheck demo, labelled by simulated readers). They "
                  "show no patient and say nothing about facial palsy; use them only to test a pipeline.", ""]
    if "train" in missing:
        lines += [f"> **A CLASS IS MISSING FROM TRAIN.** T{missing_sentence({'train': missing['train']}, present)[1:]}: a model "
                  "trained on this export never sees it. See *Classes missing from a split* below.", ""]
    lines += ["FNP TripleCheck research dataset: face crops graded N, L1-L3, R1-R3 by the triple-check protocol "
              "(Song et al. 2018). A research annotation tool, not a diagnostic device.", "",
              "## Parameters", "",
              f"- created: {now()} (UTC)",
              f"- software: FNP TripleCheck {version}",
              f"- seed: {seed}",
              f"- images: {len(manifest)} exported of {total_images} in the project",
              "- split: train/val/test 7:2:1, grouped by subject (no subject in two splits), subjects placed to bring "
              "each class as close to 7:2:1 as whole subjects allow; subjects with a blurry or distant image go to "
              "train (paper §2.3.4)" + ("; one subject of each class train would otherwise lack pinned to train "
                                        "first (every class in train)" if every_class_in_train else "") + "; "
              + ("every class of the export is in every split" if not missing else
                 f"not every class could be placed in every split: {missing_sentence(missing, present)}"),
              f"- cross-validation: {N_FOLDS} folds over train+val, grouped by subject and stratified by class "
              f"(scikit-learn StratifiedGroupKFold, shuffle, random_state={seed}); test subjects get folds of their own",
              f"- crops: {CROP_SIZE}x{CROP_SIZE} RGB PNG, square box from the dlib 68 landmarks widened per movement "
              f"(margins below); {corrected} box(es) corrected by a coordinator",
              f"- orientation: the patient's left is on the image's right in every crop ({mirrored} mirrored "
              "front-camera photo(s) were flipped)",
              f"- subjects: HMAC-SHA256 of the subject code with a per-project secret (first {SUBJECT_HASH_HEX} hex "
              "digits); files are named by the SHA-256 of the original photo; no metadata in the PNGs",
              f"- manifest.csv SHA-256: {manifest_sha}", "",
              "## Images per class and split", "", _table(counts), "",
              "Share of each class per split (%):", "", _table(share), "",
              *_missing_section(manifest, missing),
              "## Per movement", "", _table(_by_split(manifest, "movement", MOVEMENTS)), "",
              "## Per source", "", _table(_by_split(manifest, "source", SOURCES)), "",
              f"## Train-only images (blurry or distant): {len(flagged)}", ""]
    if len(flagged):
        fl = flagged["flags"].value_counts().sort_index().rename_axis("flags").to_frame("images")
        lines += [_table(fl), ""]
    lines += ["## How the final labels were reached", "",
              _table(pd.DataFrame({"images": how}).rename_axis("by")) if how else "(none)", "",
              f"## Left out: {sum(left_out.values())}", "",
              _table(pd.DataFrame({"images": left_out}).rename_axis("reason")), "",
              "## Crop margins per movement (inter-pupil distances around the landmark box)", "",
              _table(pd.DataFrame(MARGINS, index=["top", "bottom", "sides"]).T.rename_axis("movement")), ""]
    return "\n".join(lines)


def _missing_section(manifest: pd.DataFrame, missing: dict[str, list[str]]) -> list[str]:
    """The data card's lines on classes a split lacks (none when every split has every class)."""
    if not missing:
        return []
    held = subjects_per_class(manifest.assign(subject=manifest["subject_hash"]))
    lines = ["## Classes missing from a split", "",
             "Subjects are never divided between splits, so a class whose images belong to few subjects cannot "
             "be in every split.", ""]
    present = present_classes(manifest)
    for split in SPLITS:
        if set(missing.get(split, [])) >= set(present):
            lines.append(f"- {split} is empty")
            continue
        for c in missing.get(split, []):
            lines.append(f"- {split} has no {c} image ({c} is in the images of {plural(held.get(c, 0), 'subject')})")
    lines += ["", "Another seed may place the classes better (the Export page lists the seeds that put every "
              "class into train), or the export can pin one subject of each class into train first (*Put every "
              "class into train*, `--every-class-in-train`); otherwise export once more subjects have these "
              "classes.", ""]
    return lines


def _not_final(states: dict[str, int]) -> dict[str, int]:
    """Return the images left out because they have no final label, by reason (zeros kept for excluded)."""
    out = {"excluded by an adjudicator": int(states.get("excluded", 0))}
    for s in sorted(states):
        if s not in ("accepted", "final", "excluded") and states[s]:
            out[f"unfinished: {s.replace('_', ' ')}"] = int(states[s])
    return out


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)


@dataclass
class ExportPlan:
    """What an export would hold before anything is written: one row per croppable image with a
    final label (columns image_id, image_sha256, subject_hash, movement, label, source, flags,
    synthetic, mirrored, stored_path, box, corrected, how, subject, train_only), the images left
    out by reason, and the project's image count."""

    frame: pd.DataFrame
    left_out: dict[str, int]
    total_images: int

    def split(self, seed: int, every_class_in_train: bool = False) -> pd.Series:
        """Return the split each row would get with `seed` (assign_splits)."""
        return assign_splits(self.frame, seed, every_class_in_train=every_class_in_train)


def export_plan(db: sqlite_utils.Database) -> ExportPlan:
    """Return what an export would hold now (nothing is written; the crops are not computed).

    Raises ExportError when no image has a final label, or none of those can be cropped."""
    st = image_states(db)
    states = st.state.value_counts().to_dict()
    fl = final_labels(db)
    if fl.empty:
        raise ExportError("no image has a final label yet, so there is nothing to export "
                          f"({len(st)} image(s): {', '.join(f'{n} {s}' for s, n in sorted(states.items())) or 'none'})")
    info = db.frame("SELECT i.id AS image_id, i.sha256, i.movement, i.source, i.mirrored, i.synthetic, "
                             "i.stored_path, s.code FROM images i JOIN subjects s ON s.id = i.subject_id")
    frame = fl.merge(info, on="image_id").sort_values("sha256").reset_index(drop=True)
    secret = subject_secret(db)
    left_out = _not_final(states)
    rows = []
    for r in frame.itertuples():
        cb = effective_crop_box(db, int(r.image_id))
        if cb.box is None:
            key = f"final label but {cb.reason}"
            left_out[key] = left_out.get(key, 0) + 1
            continue
        flags = effective_flags(db, int(r.image_id))
        rows.append({"image_id": int(r.image_id), "image_sha256": r.sha256, "subject_hash": hash_subject(secret, r.code),
                     "movement": r.movement, "label": r.final_label, "source": r.source,
                     "flags": ";".join(f for f in TRAIN_ONLY_FLAGS if flags.get(f)), "synthetic": int(r.synthetic),
                     "mirrored": bool(r.mirrored), "stored_path": r.stored_path, "box": cb.box,
                     "corrected": cb.source == "correction", "how": r.how})
    if not rows:
        raise ExportError("none of the images with a final label can be cropped: "
                          + ", ".join(f"{n} {k}" for k, n in left_out.items()))
    m = pd.DataFrame(rows)
    m["subject"] = m.subject_hash
    m["train_only"] = m["flags"] != ""
    return ExportPlan(m, left_out, len(st))


def missing_from_splits(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Return, per split, the classes present in `frame` (columns label, split) that the split
    has no image of; splits missing nothing are left out."""
    present = present_classes(frame)
    out = {}
    for split in SPLITS:
        have = set(frame.loc[frame["split"] == split, "label"])
        gone = [c for c in present if c not in have]
        if gone:
            out[split] = gone
    return out


def seeds_for_every_class(plan: ExportPlan, start: int, count: int = 20) -> pd.DataFrame:
    """Try seeds start .. start+count-1; return one row per seed (seed, missing_train,
    missing_val, missing_test: the classes each split would lack, as text, "(empty)" for an empty
    split) with every_class_in_train,
    those putting every class of the export into train first (then by fewest classes missing)."""
    rows = []
    present = present_classes(plan.frame)
    for seed in range(int(start), int(start) + int(count)):
        missing = missing_from_splits(plan.frame.assign(split=plan.split(seed)))
        rows.append({"seed": seed, **{f"missing_{s}": "(empty)" if set(missing.get(s, [])) >= set(present) else
                                      ", ".join(missing.get(s, [])) for s in SPLITS},
                     "every_class_in_train": "train" not in missing,
                     "_n": sum(len(v) for v in missing.values())})
    df = pd.DataFrame(rows)
    return (df.sort_values(["every_class_in_train", "_n", "seed"], ascending=[False, True, True])
            .drop(columns="_n").reset_index(drop=True))


def present_classes(frame: pd.DataFrame) -> list[str]:
    """Return the classes `frame` (column label) has images of, in class order."""
    return [c for c in CLASSES if c in set(frame["label"])]


def missing_sentence(missing: dict[str, list[str]], present: list[str]) -> str:
    """Return `missing` (split -> classes) in words: "train has no R1 or R2 image; test is empty"
    (`present`: the classes of the export, so that a split lacking them all is called empty)."""
    return "; ".join(f"{s} is empty" if set(missing[s]) >= set(present) else
                     f"{s} has no {join_words(missing[s], 'or')} image" for s in SPLITS if missing.get(s))


def subjects_per_class(frame: pd.DataFrame) -> dict[str, int]:
    """Return how many subjects have an image of each class in `frame` (a class held by one
    subject can be in one split only: subjects are never divided)."""
    n = frame.groupby("label")["subject"].nunique()
    return {c: int(n[c]) for c in CLASSES if c in n.index}


def export_dataset(db: sqlite_utils.Database, store: Path, name: str, *, seed: int = 0, out_dir: Path | None = None,
                   actor: Actor, progress: Callable[[int, int, str], None] | None = None,
                   workers: int | None = None, every_class_in_train: bool = False) -> ExportResult:
    """Export every image with a final label into a new folder NAME; return what was written.

    Raises ExportError when the name is refused (exists, or would leave the exports folder) or
    there is nothing to export, PermissionDenied when `actor` may not export. The folder is
    written under a temporary name and renamed when complete, so it either exists whole or not.
    """
    require(actor, "export")
    t0 = time.perf_counter()
    store = Path(store)
    root = exports_dir(store, out_dir)
    final_path = export_path(name, root)
    seed = int(seed)
    plan = export_plan(db)
    left_out = dict(plan.left_out)
    m = plan.frame.copy()
    m["split"] = assign_splits(m, seed, every_class_in_train=every_class_in_train)
    m["fold"] = assign_folds(m, seed)
    m["path"] = m["split"] + "/" + m["label"] + "/" + m["image_sha256"] + ".png"

    root.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(root)
    tmp = root / f".{name}{PARTIAL}{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        for split in SPLITS:  # every class folder in every split, so directory readers see the same classes
            for label in CLASSES:
                (tmp / split / label).mkdir(parents=True)
        jobs = [(i, str(store / r.stored_path), r.movement, r.box, r.mirrored) for i, r in enumerate(m.itertuples())]
        total = len(jobs) + 1
        if progress:
            progress(0, total, "cropping")
        workers = max(1, workers or os.cpu_count() or 1)
        ok = np.zeros(len(jobs), dtype=bool)
        sums = {}
        failed: dict[str, int] = {}
        pool = ProcessPoolExecutor(workers) if workers > 1 and len(jobs) >= 8 else None
        try:
            results = pool.map(_crop_job, jobs, chunksize=8) if pool else map(_crop_job, jobs)
            for done, (i, png, status) in enumerate(results, start=1):
                if png is None:
                    key = f"final label but the photo could not be cropped ({status})"
                    failed[key] = failed.get(key, 0) + 1
                else:
                    _write(tmp / m["path"].iat[i], png)
                    sums[m["path"].iat[i]] = hashlib.sha256(png).hexdigest()
                    ok[i] = True
                if progress:
                    progress(done, total, "cropping")
        finally:
            if pool:
                pool.shutdown(cancel_futures=True)
        for k, v in failed.items():
            left_out[k] = left_out.get(k, 0) + v
        m = m[ok]
        if m.empty:
            raise ExportError("none of the photos could be cropped: " + ", ".join(f"{n} {k}" for k, n in failed.items()))
        m["_s"] = m["split"].map(SPLITS.index)
        m["_c"] = m.label.map(CLASSES.index)
        m = m.sort_values(["_s", "_c", "image_sha256"]).reset_index(drop=True)
        manifest = m[list(MANIFEST_COLUMNS)].copy()
        manifest_bytes = to_csv_bytes(manifest, lineterminator="\n")
        manifest_sha = hashlib.sha256(manifest_bytes).hexdigest()
        _write(tmp / "manifest.csv", manifest_bytes)
        card = _datacard(name, manifest, left_out, m.how.value_counts().to_dict(), int(m.corrected.sum()),
                         int(m.mirrored.sum()), seed, software_version(), manifest_sha, plan.total_images,
                         every_class_in_train)
        _write(tmp / "datacard.md", card.encode("utf-8"))
        sums["manifest.csv"] = manifest_sha
        sums["datacard.md"] = hashlib.sha256(card.encode("utf-8")).hexdigest()
        _write(tmp / "SHA256SUMS", "".join(f"{h}  {p}\n" for p, h in sorted(sums.items())).encode())
        for p in tmp.rglob("*"):
            if p.is_file():
                p.chmod(0o444)  # an export is read, never edited in place
        if final_path.exists():
            raise ExportError(f"an export named {name!r} appeared at {final_path} while this one was written; "
                              "exports are never overwritten, choose another name")
        os.rename(tmp, final_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    with transaction(db) as conn:
        audit(conn, authorize(conn, actor, "export"), "export.created", "export", name, path=str(final_path),
              images=len(manifest), seed=seed, every_class_in_train=every_class_in_train,
              manifest_sha256=manifest_sha, left_out=sum(left_out.values()))
    if progress:
        progress(total, total, "done")
    counts = _by_split(manifest, "label", CLASSES)
    return ExportResult(name, final_path, len(manifest), counts, left_out, bool((manifest["synthetic"] == 1).any()),
                        time.perf_counter() - t0, card, manifest, missing_from_splits(manifest), seed,
                        every_class_in_train)
