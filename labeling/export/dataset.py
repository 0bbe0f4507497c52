"""Dataset export for the trainer (docs/export.md): final labels only, de-identified landmark crops,
subject-grouped 7:2:1 splits and 10-fold cross-validation, written once into an immutable folder.

Layout: NAME/{train,val,test}/{N,L1,...,R3}/<image sha256>.png, manifest.csv, datacard.md and
SHA256SUMS. docs/export.md describes the format for someone writing their own trainer.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import sqlite_utils

from asymmetry.crop import CROP_SIZE, MARGINS
from labeling.workflow.measuring import effective_flags
from db.access import audit, now, transaction
from labeling.vocabulary import CLASSES, MOVEMENTS, SOURCES
from labeling.csvsafe import to_csv_bytes
from labeling.intake.importer import left_by_dead_processes
from labeling.accounts.actors import Actor
from labeling.accounts.permissions import authorize, require
from labeling.version import software_version
from labeling.words import plural
from labeling.workflow.states import final_labels, image_states
from labeling.export.crops import crop_job, effective_crop_box
from labeling.export.errors import ExportError
from labeling.export.splits import N_FOLDS, SPLITS, assign_folds, assign_splits, missing_from_splits, missing_sentence, present_classes, subjects_per_class

TRAIN_ONLY_FLAGS = ("blurry", "distant")  # paper §2.3.4: used for training, never to validate or test
# The trainer (model/manifest.py) reads these columns by name; keep the order.
MANIFEST_COLUMNS = ("image_sha256", "subject_hash", "movement", "label", "split", "fold", "source", "flags",
                    "synthetic", "path")
EXPORTS_FOLDER = "exports"
SECRET_SETTING = "export_subject_secret"  # never exported, never shown, never written to the audit log
SUBJECT_HASH_HEX = 16
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# zlib level 1: ~4x faster to write than Pillow's default 6 for ~7% larger files (bench/export.py).
PARTIAL = ".partial-"
_STALE = re.compile(r"\..+" + re.escape(PARTIAL) + r"(\d+)-[0-9a-f]+")




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
            results = pool.map(crop_job, jobs, chunksize=8) if pool else map(crop_job, jobs)
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
