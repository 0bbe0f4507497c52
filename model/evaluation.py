"""Evaluation (paper §3, docs/model.md): confusion matrix raw and normalised by true class, per-class
precision and sensitivity, accuracy, per-movement accuracy, side and degree agreement, Cohen's kappa;
mean and standard deviation over the folds of a --cv run. Figures come from scikit-learn; the kappas
are labeling.agreement.measures' definitions, the ones the Agreement page reports.

classification_metrics and the CV summary need no deep-learning framework; predicting imports
Keras lazily (and TensorFlow only under its backend).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
)

from labeling.agreement.measures import weighted_kappa
from model import CLASSES, ModelError
from model.runs import PREDICTION_COLUMNS, fold_dirs, read_run_config, trained_model_paths, write_json

PROBABILITY_COLUMNS = [f"prob_{name}" for name in CLASSES]


def side_of(label: str) -> str:
    """Returns the side of a class: "N", "L" or "R"."""
    return label[0]


def degree_of(label: str) -> int:
    """Returns the degree of a class: 0 for N, else 1 (mild), 2 (moderate) or 3 (severe)."""
    return 0 if label == "N" else int(label[1])


def finite(value) -> float | None:
    """Returns value as a float, or None where it is undefined (NaN)."""
    value = float(value)
    return None if math.isnan(value) else value


def kappa(truth, predicted, weights: str = "nominal") -> float | None:
    """Returns Cohen's kappa with the named weights of labeling.agreement.measures.WEIGHTS
    (nominal, linear and quadratic on the scale L3 < ... < R3, degree_linear, degree_quadratic,
    laterality), or None where it is undefined (a single class everywhere)."""
    return finite(weighted_kappa(list(truth), list(predicted), weights))


def classification_metrics(labels, predicted, movements) -> dict:
    """Returns the evaluation figures for parallel sequences of true classes, predicted classes
    and movements.

    Keys: images, accuracy, side_accuracy, degree_accuracy, kappa, kappa_linear (the ordinal scale
    L3 < ... < R3), degree_kappa_linear (degree 0-3, side ignored),
    precision / sensitivity / support by class (None where undefined: a class never predicted,
    or absent), per_movement {movement: {images, accuracy}}, confusion_matrix (rows = true class,
    columns = predicted, in CLASSES order) and confusion_matrix_normalized (rows sum to 1; rows of
    absent classes are 0).
    """
    labels, predicted, movements = list(labels), list(predicted), list(movements)
    if not labels:
        raise ModelError("no images to evaluate")
    classes = list(CLASSES)
    precision, sensitivity, _, support = precision_recall_fscore_support(
        labels, predicted, labels=classes, zero_division=np.nan
    )
    frame = pd.DataFrame({"label": labels, "predicted": predicted, "movement": movements})
    frame["correct"] = frame["label"] == frame["predicted"]
    per_movement = {
        movement: {"images": int(len(group)), "accuracy": float(group["correct"].mean())}
        for movement, group in frame.groupby("movement", sort=True)
    }
    return {
        "images": len(labels),
        "accuracy": float(accuracy_score(labels, predicted)),
        "side_accuracy": float(accuracy_score([side_of(x) for x in labels], [side_of(x) for x in predicted])),
        "degree_accuracy": float(accuracy_score([degree_of(x) for x in labels], [degree_of(x) for x in predicted])),
        "kappa": kappa(labels, predicted),
        "kappa_linear": kappa(labels, predicted, "linear"),
        "degree_kappa_linear": kappa(labels, predicted, "degree_linear"),
        "precision": {c: finite(v) for c, v in zip(classes, precision)},
        "sensitivity": {c: finite(v) for c, v in zip(classes, sensitivity)},
        "support": {c: int(v) for c, v in zip(classes, support)},
        "per_movement": per_movement,
        "confusion_matrix": confusion_matrix(labels, predicted, labels=classes).tolist(),
        "confusion_matrix_normalized": confusion_matrix(labels, predicted, labels=classes, normalize="true").tolist(),
    }


def metrics_of_predictions(predictions: pd.DataFrame) -> dict:
    """Returns classification_metrics of a predictions.csv table (one split)."""
    return classification_metrics(predictions["label"], predictions["predicted"], predictions["movement"])


def summary_values(metrics: dict) -> dict[str, float | None]:
    """Returns the scalar figures of one evaluation, flattened ("precision.N", "per_movement.MV1", ...)."""
    flat = {k: metrics.get(k) for k in ("accuracy", "side_accuracy", "degree_accuracy", "kappa", "kappa_linear",
                                        "degree_kappa_linear")}
    for group in ("precision", "sensitivity"):
        flat.update({f"{group}.{c}": v for c, v in metrics[group].items()})
    flat.update({f"per_movement.{m}": v["accuracy"] for m, v in metrics["per_movement"].items()})
    return flat


def nest(flat: dict) -> dict:
    """Returns {"a.b": x} as {"a": {"b": x}}."""
    nested: dict = {}
    for key, value in flat.items():
        head, _, tail = key.partition(".")
        if tail:
            nested.setdefault(head, {})[tail] = value
        else:
            nested[head] = value
    return nested


def summarize_folds(fold_metrics: list[dict]) -> dict:
    """Returns {"mean": ..., "std": ...} of every scalar figure over folds (sample std, ddof=1;
    undefined values are skipped; None when no fold defines a figure)."""
    table = pd.DataFrame([summary_values(m) for m in fold_metrics], dtype=float)
    mean = {k: finite(v) for k, v in table.mean(skipna=True).items()}
    std = {k: finite(v) for k, v in table.std(ddof=1, skipna=True).items()}
    return {"mean": nest(mean), "std": nest(std)}


def predictions_table(frame: pd.DataFrame, probabilities: np.ndarray, split: str) -> pd.DataFrame:
    """Returns predictions.csv rows for `frame`'s images: ids, true label, predicted class, probabilities.

    `split` is the image's role in this run (for --fold K runs, "val" is fold K).
    """
    table = pd.DataFrame(
        {
            "image_sha256": frame["image_sha256"].to_numpy(),
            "subject_hash": frame["subject_hash"].to_numpy() if "subject_hash" in frame else None,
            "source": frame["source"].to_numpy() if "source" in frame else None,
            "split": split,
            "fold": frame["fold"].astype("Int64").to_numpy(),
            "movement": frame["movement"].to_numpy(),
            "label": frame["label"].to_numpy(),
            "predicted": [CLASSES[i] for i in np.argmax(probabilities, axis=1)],
        }
    )
    for i, column in enumerate(PROBABILITY_COLUMNS):
        table[column] = probabilities[:, i].astype(float)
    return table[list(PREDICTION_COLUMNS)]


def predict_probabilities(model, frame: pd.DataFrame, image_size: int, batch_size: int) -> np.ndarray:
    """Returns the model's class probabilities for `frame`'s images, in row order (n x 7)."""
    from model.data import make_dataset

    data = make_dataset(frame, image_size, batch_size, training=False, cache=False)
    return np.asarray(model.predict(data, verbose=0), dtype=np.float64)[: len(frame)]


def evaluate_model(model, parts: dict, config, splits=("test",)) -> tuple[pd.DataFrame, dict]:
    """Returns (predictions table, {split: metrics}) of a model on the run's partitions; empty
    splits are skipped."""
    tables, metrics = [], {}
    for split in splits:
        frame = parts[split]
        if not len(frame):
            continue
        table = predictions_table(frame, predict_probabilities(model, frame, config.image_size, config.val_batch_size), split)
        tables.append(table)
        metrics[split] = metrics_of_predictions(table)
    predictions = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(PREDICTION_COLUMNS))
    return predictions, metrics


def save_results(run_dir: Path, predictions: pd.DataFrame, metrics: dict, config) -> None:
    """Merges a run's new predictions and metrics into predictions.csv and metrics.json, replacing
    the rows and figures of the splits just evaluated."""
    run_dir = Path(run_dir)
    path = run_dir / "predictions.csv"
    if path.is_file():
        old = pd.read_csv(path, dtype={"fold": "Int64"})
        predictions = pd.concat([old[~old["split"].isin(list(metrics))], predictions], ignore_index=True)
    predictions.to_csv(path, index=False, float_format="%.6g")
    summary_path = run_dir / "metrics.json"
    summary = read_json(summary_path) or {"run": run_dir.name, "arch": config.arch, "fold": config.fold, "classes": list(CLASSES), "splits": {}}
    summary["splits"].update(metrics)
    write_json(summary_path, summary)


def read_json(path: Path) -> dict | None:
    """Returns the JSON in path, or None when the file does not exist."""
    return json.loads(path.read_text()) if path.is_file() else None


def combine_fold_predictions(tables: list[pd.DataFrame], split: str) -> pd.DataFrame:
    """Returns one prediction per image from the folds' predictions of a split.

    val: each image was validated by exactly one fold, so its rows are stacked (out-of-fold).
    test: every fold model saw the same images; their probabilities are averaged (the ensemble).
    """
    stacked = pd.concat(tables, ignore_index=True)
    if split != "test":
        return stacked
    keys = [c for c in ("image_sha256", "subject_hash", "source", "split", "fold", "movement", "label") if c in stacked]
    mean = stacked.groupby(keys, dropna=False, sort=False)[PROBABILITY_COLUMNS].mean().reset_index()
    mean["predicted"] = [CLASSES[i] for i in np.argmax(mean[PROBABILITY_COLUMNS].to_numpy(), axis=1)]
    return mean.reindex(columns=list(PREDICTION_COLUMNS))


def summarize_cv(run_dir: str | Path, splits=("val", "test")) -> dict:
    """Writes a --cv run's top-level metrics.json and predictions.csv from its folds and returns the metrics.

    Per split: every fold's figures, their mean and std, and the figures of the combined
    predictions ("pooled" out-of-fold for val, "ensemble" for test; train has no combination).
    """
    run_dir = Path(run_dir)
    summary = read_json(run_dir / "metrics.json") or {"run": run_dir.name, "cv": True, "classes": list(CLASSES), "splits": {}}
    combined_tables = []
    for split in splits:
        per_fold, tables = [], []
        for fold_dir in fold_dirs(run_dir):
            fold_metrics = (read_json(fold_dir / "metrics.json") or {}).get("splits", {}).get(split)
            if fold_metrics is None:
                continue
            per_fold.append({"fold": int(fold_dir.name[5:]), **fold_metrics})
            table = pd.read_csv(fold_dir / "predictions.csv", dtype={"fold": "Int64"})
            tables.append(table[table["split"] == split])
        if not per_fold:
            continue
        entry = {"folds": per_fold, **summarize_folds(per_fold)}
        if split in ("val", "test"):
            combined = combine_fold_predictions(tables, split)
            entry["pooled" if split == "val" else "ensemble"] = metrics_of_predictions(combined)
            combined_tables.append(combined)
        summary["splits"][split] = entry
    write_json(run_dir / "metrics.json", summary)
    if combined_tables:
        path = run_dir / "predictions.csv"
        new = pd.concat(combined_tables, ignore_index=True)
        if path.is_file():
            old = pd.read_csv(path, dtype={"fold": "Int64"})
            new = pd.concat([old[~old["split"].isin(new["split"].unique())], new], ignore_index=True)
        new.to_csv(path, index=False, float_format="%.6g")
    return summary


def evaluate_run(run_dir: str | Path, split: str = "test", xla: str = "auto") -> dict:
    """Predicts a trained run's `split` images again and writes its predictions.csv and metrics.json
    (for a --cv run: every fold, then the summary). Returns the metrics written.

    xla: auto | on | off, whether the prediction step is XLA-compiled (see model/backend.py)."""
    import dataclasses

    import keras

    from model.backend import set_jit_compile
    from model.config import TrainConfig
    from model.idfnp import load_trained
    from model.manifest import partition, read_manifest

    run_dir = Path(run_dir)
    if split not in ("train", "val", "test"):
        raise ModelError(f"unknown split {split!r} (train, val or test)")
    header = read_run_config(run_dir)
    config = TrainConfig.from_dict(header["train"])
    manifest = read_manifest(header["export"])
    for model_path in trained_model_paths(run_dir):
        fold_config = config
        if config.cv:
            fold_config = dataclasses.replace(config, cv=False, fold=int(model_path.parent.name[5:]))
        parts = partition(manifest, fold_config.fold)
        network = load_trained(model_path, config.arch, config.image_size, config.dropout, config.deepid_size)
        set_jit_compile(network, xla)
        predictions, metrics = evaluate_model(network, parts, fold_config, splits=(split,))
        if not metrics:
            raise ModelError(f"the {split} split of {model_path.parent} has no images")
        save_results(model_path.parent, predictions, metrics, fold_config)
        keras.backend.clear_session()
    if config.cv:
        return summarize_cv(run_dir, splits=(split,))["splits"][split]
    return read_json(run_dir / "metrics.json")["splits"][split]
