"""Two labellers on the same images: reader against reader, readers against the final labels, the
asymmetry range class against the final labels, and trainer runs against their truth, each a
`Comparison` with subject-cluster intervals. Plain pandas in, dataclasses and DataFrames out."""
from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from labeling.vocabulary import MOVEMENTS
from labeling.agreement import measures as am
from labeling.agreement.estimates import CELL_PATTERNS, PAIR_MEASURES, estimate_groups, flat
from labeling.agreement.measures import K, ORDINAL_ORDER
from labeling.agreement.stats import Bootstrap, cluster_sums, profiles_by_group, proportion_ci
from labeling.agreement.reads import NAN, cluster_codes, label_codes, prepare_reads, unit_name


# --------------------------------------------------------------------------------------------
# Two labellers on the same images: reader vs reader, reader vs final, range class vs final,
# model vs truth. Rows of every confusion matrix are the reference; classes in scale order.


@dataclass(frozen=True, eq=False)
class Comparison:
    """One labeller against a reference on the same images.

    measures: every Estimate by name (PAIR_NAMES: agreement, which is accuracy when the
    reference is ground truth, side and degree agreement, the L/R swap rate, the Cohen family and
    Gwet's AC1/AC2), also readable as attributes (`c.cohen_kappa`). confusion holds counts with
    the reference in rows and all 7 classes in scale order (L3 .. R3) on both axes; per_class has
    support, predicted, precision and sensitivity (NaN where undefined); per_movement has n,
    subjects, agreement and its interval. n_subjects and unit say what the intervals resample.
    """
    name: str
    n: int
    n_dropped: int
    measures: dict
    table: np.ndarray  # 7 x 7 counts, reference in rows, CLASSES order
    axes: tuple[str, str]  # the names of the reference and of the labels
    per_movement: pd.DataFrame
    meta: dict = field(default_factory=dict)
    n_subjects: int = 0
    unit: str = "subject"

    def __getattr__(self, name):
        measures = self.__dict__.get("measures", {})
        if name in measures:
            return measures[name]
        raise AttributeError(name)

    # The frames are built when first read (pandas took 0.2 s for the 400 frames of the 180 reader
    # pairs at bench scale, which no page shows at once).
    @cached_property
    def confusion(self) -> pd.DataFrame:
        """Counts, reference in rows, all 7 classes in scale order on both axes."""
        return _confusion_frame(self.table, *self.axes)

    @cached_property
    def per_class(self) -> pd.DataFrame:
        """class (scale order), support, predicted, precision and sensitivity (NaN where undefined)."""
        # From the 7 x 7 table: scikit-learn's precision_recall_fscore_support (zero_division=nan)
        # gives the same numbers (tests/test_agreement.py checks), but its input validation cost
        # 16 ms per call, 3 s over the 190 reader pairs of bench/scale.py.
        table = self.table
        hits, predicted, support = np.diag(table).astype(float), table.sum(0), table.sum(1)
        precision = np.divide(hits, predicted, out=np.full(K, NAN), where=predicted > 0)
        sensitivity = np.divide(hits, support, out=np.full(K, NAN), where=support > 0)
        return pd.DataFrame({"class": _SCALE_NAMES, "support": support[_SCALE], "predicted": predicted[_SCALE],
                             "precision": precision[_SCALE], "sensitivity": sensitivity[_SCALE]})

    @property
    def confusion_normalised(self) -> pd.DataFrame:
        """Return the confusion matrix divided by its row (reference class) totals; NaN rows where
        the reference class is absent (paper Figure 4)."""
        return normalise_rows(self.confusion)

    @property
    def balanced_accuracy(self) -> float:
        """Return the mean sensitivity over the reference classes present (NaN if none)."""
        s = self.per_class.loc[self.per_class["support"] > 0, "sensitivity"]
        return float(s.mean()) if len(s) else NAN

    def row(self) -> dict:
        """Return the comparison as one flat table row."""
        return {"name": self.name, **self.meta, "n": self.n, "n_dropped": self.n_dropped, **flat(self.measures),
                "balanced_accuracy": self.balanced_accuracy, "resampling_unit": self.unit}


def normalise_rows(confusion: pd.DataFrame) -> pd.DataFrame:
    """Return `confusion` with each row divided by its total (NaN for an empty row)."""
    totals = confusion.sum(axis=1)
    return confusion.div(totals.where(totals > 0), axis=0)


_SCALE_NAMES = pd.Index(ORDINAL_ORDER)  # built once, not per comparison (180 reader pairs at bench/scale.py)
_SCALE = am.ORDINAL_INDEX


def _confusion_frame(cells: np.ndarray, rows_name: str, cols_name: str) -> pd.DataFrame:
    table = cells.reshape(K, K).astype(int)[np.ix_(_SCALE, _SCALE)]
    return pd.DataFrame(table, index=_SCALE_NAMES.rename(rows_name), columns=_SCALE_NAMES.rename(cols_name))


def _group_codes(groups) -> tuple[np.ndarray, list[str]]:
    """Return (code per row, name per code) of a grouping sequence; missing values are 'unknown'."""
    if isinstance(groups, pd.Categorical):  # its codes are the factorization already
        codes, values = groups.codes.astype(np.int64), list(groups.categories) + [None]
        codes[codes < 0] = len(values) - 1
    else:
        codes, values = pd.factorize(np.asarray(groups, dtype=object), use_na_sentinel=False)
    return codes, ["unknown" if pd.isna(v) else str(v) for v in values]


def _proportion_rows(values: list[str], ci, name: str, order, with_ci: bool) -> pd.DataFrame:
    """One row per group with units (n > 0): name, n, subjects, agreement and its interval, in
    `order` then by name."""
    cols = [name, "n", "subjects", "agreement", "agreement_lo", "agreement_hi"]
    rank = {g: i for i, g in enumerate(order)}
    keep = sorted((i for i in range(len(values)) if ci.n[i] > 0), key=lambda i: (rank.get(values[i], len(rank)),
                                                                                  values[i]))
    if not keep:
        return pd.DataFrame(columns=cols)
    nan = np.full(len(keep), NAN)
    return pd.DataFrame({name: [values[i] for i in keep], "n": ci.n[keep].astype(int),
                         "subjects": ci.subjects[keep].astype(int), "agreement": ci.p[keep],
                         "agreement_lo": ci.lo[keep] if with_ci else nan,
                         "agreement_hi": ci.hi[keep] if with_ci else nan})


# The per_movement of a comparison computed without it (one frame shared, never changed).
_NO_MOVEMENTS = pd.DataFrame(columns=["movement", "n", "subjects", "agreement", "agreement_lo", "agreement_hi"])


class _PairedRows:
    """What Comparisons are computed from: one row per compared image (or read) with its group (a
    reader pair, a reader, a run), cluster (subject) code, reference and label codes (label_codes)
    and movement code (_group_codes), gathered by add() one batch at a time and kept compact
    (4.5 million rows at bench/scale.py)."""

    def __init__(self, n_groups: int, n_clusters: int, movements: list[str]):
        self.n_groups, self.n_clusters, self.movements = n_groups, max(n_clusters, 1), movements
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, group, cluster, ref, lab, movement) -> None:
        ref, lab = np.asarray(ref), np.asarray(lab)
        cell = np.where((ref >= 0) & (lab >= 0), ref * K + lab, -1).astype(np.int16)
        self.parts.append((np.asarray(group, np.int32), np.asarray(cluster, np.int32), cell,
                           np.asarray(movement, np.int16)))

    def comparisons(self, boot: Bootstrap, names: list[str], axes: list[tuple[str, str]], metas: list[dict],
                    units: list[str] | str = "subject", by_movement: bool = True,
                    pool: Executor | None = None) -> list[Comparison]:
        """Return one Comparison per group (names, confusion axis names, meta and unit per group);
        by_movement=False leaves per_movement empty (reader pairs and readers vs final, whose
        per-movement figures are agreement_by's: 1,260 small tables nobody reads at bench scale).
        With a `pool`, the second half of the groups is estimated on one of its threads."""
        G, M = self.n_groups, max(len(self.movements), 1)
        if self.parts:
            group, cluster, cell, movement = (np.concatenate(c) for c in zip(*self.parts))
        else:
            group = cluster = cell = movement = np.zeros(0, np.int32)
        valid = cell >= 0
        dropped = np.bincount(group[~valid], minlength=G) if G else np.zeros(0, int)
        if not valid.all():
            group, cluster, cell, movement = group[valid], cluster[valid], cell[valid], movement[valid]
        cells = np.bincount(group.astype(np.int64) * (K * K) + cell, minlength=G * K * K).reshape(G, K * K)
        profiles = profiles_by_group(group, cluster, cell, K * K, G, self.n_clusters)
        # Each group draws from its own seeded generator: splitting them changes no number.
        half = G // 2 if pool is not None and G > 1 and boot.n_boot > 0 else G
        second = pool.submit(estimate_groups, CELL_PATTERNS, profiles[half:], PAIR_MEASURES, boot) if half < G else None
        estimates = estimate_groups(CELL_PATTERNS, profiles[:half], PAIR_MEASURES, boot)
        estimates += second.result() if second is not None else []
        # Per movement: the accuracy of each (group, movement) with its subjects as clusters.
        if by_movement:
            hit = (cell // K == cell % K).astype(float)
            sums = cluster_sums(group.astype(np.int64) * M + movement, cluster, hit, G * M, self.n_clusters)
        else:
            sums = (np.zeros(G * M),) * 6
        per_movement_ci = proportion_ci(*sums, confidence=boot.confidence)
        units = [units] * G if isinstance(units, str) else units
        out = []
        for g, est in enumerate(estimates):
            table = cells[g].reshape(K, K)
            rows = slice(g * M, (g + 1) * M)
            per_movement = (_proportion_rows(self.movements, _Slice(per_movement_ci, rows), "movement", MOVEMENTS,
                                             boot.n_boot > 0) if by_movement else _NO_MOVEMENTS)
            subjects = max((e.subjects for e in est.values()), default=0)
            out.append(Comparison(names[g], int(table.sum()), int(dropped[g]), est, table, tuple(axes[g]),
                                  per_movement, metas[g], int(subjects), units[g]))
        return out


class _Slice:
    """The rows `rows` of a ProportionCI's arrays."""

    def __init__(self, ci, rows: slice):
        for name in ("p", "lo", "hi", "n", "subjects"):
            setattr(self, name, getattr(ci, name)[rows])


def subject_lookup(image_ids, *frames) -> np.ndarray:
    """The subject of each image id, from the first frame (with image_id and subject columns) that
    knows it; None where none does."""
    ids = pd.Index(pd.Series(image_ids, dtype=object))
    out = np.full(len(ids), None, dtype=object)
    for f in frames:
        if f is None or not len(f) or not {"image_id", "subject"} <= set(f.columns):
            continue
        known = f[["image_id", "subject"]].dropna().drop_duplicates("image_id")
        where = pd.Index(known["image_id"].astype(object)).get_indexer(ids)
        fill = (where >= 0) & pd.isna(out)
        out[fill] = known["subject"].to_numpy(dtype=object)[where[fill]]
    return out


def _compare_codes(name: str, ref: np.ndarray, lab: np.ndarray, movement, boot: Bootstrap,
                   names: tuple[str, str], meta: dict | None = None, subject=None, fallback=None) -> Comparison:
    n = len(ref)
    mv, movements = _group_codes(np.full(n, None, dtype=object) if movement is None else movement)
    subject = np.full(n, None, dtype=object) if subject is None else np.asarray(subject, dtype=object)
    fallback = np.arange(n) if fallback is None else fallback
    cluster, without = cluster_codes(subject, fallback)
    rows = _PairedRows(1, int(cluster.max()) + 1 if n else 1, movements)
    rows.add(np.zeros(n, dtype=np.int64), cluster, ref, lab, mv)
    return rows.comparisons(boot, [name], [names], [meta or {}], unit_name(n, without))[0]


def compare_labels(reference, labels, *, movement=None, subject=None, name: str = "labels",
                   names=("reference", "labels"), n_boot: int = 1000, seed: int = 0,
                   confidence: float = 0.95) -> Comparison:
    """Return the Comparison of `labels` against `reference` (two equal-length label sequences;
    None/NaN or non-class entries are dropped and counted in n_dropped). `subject` (one per
    entry) makes the subject the resampling unit; without it each entry is its own."""
    ref = label_codes(pd.Series(list(reference), dtype=object))
    lab = label_codes(pd.Series(list(labels), dtype=object))
    mv = None if movement is None else list(movement)
    return _compare_codes(name, ref, lab, mv, Bootstrap(n_boot, seed, confidence), tuple(names),
                          subject=None if subject is None else list(subject))


def confusion_frame(reference, labels, *, names=("reference", "labels")) -> pd.DataFrame:
    """Return the confusion counts (reference in rows) with all 7 classes in scale order on both axes."""
    return compare_labels(reference, labels, names=names, n_boot=0).confusion


def reader_pairs(reads, *, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95,
                 pool: Executor | None = None) -> list[Comparison]:
    """Return one Comparison per pair of readers who read the same images (reader A in rows;
    a reader paired with themself is intra-reader agreement, first read in rows). Reads without a
    reader name are left out. With a `pool`, half the pairs' bootstrap runs on one of its threads."""
    prep = prepare_reads(reads)
    g = prep.reads.loc[prep.reads["code"] >= 0, ["image", "reader_code", "code"]]  # by image, then rank
    image, reader, code = g["image"].to_numpy(), g["reader_code"].to_numpy(), g["code"].to_numpy()
    names = prep.readers
    n = max(len(names), 1)
    movement, movements = _group_codes(pd.Categorical(prep.images["movement"].to_numpy(dtype=object)))
    cluster = prep.images["cluster"].to_numpy()
    # Pair (a, b), a <= b, numbered a * n - a * (a - 1) / 2 + (b - a): n (n + 1) / 2 keys.
    rows = _PairedRows(n * (n + 1) // 2, prep.n_clusters, movements)
    # Row i with row i + d of the same image, for every offset d: each pair of an image's reads
    # once, earlier read first, counted per reader pair without listing the pairs in Python (45
    # per image at 10 reads: 4.5 million at bench/scale.py).
    for d in range(1, len(image)):
        i = np.flatnonzero(image[:-d] == image[d:])
        if not len(i):
            break  # no image has more than d graded reads
        i = i[(reader[i] >= 0) & (reader[i + d] >= 0)]
        ra, rb = reader[i], reader[i + d]
        swap = ra > rb
        a, b = np.minimum(ra, rb), np.maximum(ra, rb)
        rows.add(a * n - a * (a - 1) // 2 + (b - a), cluster[image[i]], np.where(swap, code[i + d], code[i]),
                 np.where(swap, code[i], code[i + d]), movement[image[i]])
    present = np.zeros(rows.n_groups, bool)
    for part in rows.parts:
        present[part[0]] = True
    keys = np.flatnonzero(present)
    dense = np.full(rows.n_groups, -1, np.int32)
    dense[keys] = np.arange(len(keys))
    rows.parts = [(dense[p[0]], *p[1:]) for p in rows.parts]
    rows.n_groups = len(keys)
    a_of = np.repeat(np.arange(n), np.arange(n, 0, -1))  # the pair numbering, inverted
    b_of = np.concatenate([np.arange(a, n) for a in range(n)])
    pairs = [(names[a_of[k]], names[b_of[k]]) for k in keys]
    return rows.comparisons(Bootstrap(n_boot, seed, confidence), [f"{a} vs {b}" for a, b in pairs],
                            [(f"reader {a}", f"reader {b}" + (" (second read)" if a == b else "")) for a, b in pairs],
                            [{"reader_a": a, "reader_b": b} for a, b in pairs], prep.unit, by_movement=False,
                            pool=pool)


def readers_vs_final(reads, finals: pd.DataFrame | None, *, n_boot: int = 1000, seed: int = 0,
                     confidence: float = 0.95) -> list[Comparison]:
    """Return one Comparison per reader: every graded read of theirs against the image's final
    label (`finals`: image_id, final_label). Finals come partly from the same reads, so this
    overstates a reader's accuracy; it shows bias, not validity."""
    prep = prepare_reads(reads)
    if finals is None or not len(finals) or not len(prep.reads):
        return []
    r = prep.reads[prep.reads["code"] >= 0].merge(
        finals[["image_id", "final_label"]].drop_duplicates("image_id", keep="last"), on="image_id")
    present = np.unique(r["reader_code"][r["reader_code"] >= 0])  # no reader name: left out
    keep = (r["reader_code"] >= 0).to_numpy()
    reader, names = np.searchsorted(present, r["reader_code"].to_numpy()), prep.readers[present]
    movement, movements = _group_codes(r["movement"].to_numpy(dtype=object))
    cluster = prep.images["cluster"].to_numpy()[r["image"].to_numpy()]
    rows = _PairedRows(len(names), prep.n_clusters, movements)
    rows.add(reader[keep], cluster[keep], label_codes(r["final_label"].astype(object))[keep], r["code"].to_numpy()[keep],
             movement[keep])
    names = [str(name) for name in names]
    return rows.comparisons(Bootstrap(n_boot, seed, confidence), names,
                            [("final", f"reader {name}") for name in names], [{"reader": name} for name in names],
                            prep.unit, by_movement=False)


def _image_movements(frames) -> pd.Series:
    """image_id -> movement from the first frame that has both columns."""
    parts = [f[["image_id", "movement"]] for f in frames
             if f is not None and {"image_id", "movement"} <= set(f.columns)]
    if not parts:
        return pd.Series(dtype=object)
    both = pd.concat(parts).dropna().drop_duplicates("image_id")
    return pd.Series(both["movement"].to_numpy(), index=both["image_id"].to_numpy())


def asymmetry_vs_final(ranges: pd.DataFrame | None, finals: pd.DataFrame | None, reads=None, *,
                       subjects: pd.DataFrame | None = None, n_boot: int = 1000, seed: int = 0,
                       confidence: float = 0.95) -> list[Comparison]:
    """Return one Comparison per `range_class*` column of `ranges` (image_id, range_class, ...)
    against the final label: the asymmetry method's accuracy (paper Table 7). Movement is taken
    from `ranges`, else `finals`, else the reads; the subject from `subjects` (image_id,
    subject), else the reads."""
    if ranges is None or finals is None or not len(ranges) or not len(finals):
        return []
    boot = Bootstrap(n_boot, seed, confidence)
    m = ranges.merge(finals[["image_id", "final_label"]].drop_duplicates("image_id", keep="last"), on="image_id")
    images = prepare_reads(reads).images if reads is not None else None
    movement = m["image_id"].map(_image_movements([ranges, finals, images]))
    subject = subject_lookup(m["image_id"], subjects, ranges, finals, images)
    final = label_codes(m["final_label"].astype(object))
    return [_compare_codes(f"asymmetry {col}", final, label_codes(m[col].astype(object)), movement, boot,
                           ("final", col), {"column": col}, subject, m["image_id"].to_numpy(dtype=object))
            for col in ranges.columns if str(col).startswith("range_class")]


def _prediction_runs(predictions) -> list[tuple[str, str | None, pd.DataFrame]]:
    """(run, arch, frame) per run, from a frame with a `run` column or a mapping run -> frame."""
    if predictions is None:
        return []
    if isinstance(predictions, Mapping):
        runs = list(predictions.items())
    else:
        df = predictions if "run" in predictions.columns else predictions.assign(run="model")
        runs = list(df.groupby("run", sort=False))
    return [(str(run), (str(df["arch"].dropna().iloc[0]) if "arch" in df and df["arch"].notna().any() else None), df)
            for run, df in runs]


def evaluate_runs(predictions, *, subjects: pd.DataFrame | None = None, n_boot: int = 1000, seed: int = 0,
                  confidence: float = 0.95) -> list[Comparison]:
    """Return one Comparison per trainer run: true `label` (rows) vs `predicted`, with accuracy,
    per-class precision and sensitivity (Tables 5-6), the confusion matrix (normalise with
    `.confusion_normalised`, Figure 4) and per-movement accuracy. `predictions` is a DataFrame with
    label, predicted, optional movement, subject (the export's subject hash), image_id,
    image_sha256, run and arch columns, or a mapping run -> DataFrame. The subject is the
    resampling unit: the `subject` column, else `subjects` (image_id, subject) by image_id; a
    prediction with neither is a cluster of its own (and the run's unit says how many)."""
    boot = Bootstrap(n_boot, seed, confidence)
    out = []
    for run, arch, df in _prediction_runs(predictions):
        df = df.reset_index(drop=True)
        mv = df["movement"] if "movement" in df else None
        subject = (df["subject"].to_numpy(dtype=object) if "subject" in df
                   else np.full(len(df), None, dtype=object))
        if "image_id" in df:
            looked_up = subject_lookup(df["image_id"], subjects)
            subject = np.where(pd.isna(subject), looked_up, subject)
        fallback = (df["image_sha256"] if "image_sha256" in df else df["image_id"] if "image_id" in df
                    else pd.Series(range(len(df)))).to_numpy(dtype=object)
        out.append(_compare_codes(run, label_codes(df["label"].astype(object)), label_codes(df["predicted"].astype(object)), mv,
                                  boot, ("true", "predicted"), {"arch": arch}, subject, fallback))
    return out


RUN_MEASURES = ("agreement", "cohen_kappa", "kappa_linear", "gwet_ac1", "lr_swap_rate")


def compare_runs(evaluations: list[Comparison]) -> pd.DataFrame:
    """Return runs side by side in the order given (import order), never ranked (paper Table 9):
    run, arch, n, subjects, accuracy, Cohen's kappa, linear weighted kappa, Gwet's AC1 and the
    L/R swap rate with their intervals, balanced accuracy, macro precision and the resampling unit.
    Picking the best run on the test split would bias its figure upwards; each run stands alone."""
    cols = ["run", "arch", "n", "subjects"]
    for m in RUN_MEASURES:
        cols += [("accuracy" if m == "agreement" else m) + s for s in ("", "_lo", "_hi")]
    cols += ["balanced_accuracy", "macro_precision", "resampling_unit"]
    rows = []
    for c in evaluations:
        row = {"run": c.name, "arch": c.meta.get("arch"), "n": c.n, "subjects": c.n_subjects}
        for m in RUN_MEASURES:
            e, key = c.measures[m], "accuracy" if m == "agreement" else m
            row.update({key: e.value, f"{key}_lo": e.ci_low, f"{key}_hi": e.ci_high})
        row.update({"balanced_accuracy": c.balanced_accuracy,
                    "macro_precision": float(c.per_class.loc[c.per_class["predicted"] > 0, "precision"].mean())
                    if (c.per_class["predicted"] > 0).any() else NAN, "resampling_unit": c.unit})
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def movement_table(per_movement: pd.DataFrame, comparisons: list[Comparison]) -> pd.DataFrame:
    """Return per-movement accuracy, one column per method (asymmetry columns, model runs) beside
    the neurologists' double-read agreement, with an `n ...` column each and an 'all' row (paper
    Table 7). `per_movement` is agreement_by(reads, 'movement')."""
    table = pd.DataFrame({"movement": list(MOVEMENTS) + ["all"]})
    for c in comparisons:
        pm = c.per_movement.set_index("movement")
        table[c.name] = table["movement"].map(pm["agreement"]).astype(float)
        table[f"n {c.name}"] = table["movement"].map(pm["n"]).astype(float)
        all_row = table["movement"] == "all"
        table.loc[all_row, c.name], table.loc[all_row, f"n {c.name}"] = c.agreement.value, c.n
    neuro = "neurologists (double-read agreement)"
    pm = per_movement.set_index("movement") if len(per_movement) else pd.DataFrame(
        columns=["percent_agreement", "n_double_read"])
    table[neuro] = table["movement"].map(pm["percent_agreement"]).astype(float)
    table[f"n {neuro}"] = table["movement"].map(pm["n_double_read"]).astype(float)
    # 'all': the double-read-weighted mean of the movements, which is the pooled proportion.
    n = pm["n_double_read"].astype(float)
    all_row = table["movement"] == "all"
    table.loc[all_row, neuro] = float((pm["percent_agreement"].astype(float) * n).sum() / n.sum()) if n.sum() else NAN
    table.loc[all_row, f"n {neuro}"] = float(n.sum())
    return table
