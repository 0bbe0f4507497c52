"""Agreement audit (issue 5, issue 15): reader vs reader, reader vs final, the asymmetry range
classifier vs final, and model runs vs their truth, with named measures and subject-level
intervals.

Plain pandas in, dataclasses and DataFrames out: no Streamlit, no SQL. The measures are defined
once in labeling/agreement/measures.py, their intervals in labeling/agreement/stats.py and their
estimation on pattern counts in labeling/agreement/estimates.py; the methods paragraph and the
headline in labeling/agreement/report.py. docs/agreement.md defines every measure.

The unit of every interval is the subject: reads, finals, range classes and predictions are
tied to their image's subject (a `subject` column, or the `subjects` frame image_id -> subject);
an image without a subject counts as a subject of its own, and the outputs say so.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from labeling.vocabulary import MOVEMENTS
from labeling.agreement import measures as am
from labeling.agreement.estimates import (CELL_PATTERNS, PAIR_MEASURES, PAIR_NAMES, READ_MEASURES, READ_NAMES, Counts,
                                          Estimate, estimate_groups, flat, flat_columns, one_vs_rest_kappa,
                                          pattern_counts, proportion)
from labeling.agreement.measures import CLASSES, DEGREES, K, ORDINAL_ORDER, SIDES, SIGNED, WEIGHTS
from labeling.agreement.stats import (BOOTSTRAP_METHOD, PROPORTION_METHOD, Bootstrap, Profiles, cluster_sums,
                                      profiles_by_group, proportion_ci)
from labeling.csvsafe import safe_csv_frame

__all__ = ["CLASSES", "K", "SIDES", "DEGREES", "SIGNED", "ORDINAL_ORDER", "WEIGHTS", "DEGREE_WEIGHTS",
           "degree_weights", "Estimate", "Bootstrap", "CELL_PATTERNS", "READ_COLUMNS", "CANNOT_GRADE",
           "PreparedReads", "prepare_reads", "ReadAgreement", "MEASURE_NAMES", "PAIR_NAMES", "read_agreement",
           "agreement_by", "class_agreement", "Comparison", "normalise_rows", "compare_labels", "confusion_frame",
           "reader_pairs", "readers_vs_final", "asymmetry_vs_final", "evaluate_runs", "compare_runs",
           "movement_table", "CheckRates", "check_rates", "agreement_over_time", "auto_freq",
           "reader_label_distribution", "reading_time_summary", "published_figures", "Audit", "audit", "summary",
           "report_csv"]

READ_COLUMNS = ("image_id", "reader", "label", "submitted_at", "duration_ms", "movement", "source",
                "synthetic", "subject")
CANNOT_GRADE = "cannot grade"
NAN = float("nan")
# The laterality-aware matrix, by its former name (the Agreement page called its kappa "weighted
# on degree"); agreement_measures.WEIGHTS["laterality"] is the definition.
DEGREE_WEIGHTS = WEIGHTS["laterality"]


def degree_weights() -> np.ndarray:
    """Return a copy of the laterality-aware disagreement weights (former name)."""
    return WEIGHTS["laterality"].copy()


# --------------------------------------------------------------------------------------------
# Subjects: the clusters of every interval


def _cluster_codes(subject, fallback) -> tuple[np.ndarray, int]:
    """Return (code per row, rows without a subject): rows with the same subject share a code;
    a row without one gets the code of its `fallback` key (its image), a cluster of its own."""
    subject = np.asarray(subject, dtype=object)
    missing = pd.isna(subject) if len(subject) else np.zeros(0, bool)
    if not missing.any():
        codes, _ = pd.factorize(subject)
        return codes.astype(np.int64), 0
    keys = np.empty(len(subject), dtype=object)
    keys[~missing] = ["s:" + str(s) for s in subject[~missing]]
    keys[missing] = ["i:" + str(f) for f in np.asarray(fallback, dtype=object)[missing]]
    codes, _ = pd.factorize(keys)
    return codes.astype(np.int64), int(missing.sum())


def unit_name(n_rows: int, n_without: int) -> str:
    """How a set of rows was clustered, in words."""
    if n_rows == 0 or n_without == 0:
        return "subject"
    if n_without == n_rows:
        return "image (no subject known)"
    return f"subject ({n_without} of {n_rows} without a subject, each its own cluster)"


# --------------------------------------------------------------------------------------------
# Reads


@dataclass(frozen=True)
class PreparedReads:
    """The effective reads coded once; every read-based function accepts this or a reads DataFrame.

    reads: the input rows sorted by image then time, plus `code` (0-6 class index, -1 cannot
    grade, -2 not a class), `at` (UTC time), `image` (int), `rank` (order among the image's
    graded reads, -1 if not graded) and `reader_code` (index into `readers`, the reader names in
    sorted order; -1 for a read without a reader name). images: one row per image with image_id,
    movement, source, synthetic, subject (as given, None if unknown), cluster (int code: the
    subject, or the image itself when it has none), n_reads, n_graded, first and second (codes of
    the first two graded reads, -1 if none), second_at and `pattern` (row in `patterns`, -1 for
    images with fewer than two graded reads). patterns: the distinct (first, second, counts per
    class) rows. n_without_subject: images with no subject.
    """
    reads: pd.DataFrame
    images: pd.DataFrame
    patterns: np.ndarray
    n_cannot_grade: int
    n_invalid_label: int
    readers: np.ndarray
    n_without_subject: int = 0
    # Multi-rater estimates by (image mask, Bootstrap), see _multi_rater.
    estimated: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def n_clusters(self) -> int:
        return int(self.images["cluster"].max()) + 1 if len(self.images) else 0

    @property
    def unit(self) -> str:
        return unit_name(len(self.images), self.n_without_subject)

    def pattern_weights(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Return how many (masked) images have each pattern."""
        pat = self.images["pattern"].to_numpy()
        keep = pat >= 0 if mask is None else (pat >= 0) & mask
        return np.bincount(pat[keep], minlength=len(self.patterns)).astype(float)

    def profiles(self, group: np.ndarray | None = None, n_groups: int = 1) -> list[Profiles]:
        """The subjects' pattern profiles of each group of double-read images (`group`: a group
        number per image, -1 for none; default one group of every image)."""
        img = self.images
        pat = img["pattern"].to_numpy()
        g = np.zeros(len(img), np.int64) if group is None else np.asarray(group, np.int64)
        keep = (pat >= 0) & (g >= 0)
        return profiles_by_group(g[keep], img["cluster"].to_numpy()[keep], pat[keep], len(self.patterns), n_groups,
                                 self.n_clusters)


_CLASS_INDEX = pd.Index(CLASSES, dtype=object)


def _codes(labels: pd.Series) -> np.ndarray:
    """Class index 0-6; -1 for cannot grade (None/NaN); -2 for anything that is not a class."""
    # Look up each distinct label once: hashing a million labels into the class index is slower.
    distinct, uniques = pd.factorize(np.asarray(labels, dtype=object))
    known = _CLASS_INDEX.get_indexer(pd.Index(uniques, dtype=object)).astype(int)
    known[known == -1] = -2
    return np.where(distinct >= 0, known[np.maximum(distinct, 0)] if len(known) else -1, -1)


def prepare_reads(reads) -> PreparedReads:
    """Return the reads coded and reduced to one row per image (see PreparedReads)."""
    if isinstance(reads, PreparedReads):
        return reads
    # No copy: pandas copies on write, so the caller's frame stays as it is.
    df = pd.DataFrame(reads) if reads is not None else pd.DataFrame()
    for col in READ_COLUMNS:
        if col not in df.columns:
            df[col] = pd.Series([None] * len(df), index=df.index, dtype=object)
    df = df.reset_index(drop=True)
    # Reader names as text and grouping columns as plain objects, converted once here rather
    # than in every comparison (pandas' Arrow strings are slow to turn back into numpy).
    for col in ("reader", "movement", "source"):
        values = df[col].to_numpy(dtype=object)
        missing = pd.isna(values)
        if col == "reader" and pd.api.types.infer_dtype(values, skipna=True) != "string":
            values = values.astype(str)
        df[col] = pd.Series(np.where(missing, None, values), index=df.index, dtype=object)
    # Reader codes in name order (as plain strings compare), for every per-reader table.
    reader_code, readers = pd.factorize(df["reader"].to_numpy(dtype=object), sort=True)
    df["reader_code"] = reader_code
    image, image_ids = pd.factorize(df["image_id"])
    # cache=False: pandas' cache of distinct timestamps costs more than it saves at 1,000,000 reads.
    at = pd.to_datetime(df["submitted_at"], utc=True, errors="coerce", cache=False)
    ns = at.dt.tz_convert(None).to_numpy().view("int64")
    ns = np.where(at.isna().to_numpy(), np.iinfo(np.int64).max, ns)
    order = np.lexsort((np.arange(len(df)), ns, image))
    df = df.iloc[order].reset_index(drop=True)
    df["image"], df["at"] = image[order], at.iloc[order].reset_index(drop=True)
    df["code"] = _codes(df["label"])
    graded = df["code"].to_numpy() >= 0
    img, code = df["image"].to_numpy(), df["code"].to_numpy()
    # Rank of each graded read within its image (rows are sorted by image): its position minus
    # the position of the image's first graded read.
    img_graded = img[graded]
    position = np.arange(len(img_graded))
    first_of_image = np.r_[True, img_graded[1:] != img_graded[:-1]] if len(img_graded) else np.zeros(0, bool)
    rank = np.full(len(df), -1)
    rank[graded] = position - np.maximum.accumulate(np.where(first_of_image, position, 0))
    df["rank"] = rank

    n_img = len(image_ids)
    counts = np.bincount(img[graded] * K + code[graded], minlength=n_img * K).reshape(n_img, K)
    first, second = np.full(n_img, -1), np.full(n_img, -1)
    first[img[rank == 0]] = code[rank == 0]
    second[img[rank == 1]] = code[rank == 1]
    second_at = df.loc[rank == 1, ["image", "at"]].set_index("image")["at"].reindex(range(n_img))
    starts = np.flatnonzero(np.r_[True, np.diff(img) != 0]) if len(df) else np.array([], int)
    images = df.iloc[starts][["image_id", "movement", "source", "synthetic", "subject"]].reset_index(drop=True)
    # An image's subject is the first one its reads name (they all should name the same).
    images["subject"] = images["subject"].astype(object).where(images["subject"].notna(), None)
    images["cluster"], n_without = _cluster_codes(images["subject"].to_numpy(dtype=object),
                                                  images["image_id"].to_numpy(dtype=object))
    images["n_reads"] = np.bincount(img, minlength=n_img)
    images["n_graded"] = counts.sum(1)
    images["first"], images["second"], images["second_at"] = first, second, second_at
    mat = np.column_stack([first, second, counts])
    double = counts.sum(1) >= 2
    pattern = np.full(n_img, -1)
    patterns = np.zeros((0, 2 + K), int)
    if double.any():
        rows = mat[double]
        radix = np.array([K + 1, K + 1] + [int(counts.max()) + 1] * K, dtype=np.int64)
        if np.prod(radix.astype(float)) < 2.0 ** 62:
            # One integer per row (mixed radix): np.unique on rows is slow at 100,000 images.
            place = np.concatenate([np.cumprod(radix[::-1])[::-1][1:], [1]])
            _, first_row, inverse = np.unique((rows + np.r_[1, 1, np.zeros(K, int)]) @ place,
                                              return_index=True, return_inverse=True)
            patterns = rows[first_row]
        else:
            patterns, inverse = np.unique(rows, axis=0, return_inverse=True)
        pattern[double] = inverse.ravel()
    images["pattern"] = pattern
    return PreparedReads(df, images, patterns, int((df["code"] == -1).sum()), int((df["code"] == -2).sum()),
                         np.asarray(readers, dtype=object), n_without)


MEASURE_NAMES = READ_NAMES


@dataclass(frozen=True)
class ReadAgreement:
    """Reader agreement over all images read at least twice (graded reads only).

    The proportions (percent, side, degree agreement, L/R swap rate) and Gwet's, Fleiss' and
    Krippendorff's coefficients use every graded read of an image (any number); the Cohen family
    compares the first and the second graded read. `measures` holds every Estimate by name (MEASURE_NAMES;
    docs/agreement.md defines each); they are attributes too (`r.cohen_kappa`).
    """
    n_reads: int
    n_images: int
    n_double_read: int
    n_cannot_grade: int
    n_invalid_label: int
    n_readers: int
    n_subjects: int
    unit: str
    measures: dict

    def __getattr__(self, name):
        measures = self.__dict__.get("measures", {})
        if name in measures:
            return measures[name]
        raise AttributeError(name)

    def estimates(self) -> dict[str, Estimate]:
        """Return the measures by name."""
        return dict(self.measures)


def _multi_rater(prep: PreparedReads, mask: np.ndarray | None, boot: Bootstrap) -> dict[str, Estimate]:
    key = (None if mask is None else np.asarray(mask, bool).tobytes(), boot)
    # The same images give the same estimates: a project with one source (or no synthetic image)
    # has agreement_by groups holding every image, which read_agreement has estimated already.
    if key not in prep.estimated:
        group = None if mask is None else np.where(mask, 0, -1)
        prep.estimated[key] = _multi_rater_estimates(prep.patterns, prep.profiles(group)[0], boot)
    return dict(prep.estimated[key])


def _multi_rater_estimates(P: np.ndarray, profiles: Profiles, boot: Bootstrap) -> dict[str, Estimate]:
    """Every read-agreement measure of one group's images."""
    est = estimate_groups(P, [profiles], READ_MEASURES, boot)[0]
    return {name: est[name] for name in READ_NAMES}


def read_agreement(reads, *, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95) -> ReadAgreement:
    """Return the overall reader agreement (ReadAgreement) of the effective reads."""
    prep = prepare_reads(reads)
    est = _multi_rater(prep, None, Bootstrap(n_boot, seed, confidence))
    img = prep.images
    double = img["pattern"].to_numpy() >= 0
    return ReadAgreement(
        n_reads=len(prep.reads), n_images=len(img), n_double_read=int(double.sum()),
        n_cannot_grade=prep.n_cannot_grade, n_invalid_label=prep.n_invalid_label,
        n_readers=int(prep.reads["reader"].nunique()),
        n_subjects=int(len(np.unique(img["cluster"].to_numpy()[double]))), unit=prep.unit, measures=est)


def _group_key(images: pd.DataFrame, by: str) -> pd.Series:
    values = images[by]
    if by == "synthetic":
        yes = values.isin([True, 1, "1", "true", "True", "yes"])
        return pd.Series(np.where(yes, "synthetic", np.where(values.isna(), "unknown", "real")), index=images.index)
    return values.astype(object).where(values.notna(), "unknown").astype(str)


def _ordered_groups(key: pd.Series, by: str) -> list:
    present = set(key.unique())
    preferred = {"movement": MOVEMENTS, "synthetic": ("real", "synthetic")}.get(by, ())
    return [g for g in preferred if g in present] + sorted(present - set(preferred))


def agreement_by(reads, by: str, *, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95) -> pd.DataFrame:
    """Return one row per value of `by` ('movement', 'source' or 'synthetic'): n_images,
    n_double_read and every read-agreement measure with _lo, _hi, _n columns, subjects and `notes`."""
    prep = prepare_reads(reads)
    boot = Bootstrap(n_boot, seed, confidence)
    img = prep.images
    key = _group_key(img, by)
    rows = []
    for g in _ordered_groups(key, by):
        mask = (key == g).to_numpy()
        rows.append({by: g, "n_images": int(mask.sum()),
                     "n_double_read": int((mask & (img["pattern"].to_numpy() >= 0)).sum()),
                     **flat(_multi_rater(prep, mask, boot))})
    return pd.DataFrame(rows, columns=[by, "n_images", "n_double_read", *flat_columns(MEASURE_NAMES)])


def class_agreement(reads, *, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95) -> pd.DataFrame:
    """Return one row per class, in scale order (L3 .. R3): n_reads (graded reads of that class on
    double-read images), specific agreement (of the ordered pairs of an image's reads whose first
    gives the class, the share whose second does too) and the one-vs-rest Cohen's kappa of first
    vs second read, each with _lo, _hi, _n, subjects and `notes`."""
    prep = prepare_reads(reads)
    boot = Bootstrap(n_boot, seed, confidence)
    P = prep.patterns
    profiles = prep.profiles()[0]
    w0 = profiles.totals()
    n_reads = (w0 @ pattern_counts(P)) if len(P) else np.zeros(K)
    rows = {}
    for c, name in enumerate(CLASSES):
        measures = (proportion("specific_agreement", f"no double-read image has a read of {name}", cls=c),
                    one_vs_rest_kappa(c))
        rows[name] = {"class": name, "n_reads": int(n_reads[c]), **flat(estimate_groups(P, [profiles], measures,
                                                                                          boot)[0])}
    return pd.DataFrame([rows[name] for name in ORDINAL_ORDER])


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
    reader pair, a reader, a run), cluster (subject) code, reference and label codes (_codes)
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


def _subject_lookup(image_ids, *frames) -> np.ndarray:
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
    cluster, without = _cluster_codes(subject, fallback)
    rows = _PairedRows(1, int(cluster.max()) + 1 if n else 1, movements)
    rows.add(np.zeros(n, dtype=np.int64), cluster, ref, lab, mv)
    return rows.comparisons(boot, [name], [names], [meta or {}], unit_name(n, without))[0]


def compare_labels(reference, labels, *, movement=None, subject=None, name: str = "labels",
                   names=("reference", "labels"), n_boot: int = 1000, seed: int = 0,
                   confidence: float = 0.95) -> Comparison:
    """Return the Comparison of `labels` against `reference` (two equal-length label sequences;
    None/NaN or non-class entries are dropped and counted in n_dropped). `subject` (one per
    entry) makes the subject the resampling unit; without it each entry is its own."""
    ref = _codes(pd.Series(list(reference), dtype=object))
    lab = _codes(pd.Series(list(labels), dtype=object))
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
    rows.add(reader[keep], cluster[keep], _codes(r["final_label"].astype(object))[keep], r["code"].to_numpy()[keep],
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
    subject = _subject_lookup(m["image_id"], subjects, ranges, finals, images)
    final = _codes(m["final_label"].astype(object))
    return [_compare_codes(f"asymmetry {col}", final, _codes(m[col].astype(object)), movement, boot,
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
            looked_up = _subject_lookup(df["image_id"], subjects)
            subject = np.where(pd.isna(subject), looked_up, subject)
        fallback = (df["image_sha256"] if "image_sha256" in df else df["image_id"] if "image_id" in df
                    else pd.Series(range(len(df)))).to_numpy(dtype=object)
        out.append(_compare_codes(run, _codes(df["label"].astype(object)), _codes(df["predicted"].astype(object)), mv,
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


# --------------------------------------------------------------------------------------------
# Checks, time, readers


@dataclass(frozen=True)
class CheckRates:
    """check1: share of images with all their reads in whose reads agreed (paper 97%); check2:
    share of check-1 consensus images whose range class was accepted (paper 93%)."""
    check1: Estimate
    check2: Estimate


def _rate(hits: np.ndarray, cluster: np.ndarray, boot: Bootstrap, empty: str) -> Estimate:
    n = len(hits)
    if n == 0:
        return Estimate(NAN, n=0, reason=empty)
    ci = proportion_ci(*cluster_sums(np.zeros(n, np.int64), cluster, hits.astype(float), 1, int(cluster.max()) + 1),
                       confidence=boot.confidence)
    lo, hi = (float(ci.lo[0]), float(ci.hi[0])) if boot.n_boot > 0 else (NAN, NAN)
    return Estimate(float(ci.p[0]), lo, hi, n, None, int(ci.subjects[0]))


def check_rates(checks: pd.DataFrame | None, *, subjects: pd.DataFrame | None = None, n_boot: int = 1000,
                seed: int = 0, confidence: float = 0.95) -> CheckRates:
    """Return CheckRates from `checks` (image_id, check1 agree/disagree, check2 accepted/mismatch/None,
    optional subject); other values are not counted. Subjects also from `subjects` (image_id, subject)."""
    boot = Bootstrap(n_boot, seed, confidence)
    if checks is None or not len(checks):
        checks = pd.DataFrame({"image_id": [], "check1": [], "check2": []})
    checks = checks.reset_index(drop=True)
    ids = checks["image_id"] if "image_id" in checks else pd.Series(range(len(checks)))
    subject = _subject_lookup(ids, checks if "subject" in checks else None, subjects)
    cluster, _ = _cluster_codes(subject, ids.to_numpy(dtype=object))
    out = []
    for col, yes, counted, empty in (("check1", "agree", ("agree", "disagree"), "no check-1 result"),
                                     ("check2", "accepted", ("accepted", "mismatch"), "no check-2 result")):
        c = checks[col] if col in checks else pd.Series([None] * len(checks), dtype=object)
        keep = c.isin(counted).to_numpy()
        out.append(_rate((c[keep] == yes).to_numpy(), cluster[keep], boot, empty))
    return CheckRates(*out)


def auto_freq(times) -> str:
    """The period for agreement over time: days up to 8 weeks of data, weeks up to 2 years,
    months beyond (a week of data drawn weekly would be a single point)."""
    t = pd.to_datetime(pd.Series(times), utc=True, errors="coerce").dropna()
    if not len(t):
        return "W"
    span = t.max() - t.min()
    return "D" if span <= pd.Timedelta(weeks=8) else "W" if span <= pd.Timedelta(days=730) else "M"


def agreement_over_time(reads, freq: str = "auto") -> pd.DataFrame:
    """Return per period (by when an image got its second graded read; a pandas period alias
    such as 'D', 'W', 'M', or 'auto': auto_freq): period (its start), freq, n_images,
    percent_agreement and cohen_kappa (first vs second read)."""
    prep = prepare_reads(reads)
    img = prep.images[(prep.images["pattern"] >= 0) & prep.images["second_at"].notna()]
    cols = ["period", "freq", "n_images", "percent_agreement", "cohen_kappa"]
    if not len(img):
        return pd.DataFrame(columns=cols)
    if freq == "auto":
        freq = auto_freq(img["second_at"])
    period = img["second_at"].dt.tz_convert(None).dt.to_period(freq).dt.start_time
    hits, _ = am.proportion_parts("percent_agreement", pattern_counts(prep.patterns))
    unanimous = hits[img["pattern"].to_numpy()]
    rows = []
    for start, idx in sorted(pd.Series(range(len(img))).groupby(period.to_numpy()).indices.items()):
        w = np.bincount(img["pattern"].to_numpy()[idx], minlength=len(prep.patterns)).astype(float)
        d_o, d_e, _ = am.kappa_parts(Counts(prep.patterns, w[None, :]).tables, WEIGHTS["nominal"])
        rows.append({"period": start, "freq": freq, "n_images": len(idx),
                     "percent_agreement": float(unanimous[idx].mean()),
                     "cohen_kappa": float(am.coefficient(d_o, d_e)[0])})
    return pd.DataFrame(rows, columns=cols)


def reader_label_distribution(reads) -> pd.DataFrame:
    """Return per reader and label (7 classes in scale order, L3 .. R3, then 'cannot grade'): n,
    share of the reader's reads, the pooled share of all readers, and the difference (a reader's
    bias)."""
    prep = prepare_reads(reads)
    r = prep.reads[prep.reads["code"] >= -1]
    labels = list(ORDINAL_ORDER) + [CANNOT_GRADE]
    cols = ["reader", "label", "n", "share", "pooled_share", "difference"]
    if not len(r):
        return pd.DataFrame(columns=cols)
    reader = r["reader_code"].to_numpy()
    named = reader >= 0  # reads without a reader name are left out
    if not named.any():
        return pd.DataFrame(columns=cols)
    code = r["code"].to_numpy()[named]
    # Reader x label counts (cannot grade in the last column) by bincount: pd.crosstab of a
    # million reads took 0.3 s.
    t = np.bincount(reader[named] * (K + 1) + np.where(code >= 0, code, K), minlength=len(prep.readers) * (K + 1))
    t = t.reshape(len(prep.readers), K + 1)[:, np.r_[am.ORDINAL_INDEX, K]]
    present = t.sum(axis=1) > 0
    t, readers = t[present], prep.readers[present]
    pooled = t.sum(axis=0) / t.sum()
    out = pd.DataFrame({"reader": np.repeat(np.asarray(readers, dtype=object), K + 1), "label": labels * len(readers),
                        "n": t.ravel(), "share": (t / t.sum(axis=1, keepdims=True)).ravel(),
                        "pooled_share": np.tile(pooled, len(readers))})
    out["difference"] = out["share"] - out["pooled_share"]
    return out[cols]


def reading_time_summary(reads) -> pd.DataFrame:
    """Return per reader and 'all': n and the 5th, 25th, 50th, 75th, 95th percentile and mean of
    the reading time in seconds (reads with a duration only)."""
    prep = prepare_reads(reads)
    seconds = (pd.to_numeric(prep.reads["duration_ms"], errors="coerce") / 1000.0).to_numpy(dtype=float)
    timed = ~np.isnan(seconds)
    cols = ["reader", "n", "p05", "p25", "median", "p75", "p95", "mean"]
    if not timed.any():
        return pd.DataFrame(columns=cols)
    seconds, reader = seconds[timed], prep.reads["reader_code"].to_numpy()[timed]
    # Every timed read counts for its reader (if named) and for 'all', in name order ('all' among
    # the names). Reads grouped by a stable sort of the integer reader codes, then np.quantile per
    # group (a partition, no sort): pandas' groupby quantile of a million reads took 0.25 s.
    named = reader >= 0
    present = np.unique(reader[named])
    names = sorted(set(prep.readers[present]) | {"all"})
    order = np.argsort(reader, kind="stable")
    ends = np.searchsorted(reader[order], present, side="right")
    starts = np.searchsorted(reader[order], present, side="left")
    slices = {str(prep.readers[c]): seconds[order[a:b]] for c, a, b in zip(present, starts, ends)}
    slices["all"] = seconds
    rows = []
    for name in names:
        x = slices[name]
        rows.append([name, len(x), *np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95]), x.mean()])
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------------------------
# Published figures (the grading literature and the paper), to show beside ours


PUBLISHED_FIGURES = (
    # (scale, statistic, low, high, source, compares with our measure)
    ("House-Brackmann", "Cohen's kappa (global grade)", 0.54, 0.54, "Reitzen et al. 2009", "cohen_kappa"),
    ("House-Brackmann", "Fleiss' kappa", 0.21, 0.50, "later House-Brackmann reliability studies (range)", "fleiss_kappa"),
    ("Sunnybrook", "ICC", 0.89, 0.97, "published reliability studies (range)", None),
    ("FNGS 2.0", "ICC", 0.84, 0.97, "published reliability studies (range)", None),
    ("Song 2018 seven classes", "check-1 agreement", 0.97, 0.97, "Song et al. 2018 §2.3.3", "check1"),
    ("Song 2018 seven classes", "check-2 agreement", 0.93, 0.93, "Song et al. 2018 §2.3.3", "check2"),
    ("Song 2018 seven classes", "side agreement", 1.00, 1.00, "Song et al. 2018 §3", "side_agreement"),
    ("Song 2018 seven classes", "degree agreement", 0.971, 0.980, "Song et al. 2018 §3", "degree_agreement"),
    ("Song 2018 seven classes", "IDFNP accuracy", 0.975, 0.975, "Song et al. 2018 §3.1", "model_accuracy"),
    ("Song 2018 seven classes", "asymmetry method accuracy", 0.792, 0.987, "Song et al. 2018 §3.2",
     "asymmetry_accuracy"),
)


def published_figures() -> pd.DataFrame:
    """Return the published inter-rater and accuracy figures (scale, statistic, low, high, source,
    compares_with). ICCs rest on continuous scores and are context, not a like-for-like target."""
    return pd.DataFrame(PUBLISHED_FIGURES, columns=["scale", "statistic", "low", "high", "source", "compares_with"])




# --------------------------------------------------------------------------------------------
# Everything at once


@dataclass
class Audit:
    """All agreement results for one data state (compute once per data change).

    Holds the ReadAgreement, the per-class/movement/source/synthetic breakdowns, the Comparisons
    (reader pairs, readers vs final, asymmetry vs final, model runs), the check rates and the
    tables built from them. `settings` names the intervals' methods and resampling unit;
    `to_dict()` is the JSON summary, `tables()` the CSV tables.
    """
    settings: dict
    reads: ReadAgreement
    per_class: pd.DataFrame
    per_movement: pd.DataFrame
    per_source: pd.DataFrame
    per_synthetic: pd.DataFrame
    reader_pairs: list[Comparison]
    readers_vs_final: list[Comparison]
    asymmetry: list[Comparison]
    models: list[Comparison]
    checks: CheckRates
    over_time: pd.DataFrame
    label_distribution: pd.DataFrame
    reading_times: pd.DataFrame
    n_synthetic_images: int = 0

    @property
    def synthetic(self) -> bool:
        """True when any image read is synthetic (demo data): every output says so."""
        return self.n_synthetic_images > 0

    @property
    def runs_table(self) -> pd.DataFrame:
        """Table 9 layout: compare_runs(models)."""
        return compare_runs(self.models)

    @property
    def movement_table(self) -> pd.DataFrame:
        """Table 7 layout: movement_table(per_movement, asymmetry + models)."""
        return movement_table(self.per_movement, self.asymmetry + self.models)

    def headline(self) -> pd.DataFrame:
        """Return our measures beside the published figures (published_figures()): one row per
        published figure, and for the model's accuracy one row per run (never the best run)."""
        ours = {**self.reads.estimates(), "check1": self.checks.check1, "check2": self.checks.check2}
        if self.asymmetry:
            ours["asymmetry_accuracy"] = (self.asymmetry[0].name, self.asymmetry[0].agreement)
        rows = []
        for _, p in published_figures().iterrows():
            key = p["compares_with"]
            if key == "model_accuracy":
                found = [(c.name, c.agreement) for c in self.models] or [None]
            else:
                e = ours.get(key) if key else None
                found = [e if isinstance(e, tuple) or e is None else ("", e)]
            for hit in found:
                source, e = hit if hit else ("", None)
                rows.append({"published_scale": p["scale"], "statistic": p["statistic"], "published_low": p["low"],
                             "published_high": p["high"], "source": p["source"], "ours_from": source,
                             "ours": e.value if e else NAN, "ours_lo": e.ci_low if e else NAN,
                             "ours_hi": e.ci_high if e else NAN, "ours_n": e.n if e else 0,
                             "ours_subjects": e.subjects if e else 0,
                             "ours_note": (e.reason or "") if e else "not measured here"})
        return pd.DataFrame(rows)

    def comparison_table(self, comparisons: list[Comparison]) -> pd.DataFrame:
        """Return the comparisons as one table, a row each (Comparison.row())."""
        return pd.DataFrame([c.row() for c in comparisons])

    def tables(self) -> dict[str, pd.DataFrame]:
        """Return every table by name (what report_csv writes)."""
        r = self.reads
        t = {"settings": pd.DataFrame([{"setting": k, "value": str(v)} for k, v in self.settings.items()]),
             "headline": self.headline(), "overall": pd.DataFrame([{"n_reads": r.n_reads,
             "n_images": r.n_images, "n_double_read": r.n_double_read, "n_subjects": r.n_subjects,
             "n_cannot_grade": r.n_cannot_grade, "n_invalid_label": r.n_invalid_label,
             "n_readers": r.n_readers, "resampling_unit": r.unit, **flat(r.estimates())}]),
             "checks": pd.DataFrame([{"check": k, "rate": e.value, "rate_lo": e.ci_low, "rate_hi": e.ci_high,
                                      "n": e.n, "subjects": e.subjects, "reason": e.reason or ""}
                                     for k, e in (("check1", self.checks.check1), ("check2", self.checks.check2))]),
             "per_class": self.per_class, "per_movement": self.per_movement, "per_source": self.per_source,
             "per_synthetic": self.per_synthetic,
             "reader_pairs": self.comparison_table(self.reader_pairs),
             "readers_vs_final": self.comparison_table(self.readers_vs_final),
             "asymmetry_vs_final": self.comparison_table(self.asymmetry),
             "runs": self.runs_table, "movement_table": self.movement_table,
             "over_time": self.over_time, "label_distribution": self.label_distribution,
             "reading_times": self.reading_times, "published": published_figures()}
        for kind, comps in (("pair", self.reader_pairs), ("reader_vs_final", self.readers_vs_final),
                            ("asymmetry", self.asymmetry), ("model", self.models)):
            for c in comps:
                t[f"confusion {kind}: {c.name}"] = c.confusion.reset_index()
        for c in self.models:
            t[f"per_class model: {c.name}"] = c.per_class
            t[f"per_movement model: {c.name}"] = c.per_movement
        return t

    def to_dict(self) -> dict:
        """Return everything as one JSON-serialisable dict (NaN as null, reasons as text)."""
        def comparison(c: Comparison) -> dict:
            return {"name": c.name, "meta": c.meta, "n": c.n, "n_dropped": c.n_dropped, "subjects": c.n_subjects,
                    "resampling_unit": c.unit, **c.measures, "balanced_accuracy": c.balanced_accuracy,
                    "confusion": _matrix(c.confusion), "confusion_normalised": _matrix(c.confusion_normalised),
                    "per_class": c.per_class, "per_movement": c.per_movement}
        r = self.reads
        return _jsonable({
            "classes": list(CLASSES), "scale": list(ORDINAL_ORDER), "movements": list(MOVEMENTS),
            "settings": self.settings, "synthetic_images": self.n_synthetic_images,
            "counts": {"n_reads": r.n_reads, "n_images": r.n_images, "n_double_read": r.n_double_read,
                       "n_subjects": r.n_subjects, "n_cannot_grade": r.n_cannot_grade,
                       "n_invalid_label": r.n_invalid_label, "n_readers": r.n_readers},
            "agreement": r.estimates(),
            "checks": {"check1": self.checks.check1, "check2": self.checks.check2},
            "breakdowns": {"per_class": self.per_class, "per_movement": self.per_movement,
                           "per_source": self.per_source, "per_synthetic": self.per_synthetic},
            "reader_pairs": [comparison(c) for c in self.reader_pairs],
            "readers_vs_final": [comparison(c) for c in self.readers_vs_final],
            "asymmetry_vs_final": [comparison(c) for c in self.asymmetry],
            "models": [comparison(c) for c in self.models],
            "runs_table": self.runs_table, "movement_table": self.movement_table,
            "over_time": self.over_time, "label_distribution": self.label_distribution,
            "reading_times": self.reading_times, "headline": self.headline(),
            "published": published_figures(),
        })


def _matrix(frame: pd.DataFrame) -> dict:
    return {"rows_are": frame.index.name, "columns_are": frame.columns.name, "labels": [str(c) for c in frame.index],
            "values": frame.to_numpy().tolist()}


def _jsonable(x):
    """Recursively turn estimates, frames and numpy/pandas scalars into JSON-ready values."""
    if isinstance(x, Estimate):
        return x.to_dict()
    if isinstance(x, pd.DataFrame):
        return [_jsonable(rec) for rec in x.to_dict(orient="records")]
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (pd.Timestamp, pd.Period)):
        return str(x)
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return None if not math.isfinite(float(x)) else float(x)
    if x is None or x is pd.NaT or x is pd.NA:
        return None
    return x if isinstance(x, str) else str(x)


def _with_subjects(reads, subjects: pd.DataFrame | None):
    """The reads with a `subject` column filled from `subjects` (image_id, subject) where missing."""
    if subjects is None or not len(subjects) or reads is None or not len(reads) or "image_id" not in reads:
        return reads
    if "subject" in reads and reads["subject"].notna().all():  # the database's reads carry theirs
        return reads
    looked_up = _subject_lookup(reads["image_id"], subjects)
    given = reads["subject"].to_numpy(dtype=object) if "subject" in reads else np.full(len(reads), None, object)
    return reads.assign(subject=np.where(pd.isna(given), looked_up, given))


def audit(reads, finals: pd.DataFrame | None = None, ranges: pd.DataFrame | None = None,
          checks: pd.DataFrame | None = None, predictions=None, *, subjects: pd.DataFrame | None = None,
          n_boot: int = 1000, seed: int = 0, confidence: float = 0.95, time_freq: str = "auto") -> Audit:
    """Return the Audit of one data state: reads (effective reads), finals (image_id, final_label),
    ranges (image_id, range_class[, range_class_*, movement]), checks (image_id, check1, check2),
    predictions (see evaluate_runs) and subjects (image_id, subject: the resampling unit of every
    interval; reads may carry a `subject` column instead). Any input but reads may be None."""
    prep = prepare_reads(_with_subjects(reads, subjects))
    kw = {"n_boot": n_boot, "seed": seed, "confidence": confidence}
    image_subjects = prep.images[["image_id", "subject"]]
    everyone = image_subjects if subjects is None else pd.concat([subjects[["image_id", "subject"]], image_subjects])
    # The reader pairs (180 at bench/scale.py) are compared on a second thread while this one
    # computes the rest, and half their bootstrap on a third once their counts are ready: it is
    # mostly numpy's random draws and array products, which do not hold the GIL, so the threads
    # share the cores. BLAS keeps to one thread meanwhile: its products here are small (50,000 x
    # 49), and its own threads contending with ours doubled the reader pairs' CPU time on 2 cores.
    with threadpool_limits(1, "blas"), ThreadPoolExecutor(2) as pool:
        pairs = pool.submit(reader_pairs, prep, pool=pool, **kw)
        read = read_agreement(prep, **kw)
        over_time = agreement_over_time(prep, time_freq)
        synthetic = _group_key(prep.images, "synthetic") == "synthetic"
        return Audit(
            settings={**kw, "resampling_unit": prep.unit, "subjects": read.n_subjects,
                      "proportion_interval": PROPORTION_METHOD, "coefficient_interval": BOOTSTRAP_METHOD,
                      "ci": f"proportions: {PROPORTION_METHOD}; coefficients: {BOOTSTRAP_METHOD}",
                      "scale": " < ".join(ORDINAL_ORDER), "categories": K,
                      "time_freq": over_time["freq"].iloc[0] if len(over_time) else time_freq},
            reads=read, per_class=class_agreement(prep, **kw),
            per_movement=agreement_by(prep, "movement", **kw), per_source=agreement_by(prep, "source", **kw),
            per_synthetic=agreement_by(prep, "synthetic", **kw),
            readers_vs_final=readers_vs_final(prep, finals, **kw),
            asymmetry=asymmetry_vs_final(ranges, finals, prep, subjects=everyone, **kw),
            models=evaluate_runs(predictions, subjects=everyone, **kw),
            checks=check_rates(checks, subjects=everyone, **kw), over_time=over_time,
            label_distribution=reader_label_distribution(prep), reading_times=reading_time_summary(prep),
            reader_pairs=pairs.result(), n_synthetic_images=int(synthetic.sum()))


def summary(reads, finals: pd.DataFrame | None = None, ranges: pd.DataFrame | None = None,
            checks: pd.DataFrame | None = None, predictions=None, **options) -> dict:
    """Return audit(...).to_dict(): every number as one JSON-serialisable dict (for `--json`)."""
    return audit(reads, finals, ranges, checks, predictions, **options).to_dict()


def report_csv(result: Audit) -> str:
    """Return every table of the audit as one long CSV (table, row, column, value), text cells
    guarded against formula injection; a synthetic project's first row says SYNTHETIC."""
    parts = []
    if result.synthetic:
        parts.append(pd.DataFrame([{"table": "notice", "row": 0, "column": "notice",
                                    "value": f"SYNTHETIC: {result.n_synthetic_images} of the images read are "
                                             "synthetic demo data, not patients"}]))
    for name, frame in result.tables().items():
        if frame is None or not len(frame):
            continue
        f = frame.reset_index(drop=True)
        long = f.astype(object).stack(future_stack=True).reset_index()
        long.columns = ["row", "column", "value"]
        long.insert(0, "table", name)
        parts.append(long)
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["table", "row", "column", "value"])
    return safe_csv_frame(out).to_csv(index=False)
