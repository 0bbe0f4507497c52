"""Agreement among the reads of each image: the reads prepared once (codes, subjects, the clusters
of every interval), the whole-study measures with subject-cluster intervals, and the same by
movement, source or class. Plain pandas in, dataclasses and DataFrames out."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from labeling.vocabulary import MOVEMENTS
from labeling.agreement.estimates import (READ_MEASURES, READ_NAMES, Estimate, estimate_groups, flat, flat_columns,
                                          one_vs_rest_kappa, pattern_counts, proportion)
from labeling.agreement.measures import CLASSES, K, ORDINAL_ORDER
from labeling.agreement.stats import Bootstrap, Profiles, profiles_by_group

READ_COLUMNS = ("image_id", "reader", "label", "submitted_at", "duration_ms", "movement", "source",
                "synthetic", "subject")
CANNOT_GRADE = "cannot grade"
NAN = float("nan")


# --------------------------------------------------------------------------------------------
# Subjects: the clusters of every interval


def cluster_codes(subject, fallback) -> tuple[np.ndarray, int]:
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


def label_codes(labels: pd.Series) -> np.ndarray:
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
    df["code"] = label_codes(df["label"])
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
    images["cluster"], n_without = cluster_codes(images["subject"].to_numpy(dtype=object),
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


def group_key(images: pd.DataFrame, by: str) -> pd.Series:
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
    key = group_key(img, by)
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
