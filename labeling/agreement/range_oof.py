"""Out-of-fold accuracy of the range classifier: every image classified by ranges learned without
its subject.

Check 2 learns its range table from the check-1 consensus images and then classifies those same
images, so "range class vs final label" computed with that table is in-sample, and flattering. The
figures an auditor sees are computed here instead: the subjects are split into subject-grouped
folds (scikit-learn's GroupKFold), and the images of each fold are classified by a table learned,
with the project's range settings, from the consensus images of the other folds' subjects only.
The check-2 workflow itself (accept or mismatch of each image) keeps using the stored table.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from asymmetry.ranges import classify_points, learn_ranges_grouped

N_FOLDS = 10
SUFFIX = " (out-of-fold)"
# The columns of out_of_fold_frame: the agreement audit compares each `range_class*` column with the
# final label under its own name, so the label "out-of-fold" travels into every table, matrix and
# JSON that shows them.
COLUMNS = ("range_class" + SUFFIX, "range_class_rgas" + SUFFIX, "range_class_anas" + SUFFIX)


def subject_folds(subjects: pd.Series, n_folds: int = N_FOLDS) -> np.ndarray:
    """Return a fold number (0..k-1) per row of `subjects`, every subject's rows in one fold, with
    k = min(n_folds, number of subjects); -1 for all rows when there are fewer than two subjects."""
    from sklearn.model_selection import GroupKFold

    groups = pd.Series(subjects).astype(str).to_numpy()
    k = min(n_folds, len(set(groups)))
    folds = np.full(len(groups), -1)
    if k < 2:
        return folds
    for fold, (_, test) in enumerate(GroupKFold(n_splits=k).split(groups, groups=groups)):
        folds[test] = fold
    return folds


def out_of_fold_frame(measurements: pd.DataFrame, states: pd.DataFrame, *, lo: float = 5.0, hi: float = 95.0,
                      min_count: int = 5, n_folds: int = N_FOLDS) -> pd.DataFrame:
    """Return image_id, movement, fold and the COLUMNS (range class with both indices, with signed
    RgAs alone, with signed AnAs alone) of every measured image, each classified by ranges learned
    from the consensus images of the OTHER folds' subjects.

    `measurements`: image_id, movement, status, rgas, anas (signed) as audit_data.load_measurements
    returns them; `states`: image_id, subject_id, consensus (workflow.image_states). `lo`, `hi`,
    `min_count`: the range settings. A class is None where the other folds hold too few images of a
    cell (as check 2 would leave it undecided), and for every image while the project has fewer
    than two subjects.
    """
    cols = ["image_id", "movement", "fold", *COLUMNS]
    ok = measurements[measurements["status"] == "ok"].merge(
        states[["image_id", "subject_id", "consensus"]], on="image_id", how="left").reset_index(drop=True)
    if not len(ok):
        return pd.DataFrame(columns=cols)
    ok["fold"] = subject_folds(ok["subject_id"].fillna(-1), n_folds)
    out = ok[["image_id", "movement", "fold"]].copy()
    for col in COLUMNS:
        out[col] = pd.Series(None, index=ok.index, dtype=object)
    # The consensus images, grouped by movement x class once; each fold's table learns from the
    # groups less that fold's rows (the same table as learn_ranges on those rows; tested).
    training = ok[ok["consensus"].notna()]
    train_points = training[["rgas", "anas"]].to_numpy(float)
    finite = np.isfinite(train_points).all(axis=1)
    training, train_points = training[finite], train_points[finite]
    train_fold = training["fold"].to_numpy()
    cells = {(str(m), str(c)): idx for (m, c), idx in
             training.groupby(["movement", "consensus"], sort=False).indices.items()}
    for fold in sorted(set(ok["fold"]) - {-1}):
        rows = ok["fold"] == fold
        groups = {key: train_points[idx[train_fold[idx] != fold]] for key, idx in cells.items()}
        table = learn_ranges_grouped(groups, lo=lo, hi=hi, min_count=min_count)
        points = ok.loc[rows, ["movement", "rgas", "anas"]]
        for col, axes in zip(COLUMNS, (("rgas", "anas"), ("rgas",), ("anas",))):
            out.loc[rows, col] = classify_points(points, table, axes)["range_class"].to_numpy()
    return out[cols]
