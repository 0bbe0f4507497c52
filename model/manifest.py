"""Reads an export's manifest.csv and splits it into the train / val / test partitions of a run.

Pandas only (no TensorFlow), so the CLI can reject a bad export before the slow import.
The export layout (docs/export.md): NAME/{train,val,test}/{N,L1,...,R3}/<sha256>.png plus manifest.csv.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from model import CLASSES, ModelError

REQUIRED_COLUMNS = (
    "image_sha256",
    "subject_hash",
    "movement",
    "label",
    "split",
    "fold",
    "source",
    "flags",
    "synthetic",
    "path",
)
SPLITS = ("train", "val", "test")
TRAIN_ONLY_FLAGS = ("blurry", "distant")  # paper §2.3.4: used for training, never for validation


def read_manifest(export_dir: str | Path) -> pd.DataFrame:
    """Returns the export's manifest with `path` made absolute and `fold` as a nullable integer.

    Raises ModelError naming every problem found (missing folder, file, column, bad value).
    """
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        raise ModelError(f"export folder not found: {export_dir}")
    manifest_path = export_dir / "manifest.csv"
    if not manifest_path.is_file():
        raise ModelError(f"no manifest.csv in export folder {export_dir}")
    try:
        frame = pd.read_csv(manifest_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ModelError(f"cannot read {manifest_path}: {error}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ModelError(f"{manifest_path} lacks column(s): {', '.join(missing)}")
    frame = frame.copy()
    frame["fold"] = pd.to_numeric(frame["fold"].replace("", None), errors="coerce").astype("Int64")
    frame["synthetic"] = frame["synthetic"].isin(["1", "true", "True"])
    frame["path"] = [str(export_dir / p) for p in frame["path"]]
    problems = manifest_problems(frame)
    if problems:
        raise ModelError(f"{manifest_path}: " + "; ".join(problems))
    return frame


def manifest_problems(frame: pd.DataFrame) -> list[str]:
    """Returns what is wrong with a manifest read by read_manifest, as short sentences."""
    found = []
    if frame.empty:
        return ["no images"]
    bad_labels = sorted(set(frame["label"]) - set(CLASSES))
    if bad_labels:
        found.append(f"unknown label(s) {', '.join(map(repr, bad_labels))} (expected {', '.join(CLASSES)})")
    bad_splits = sorted(set(frame["split"]) - set(SPLITS))
    if bad_splits:
        found.append(f"unknown split(s) {', '.join(map(repr, bad_splits))}")
    if frame["split"].eq("train").sum() == 0:
        found.append("no training images")
    missing = [p for p in frame["path"] if not Path(p).is_file()]
    if missing:
        found.append(f"{len(missing)} image file(s) missing, e.g. {missing[0]}")
    return found


def has_any_flag(flags: pd.Series, names: tuple[str, ...] = TRAIN_ONLY_FLAGS) -> pd.Series:
    """Returns a boolean Series: True where the `;`-joined flags contain any of `names`."""
    wanted = set(names)
    return flags.fillna("").map(lambda text: bool(wanted & set(text.split(";"))))


def folds_of(manifest: pd.DataFrame) -> list[int]:
    """Returns the cross-validation folds present among the train and val images, sorted."""
    pool = manifest[manifest["split"].isin(["train", "val"])]
    return sorted(int(f) for f in pool["fold"].dropna().unique())


def partition(manifest: pd.DataFrame, fold: int | None = None) -> dict[str, pd.DataFrame]:
    """Returns the run's {"train", "val", "test"} image tables.

    Without a fold these are the manifest's splits. With fold K the train and val images are pooled
    and fold K validates (paper §2.3.4, k = 10); its blurry or distant images are left out of that
    fold entirely, as the paper keeps them out of validation and training on them would leak their
    subjects into the training side. The test split is never touched.
    """
    if fold is None:
        parts = {name: manifest[manifest["split"] == name] for name in SPLITS}
    else:
        pool = manifest[manifest["split"].isin(["train", "val"])]
        if pool["fold"].isna().any():
            raise ModelError(f"{int(pool['fold'].isna().sum())} train/val image(s) have no fold")
        if fold not in folds_of(manifest):
            raise ModelError(f"fold {fold} not in the manifest (folds: {folds_of(manifest)})")
        held_out = pool["fold"] == fold
        parts = {
            "train": pool[~held_out],
            "val": pool[held_out & ~has_any_flag(pool["flags"])],
            "test": manifest[manifest["split"] == "test"],
        }
    return {name: part.reset_index(drop=True) for name, part in parts.items()}
