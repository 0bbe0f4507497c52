"""The run folder: where a training run keeps its settings, model, history, metrics and predictions.

    RUN/config.json         settings (TrainConfig), export path, partition sizes, versions
    RUN/model.keras         the trained model (no optimizer state)
    RUN/history.csv|.json   loss, accuracy and learning rate per epoch
    RUN/metrics.json        evaluate's figures, per split
    RUN/predictions.csv     one row per image and evaluated split
    RUN/checkpoints/        last epoch's weights and optimizer state, for --resume
    RUN/logs/               TensorBoard
A --cv run holds one such folder per fold (RUN/fold-0, ...) and the summary files at its top.
No TensorFlow here.
"""
from __future__ import annotations

import json
from pathlib import Path

from model import ModelError

PREDICTION_COLUMNS = (
    "image_sha256",
    "subject_hash",  # the export's hashed subject: the agreement audit resamples subjects, not images
    "source",
    "split",
    "fold",
    "movement",
    "label",
    "predicted",
    "prob_N",
    "prob_L1",
    "prob_L2",
    "prob_L3",
    "prob_R1",
    "prob_R2",
    "prob_R3",
)


def read_run_config(run_dir: str | Path) -> dict:
    """Returns the run's config.json as a dict; raises ModelError if the folder is not a run."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ModelError(f"not a run folder (no config.json): {run_dir}")
    return json.loads(path.read_text())


def fold_dirs(run_dir: str | Path) -> list[Path]:
    """Returns the per-fold run folders of a --cv run, in fold order (empty for a single run)."""
    found = [p for p in Path(run_dir).glob("fold-*") if p.is_dir() and p.name[5:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[5:]))


def trained_model_paths(run_dir: str | Path) -> list[Path]:
    """Returns the model.keras of a run, or of each fold of a --cv run; raises ModelError if none."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    dirs = fold_dirs(run_dir) if config.get("train", {}).get("cv") else [run_dir]
    paths = [d / "model.keras" for d in dirs]
    missing = [p for p in paths if not p.is_file()]
    if not paths or missing:
        raise ModelError(f"run not finished (no {missing[0] if missing else 'fold models'}); train or --resume it first")
    return paths


def write_json(path: Path, value) -> None:
    """Writes `value` as indented JSON, atomically (a crash never leaves half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, allow_nan=False) + "\n")
    tmp.replace(path)
