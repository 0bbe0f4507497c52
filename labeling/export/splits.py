"""Subject-grouped splits and folds: every subject's images in one split (7:2:1 by default), the
classes spread over the splits as evenly as the subjects allow, and 10 cross-validation folds of
train + val; what a split lacks, in words."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from labeling.vocabulary import CLASSES
from labeling.words import join_words

SPLITS = ("train", "val", "test")
RATIOS = (0.7, 0.2, 0.1)
N_FOLDS = 10


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
