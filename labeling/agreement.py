"""Agreement audit (DESIGN §7, issue 5): reader vs reader, reader vs final, the asymmetry range
classifier vs final, and model vs neurologists, with chance-corrected measures and bootstrap CIs.

Plain pandas in, dataclasses and DataFrames out: no Streamlit, no SQL. Reported values come from
scikit-learn, statsmodels and krippendorff; docs/agreement.md defines every measure.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property

import krippendorff
import numpy as np
import pandas as pd
from statsmodels.stats.inter_rater import cohens_kappa, fleiss_kappa

from db.migrations import CLASSES, MOVEMENTS
from labeling.csvsafe import safe_csv_frame
from labeling.classes import side_and_degree

K = len(CLASSES)
# Side (0 none, 1 left, 2 right) and degree (0-3) of each class, in CLASSES order.
SIDES = np.array([{None: 0, "L": 1, "R": 2}[side_and_degree(c)[0]] for c in CLASSES])
DEGREES = np.array([side_and_degree(c)[1] for c in CLASSES])
READ_COLUMNS = ("image_id", "reader", "label", "submitted_at", "duration_ms", "movement", "source",
                "synthetic")
CANNOT_GRADE = "cannot grade"
NAN = float("nan")


def degree_weights() -> np.ndarray:
    """Return the 7x7 disagreement weights of the degree-weighted kappa (CLASSES order on both axes).

    0 on the diagonal; |degree difference| / 3 between two classes of the same side or between a
    class and N (degree 0); 1 between a left and a right class, whatever their degrees.
    """
    w = np.abs(DEGREES[:, None] - DEGREES[None, :]) / 3.0
    w[(SIDES[:, None] * SIDES[None, :] > 0) & (SIDES[:, None] != SIDES[None, :])] = 1.0
    return w


DEGREE_WEIGHTS = degree_weights()
_NOMINAL = 1.0 - np.eye(K)


# --------------------------------------------------------------------------------------------
# Estimates and the bootstrap


@dataclass(frozen=True)
class Estimate:
    """One measure: its value, a percentile-bootstrap CI, the number of images (or pairs) it rests
    on, and `reason`, which says why `value` is NaN (or notes a caveat on the CI)."""
    value: float
    ci_low: float = NAN
    ci_high: float = NAN
    n: int = 0
    reason: str | None = None

    def to_dict(self) -> dict:
        """Return the estimate as a JSON-ready dict (NaN becomes None)."""
        return {"value": _num(self.value), "ci_low": _num(self.ci_low), "ci_high": _num(self.ci_high),
                "n": int(self.n), "reason": self.reason}


@dataclass(frozen=True)
class Bootstrap:
    """Bootstrap settings: resamples of images with replacement, seeded, percentile interval."""
    n_boot: int = 1000
    seed: int = 0
    confidence: float = 0.95


def _num(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def _ratio(num, den):
    num = np.asarray(num, float)
    den = np.asarray(den, float)
    ok = den > 0
    return np.where(ok, num / np.where(ok, den, 1.0), np.nan)


def _resample(weights: np.ndarray, boot: Bootstrap) -> np.ndarray | None:
    """Return (n_boot, U) image counts per pattern: resampling the images with replacement."""
    total = int(weights.sum())
    if boot.n_boot <= 0 or total == 0:
        return None
    rng = np.random.default_rng(boot.seed)
    return rng.multinomial(total, weights / total, size=boot.n_boot).astype(float)


def _percentile_ci(reps: np.ndarray, boot: Bootstrap) -> tuple[float, float, str | None]:
    finite = reps[np.isfinite(reps)]
    bad = len(reps) - len(finite)
    if len(finite) < 0.5 * len(reps):
        return NAN, NAN, f"no CI: the measure is undefined in {bad} of {len(reps)} resamples"
    tail = (1.0 - boot.confidence) / 2.0
    lo, hi = np.quantile(finite, [tail, 1.0 - tail])
    return float(lo), float(hi), (f"{bad} of {len(reps)} resamples undefined; CI from the rest" if bad else None)


def _percentile_cis(reps: np.ndarray, boot: Bootstrap) -> list[tuple[float, float, str | None]]:
    """_percentile_ci of each row of reps (groups x resamples); the rows without an undefined
    replicate in one np.quantile call, which computes each row as the 1-D call would."""
    out: list = [None] * len(reps)
    finite = np.isfinite(reps).all(axis=1)
    if finite.any():
        tail = (1.0 - boot.confidence) / 2.0
        lo, hi = np.quantile(reps[finite], [tail, 1.0 - tail], axis=1)
        for row, low, high in zip(np.flatnonzero(finite), lo, hi):
            out[row] = (float(low), float(high), None)
    for row in np.flatnonzero(~finite):
        out[row] = _percentile_ci(reps[row], boot)
    return out


# --------------------------------------------------------------------------------------------
# Patterns: an image's graded reads reduced to (first label, second label, count per class).
# Every measure depends on the images only through how many images share each pattern, so a
# bootstrap resample is a multinomial draw of pattern counts: exact, and fast at 100,000 images.

_FIRST, _SECOND, _COUNTS = 0, 1, slice(2, 2 + K)


def _cell_patterns() -> np.ndarray:
    """Patterns of the 49 (a, b) label pairs, index a * 7 + b: for two-labeller comparisons."""
    a, b = np.divmod(np.arange(K * K), K)
    counts = np.zeros((K * K, K), int)
    np.add.at(counts, (np.arange(K * K), a), 1)
    np.add.at(counts, (np.arange(K * K), b), 1)
    return np.column_stack([a, b, counts])


CELL_PATTERNS = _cell_patterns()


def _pair_tables(P: np.ndarray, W: np.ndarray) -> np.ndarray:
    """(B, 7, 7) tables of first read (rows) vs second read (columns)."""
    if P is CELL_PATTERNS:  # pattern a * 7 + b is the cell (a, b): the counts are the tables
        return W.reshape(-1, K, K)
    idx = np.flatnonzero(P[:, _SECOND] >= 0)
    onehot = np.zeros((len(P), K * K))
    onehot[idx, P[idx, _FIRST] * K + P[idx, _SECOND]] = 1.0
    return (W @ onehot).reshape(-1, K, K)


def _chance(T: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (n, n or 1 where n = 0, expected proportions from the margins) of each table in T."""
    rows, cols = T.sum(2), T.sum(1)
    n = rows.sum(1)  # counts are whole numbers: any order of summing gives the same n
    safe = np.where(n > 0, n, 1.0)
    return n, safe, rows[:, :, None] * cols[:, None, :] / (safe ** 2)[:, None, None]


def _kappa_reps(T: np.ndarray, weights: np.ndarray, chance=None) -> np.ndarray:
    """Weighted Cohen's kappa of each table in T, 1 - sum(w*O) / sum(w*E), w disagreement weights
    (statsmodels' definition; w = 1 - I gives the unweighted kappa). Bootstrap replicates only.
    `chance` is _chance(T) when the caller has it already."""
    n, safe, expected = _chance(T) if chance is None else chance
    observed = (T * weights).sum((1, 2)) / safe
    kappa = 1.0 - _ratio(observed, (expected * weights).sum((1, 2)))
    return np.where(n > 0, kappa, np.nan)


def _library_kappa(table: np.ndarray, weights: np.ndarray | None) -> float:
    return float(cohens_kappa(table, weights=weights, return_results=False))


def _repeat_rows(P: np.ndarray, w: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The per-image count table (one row per image) that the libraries expect."""
    return np.repeat(P[mask][:, _COUNTS], w[mask].astype(int), axis=0)


class _Counts:
    """Images per pattern, W (B, U) over the patterns P (U, 9); first/second-read tables and their
    chance agreement cached (both Cohen's kappas use them)."""

    def __init__(self, P: np.ndarray, W: np.ndarray):
        self.P, self.W = P, W

    @cached_property
    def tables(self) -> np.ndarray:
        return _pair_tables(self.P, self.W)

    @cached_property
    def chance(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _chance(self.tables)


@dataclass(frozen=True)
class _Measure:
    name: str
    # _Counts -> (values, n): the measure and the number of units it rests on, per row of W.
    replicate: Callable[[_Counts], tuple[np.ndarray, np.ndarray]]
    empty: str
    undefined: str = "undefined"
    # (P, w) -> value from the library for the observed counts; None for plain proportions.
    library: Callable[[np.ndarray, np.ndarray], float] | None = None


def _proportion_measure(name, eligible, agree, empty) -> _Measure:
    def replicate(s: _Counts):
        e, a = eligible(s.P), agree(s.P)
        n = s.W @ e
        return _ratio(s.W @ (e & a), n), n
    return _Measure(name, replicate, empty)


def _counts(P):
    return P[:, _COUNTS]


def _unanimous(P):
    C = _counts(P)
    return C.max(1) == C.sum(1)


def _double(P):
    return _counts(P).sum(1) >= 2


def _lateral(P):
    C = _counts(P)
    return C[:, SIDES > 0].sum(1) >= 2


def _same_side(P):
    C = _counts(P)
    return (C[:, SIDES == 1].sum(1) == 0) | (C[:, SIDES == 2].sum(1) == 0)


def _same_degree(P):
    C = _counts(P)
    per_degree = np.stack([C[:, DEGREES == d].sum(1) for d in range(4)], 1)
    return per_degree.max(1) == C.sum(1)


_NO_DOUBLE = "no image has two graded reads"
PERCENT = _proportion_measure("percent_agreement", _double, _unanimous, _NO_DOUBLE)
SIDE = _proportion_measure("side_agreement", _lateral, _same_side,
                           "no image has two reads naming a side (every pair involves N)")
DEGREE = _proportion_measure("degree_agreement", _double, _same_degree, _NO_DOUBLE)

_ONE_CLASS = "undefined: the reads use a single class, so chance agreement is 1"


def _cohen_measure(name: str, weights: np.ndarray | None) -> _Measure:
    w = _NOMINAL if weights is None else weights

    def replicate(s: _Counts):
        return _kappa_reps(s.tables, w, s.chance), s.chance[0]

    def library(P, w0):
        return _library_kappa(_pair_tables(P, w0[None, :])[0], weights)

    return _Measure(name, replicate, _NO_DOUBLE, _ONE_CLASS, library)


COHEN = _cohen_measure("cohen_kappa", None)
COHEN_WEIGHTED = _cohen_measure("cohen_kappa_weighted", DEGREE_WEIGHTS)


def _fleiss_measure(m_star: int) -> _Measure:
    """Fleiss' kappa over the images with exactly m_star graded reads (it needs a fixed count)."""
    def replicate(s: _Counts):
        P, W = s.P, s.W
        C = _counts(P)
        m = C.sum(1)
        elig = m == m_star
        n = W @ elig
        p = _ratio(W @ (C * elig[:, None]), (n * m_star)[:, None])
        per_image = ((C ** 2).sum(1) - m) / (m_star * (m_star - 1)) * elig
        p_bar = _ratio(W @ per_image, n)
        p_e = (p ** 2).sum(1)
        return _ratio(p_bar - p_e, 1.0 - p_e), n

    def library(P, w0):
        return float(fleiss_kappa(_repeat_rows(P, w0, _counts(P).sum(1) == m_star), method="fleiss"))

    return _Measure("fleiss_kappa", replicate, f"no image has {m_star} graded reads", _ONE_CLASS, library)


def _coincidences(P: np.ndarray) -> np.ndarray:
    """Per-pattern contribution to Krippendorff's coincidence matrix, flattened (U, 49)."""
    C = _counts(P).astype(float)
    m = C.sum(1)
    f = C[:, :, None] * C[:, None, :] - C[:, :, None] * np.eye(K)
    f /= np.maximum(m - 1, 1)[:, None, None]
    f[m < 2] = 0.0
    return f.reshape(len(P), K * K)


def _alpha_replicate(s: _Counts):
    P, W = s.P, s.W
    o = (W @ _coincidences(P)).reshape(-1, K, K)
    n_v = o.sum(1)
    n = n_v.sum(1)
    e = (n_v[:, :, None] * n_v[:, None, :] - n_v[:, :, None] * np.eye(K)) / np.where(n > 1, n - 1, 1)[:, None, None]
    alpha = 1.0 - _ratio((o * _NOMINAL).sum((1, 2)), (e * _NOMINAL).sum((1, 2)))
    return alpha, W @ _double(P)


def _alpha_library(P, w0):
    rows = _repeat_rows(P, w0, _double(P))
    return float(krippendorff.alpha(value_counts=rows, level_of_measurement="nominal"))


ALPHA = _Measure("krippendorff_alpha", _alpha_replicate, _NO_DOUBLE, _ONE_CLASS, _alpha_library)
PAIR_MEASURES = (PERCENT, SIDE, DEGREE, COHEN, COHEN_WEIGHTED)


def _estimates(P: np.ndarray, w0: np.ndarray, measures, boot: Bootstrap) -> dict[str, Estimate]:
    """Every measure for one group of images given as pattern counts w0, sharing one resample."""
    return _estimates_by_group(P, np.asarray(w0, float)[None, :], measures, boot)[0]


# Replicate rows computed at once by _estimates_by_group: 50 groups of 1000 resamples of the 49
# cells of a comparison keep each pass's arrays near 20 MB.
_BATCH_ROWS = 50_000


def _estimates_by_group(P: np.ndarray, W0: np.ndarray, measures, boot: Bootstrap) -> list[dict[str, Estimate]]:
    """_estimates of each row of W0 (groups x patterns), computed together.

    Every group draws its resample from its own generator seeded with boot.seed, exactly as if it
    were estimated alone, so a group's CI does not depend on which other groups exist. The
    replicates of many groups then go through each measure in one vectorised pass (one pass per
    group took about 1 s over the 180 reader pairs of bench/scale.py; the draws are what remains).
    """
    W0 = np.asarray(W0, float)
    counts = _Counts(P, W0)
    observed = {m.name: m.replicate(counts) for m in measures}
    cis: dict[str, list] = {m.name: [None] * len(W0) for m in measures}
    per_batch = max(1, _BATCH_ROWS // max(boot.n_boot, 1))
    for start in range(0, len(W0), per_batch):
        groups = range(start, min(start + per_batch, len(W0)))
        draws = {g: _resample(W0[g], boot) for g in groups}
        drawn = [g for g in groups if draws[g] is not None]
        if not drawn:
            continue
        resampled = _Counts(P, np.concatenate([draws[g] for g in drawn]))
        for m in measures:
            for g, ci in zip(drawn, _percentile_cis(m.replicate(resampled)[0].reshape(len(drawn), -1), boot)):
                cis[m.name][g] = ci
    out = []
    for g, w0 in enumerate(W0):
        est = {}
        for m in measures:
            values, ns = observed[m.name]
            v0, n0 = float(values[g]), int(round(ns[g]))
            if n0 == 0:
                est[m.name] = Estimate(NAN, n=0, reason=m.empty)
                continue
            if not math.isfinite(v0):
                est[m.name] = Estimate(NAN, n=n0, reason=m.undefined)
                continue
            value = m.library(P, w0) if m.library else v0
            lo, hi, note = cis[m.name][g] or (NAN, NAN, None)
            est[m.name] = Estimate(value, lo, hi, n0, note)
        out.append(est)
    return out


def _flat(estimates: Mapping[str, Estimate]) -> dict:
    """One table row: value, _lo, _hi, _n per measure, and the reasons joined in `notes`."""
    row, notes = {}, []
    for name, e in estimates.items():
        row.update({name: e.value, f"{name}_lo": e.ci_low, f"{name}_hi": e.ci_high, f"{name}_n": e.n})
        if e.reason:
            notes.append(f"{name}: {e.reason}")
    row["notes"] = "; ".join(notes)
    return row


# --------------------------------------------------------------------------------------------
# Reads


@dataclass(frozen=True)
class PreparedReads:
    """The effective reads coded once; every read-based function accepts this or a reads DataFrame.

    reads: the input rows sorted by image then time, plus `code` (0-6 class index, -1 cannot
    grade, -2 not a class), `at` (UTC time), `image` (int), `rank` (order among the image's
    graded reads, -1 if not graded) and `reader_code` (index into `readers`, the reader names in
    sorted order; -1 for a read without a reader name). images: one row per image with image_id,
    movement, source, synthetic, n_reads, n_graded, first and second (codes of the first two
    graded reads, -1 if none), second_at and `pattern` (row in `patterns`, -1 for images with
    fewer than two graded reads). patterns: the distinct (first, second, counts per class) rows.
    """
    reads: pd.DataFrame
    images: pd.DataFrame
    patterns: np.ndarray
    n_cannot_grade: int
    n_invalid_label: int
    readers: np.ndarray
    # Multi-rater estimates by (pattern weights, Bootstrap), see _multi_rater.
    estimated: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def pattern_weights(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Return how many (masked) images have each pattern."""
        pat = self.images["pattern"].to_numpy()
        keep = pat >= 0 if mask is None else (pat >= 0) & mask
        return np.bincount(pat[keep], minlength=len(self.patterns)).astype(float)


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
    images = df.iloc[starts][["image_id", "movement", "source", "synthetic"]].reset_index(drop=True)
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
                         np.asarray(readers, dtype=object))


@dataclass(frozen=True)
class ReadAgreement:
    """Reader agreement over all images read at least twice (graded reads only).

    percent_agreement: images whose graded reads all coincide; side/degree_agreement: the same on
    side (images with two reads naming a side) and on degree; cohen_kappa(_weighted): first vs
    second graded read; fleiss_kappa: images with the most common number of graded reads;
    krippendorff_alpha: nominal, every image with two or more graded reads.
    """
    n_reads: int
    n_images: int
    n_double_read: int
    n_cannot_grade: int
    n_invalid_label: int
    n_readers: int
    percent_agreement: Estimate
    side_agreement: Estimate
    degree_agreement: Estimate
    cohen_kappa: Estimate
    cohen_kappa_weighted: Estimate
    fleiss_kappa: Estimate
    krippendorff_alpha: Estimate

    def estimates(self) -> dict[str, Estimate]:
        """Return the measures by name."""
        return {m: getattr(self, m) for m in MEASURE_NAMES}


MEASURE_NAMES = ("percent_agreement", "side_agreement", "degree_agreement", "cohen_kappa",
                 "cohen_kappa_weighted", "fleiss_kappa", "krippendorff_alpha")


def _multi_rater(prep: PreparedReads, mask: np.ndarray | None, boot: Bootstrap) -> dict[str, Estimate]:
    w0 = prep.pattern_weights(mask)
    # The same images give the same estimates: a project with one source (or no synthetic image)
    # has agreement_by groups holding every image, which read_agreement has estimated already.
    key = (w0.tobytes(), boot)
    if key not in prep.estimated:
        prep.estimated[key] = _multi_rater_estimates(prep.patterns, w0, boot)
    return dict(prep.estimated[key])


def _multi_rater_estimates(P: np.ndarray, w0: np.ndarray, boot: Bootstrap) -> dict[str, Estimate]:
    """Every read-agreement measure of the images counted in w0 (Fleiss' kappa on the most common
    number of graded reads)."""
    m = _counts(P).sum(1) if len(P) else np.zeros(0, int)
    per_m = np.bincount(m.astype(int), weights=w0, minlength=3) if len(P) else np.zeros(3)
    m_star = int(np.argmax(per_m[2:]) + 2) if per_m[2:].sum() > 0 else 2
    est = _estimates(P, w0, PAIR_MEASURES + (_fleiss_measure(m_star), ALPHA), boot)
    left_out = int(per_m.sum() - per_m[m_star])
    f = est["fleiss_kappa"]
    if left_out and math.isfinite(f.value):
        note = f"images with {m_star} graded reads only; {left_out} images with another count left out"
        est["fleiss_kappa"] = Estimate(f.value, f.ci_low, f.ci_high, f.n, "; ".join(filter(None, [note, f.reason])))
    return est


def read_agreement(reads, *, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95) -> ReadAgreement:
    """Return the overall reader agreement (ReadAgreement) of the effective reads."""
    prep = prepare_reads(reads)
    est = _multi_rater(prep, None, Bootstrap(n_boot, seed, confidence))
    img = prep.images
    return ReadAgreement(
        n_reads=len(prep.reads), n_images=len(img), n_double_read=int((img["pattern"] >= 0).sum()),
        n_cannot_grade=prep.n_cannot_grade, n_invalid_label=prep.n_invalid_label,
        n_readers=int(prep.reads["reader"].nunique()), **est)


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
    n_double_read and every read-agreement measure with _lo, _hi, _n columns and `notes`."""
    prep = prepare_reads(reads)
    boot = Bootstrap(n_boot, seed, confidence)
    img = prep.images
    key = _group_key(img, by)
    rows = []
    for g in _ordered_groups(key, by):
        mask = (key == g).to_numpy()
        rows.append({by: g, "n_images": int(mask.sum()),
                     "n_double_read": int((mask & (img["pattern"].to_numpy() >= 0)).sum()),
                     **_flat(_multi_rater(prep, mask, boot))})
    return pd.DataFrame(rows, columns=[by, "n_images", "n_double_read", *_flat_columns(MEASURE_NAMES)])


def _flat_columns(names) -> list[str]:
    return [c for n in names for c in (n, f"{n}_lo", f"{n}_hi", f"{n}_n")] + ["notes"]


def _class_measures(c: int) -> tuple[_Measure, _Measure]:
    def specific(s: _Counts):
        C = _counts(s.P)
        cc = C[:, c]
        return _ratio(s.W @ (cc * (cc - 1)), s.W @ (cc * (C.sum(1) - 1))), s.W @ (cc > 0)

    def one_vs_rest_tables(T):
        a, row, col, n = T[:, c, c], T[:, c, :].sum(1), T[:, :, c].sum(1), T.sum((1, 2))
        return np.stack([np.stack([a, row - a], -1), np.stack([col - a, n - row - col + a], -1)], 1)

    def kappa(s: _Counts):
        T = one_vs_rest_tables(s.tables)
        return _kappa_reps(T, 1.0 - np.eye(2)), T.sum((1, 2))

    def kappa_library(P, w0):
        return _library_kappa(one_vs_rest_tables(_pair_tables(P, w0[None, :]))[0], None)

    name = CLASSES[c]
    return (_Measure("specific_agreement", specific, f"no double-read image has a read of {name}"),
            _Measure("kappa_one_vs_rest", kappa, _NO_DOUBLE,
                     f"undefined: {name} is used by neither or by every first/second read", kappa_library))


def class_agreement(reads, *, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95) -> pd.DataFrame:
    """Return one row per class: n_reads (graded reads of that class on double-read images),
    specific agreement (share of its reads whose partner reads agree) and the one-vs-rest Cohen's
    kappa of first vs second read, each with _lo, _hi, _n, and `notes`."""
    prep = prepare_reads(reads)
    boot = Bootstrap(n_boot, seed, confidence)
    P, w0 = prep.patterns, prep.pattern_weights()
    n_reads = (w0 @ _counts(P)) if len(P) else np.zeros(K)
    rows = [{"class": name, "n_reads": int(n_reads[c]), **_flat(_estimates(P, w0, _class_measures(c), boot))}
            for c, name in enumerate(CLASSES)]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Two labellers on the same images: reader vs reader, reader vs final, range class vs final,
# model vs truth. Rows of every confusion matrix are the reference.


@dataclass(frozen=True)
class Comparison:
    """One labeller against a reference on the same images.

    agreement is accuracy when the reference is ground truth; confusion holds counts with the
    reference in rows and all 7 classes on both axes; per_class has support, predicted,
    precision and sensitivity (NaN where undefined); per_movement has n, agreement and its CI.
    """
    name: str
    n: int
    n_dropped: int
    agreement: Estimate
    side_agreement: Estimate
    degree_agreement: Estimate
    cohen_kappa: Estimate
    cohen_kappa_weighted: Estimate
    confusion: pd.DataFrame
    per_class: pd.DataFrame
    per_movement: pd.DataFrame
    meta: dict = field(default_factory=dict)

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
        est = {"agreement": self.agreement, "side_agreement": self.side_agreement,
               "degree_agreement": self.degree_agreement, "cohen_kappa": self.cohen_kappa,
               "cohen_kappa_weighted": self.cohen_kappa_weighted}
        return {"name": self.name, **self.meta, "n": self.n, "n_dropped": self.n_dropped, **_flat(est),
                "balanced_accuracy": self.balanced_accuracy}


def normalise_rows(confusion: pd.DataFrame) -> pd.DataFrame:
    """Return `confusion` with each row divided by its total (NaN for an empty row)."""
    totals = confusion.sum(axis=1)
    return confusion.div(totals.where(totals > 0), axis=0)


_CLASS_NAMES = pd.Index(CLASSES)  # built once, not twice per comparison (180 reader pairs at bench/scale.py)


def _confusion_frame(cells: np.ndarray, rows_name: str, cols_name: str) -> pd.DataFrame:
    return pd.DataFrame(cells.reshape(K, K).astype(int), index=_CLASS_NAMES.rename(rows_name),
                        columns=_CLASS_NAMES.rename(cols_name))


def _group_codes(groups) -> tuple[np.ndarray, list[str]]:
    """Return (code per row, name per code) of a grouping sequence; missing values are 'unknown'."""
    if isinstance(groups, pd.Categorical):  # its codes are the factorization already
        codes, values = groups.codes.astype(np.int64), list(groups.categories) + [None]
        codes[codes < 0] = len(values) - 1
    else:
        codes, values = pd.factorize(np.asarray(groups, dtype=object), use_na_sentinel=False)
    return codes, ["unknown" if pd.isna(v) else str(v) for v in values]


def _proportions_table(values: list[str], n: np.ndarray, k: np.ndarray, boot: Bootstrap, name: str,
                       order) -> pd.DataFrame:
    """n, share of hits and its bootstrap CI per group (resampling images within each group), from
    the number of rows `n` and of hits `k` per group named in `values`; empty groups left out."""
    cols = [name, "n", "agreement", "agreement_lo", "agreement_hi"]
    if not n.sum():
        return pd.DataFrame(columns=cols)
    rank = {g: i for i, g in enumerate(order)}
    keep = sorted((i for i in range(len(values)) if n[i] > 0),
                  key=lambda i: (rank.get(values[i], len(rank)), values[i]))
    n, k, values = n[keep], k[keep], [values[i] for i in keep]
    p = k / n
    lo = hi = np.full(len(n), NAN)
    if boot.n_boot > 0:
        reps = np.random.default_rng(boot.seed).binomial(n, p, size=(boot.n_boot, len(n))) / n
        tail = (1 - boot.confidence) / 2
        lo, hi = np.quantile(reps, [tail, 1 - tail], axis=0)
    return pd.DataFrame({name: values, "n": n, "agreement": p, "agreement_lo": lo, "agreement_hi": hi})


def _proportions_by(groups, hits: np.ndarray, boot: Bootstrap, name: str, order) -> pd.DataFrame:
    """n, share of hits and its bootstrap CI per group (resampling images within each group)."""
    codes, values = _group_codes(groups)
    n = np.bincount(codes, minlength=len(values))
    return _proportions_table(values, n, np.bincount(codes, weights=hits, minlength=len(values)), boot, name, order)


@dataclass
class _PairedCounts:
    """What Comparisons are computed from, per group (a reader pair, a reader, a run): the 49
    reference-by-label cell counts, the rows dropped (a side not a class), and per movement the
    number of rows and of rows where both sides agree. Filled by add(), one batch of rows at a time."""
    n_groups: int
    movements: list[str]

    def __post_init__(self):
        m = len(self.movements)
        self.cells = np.zeros((self.n_groups, K * K), dtype=np.int64)
        self.dropped = np.zeros(self.n_groups, dtype=np.int64)
        self.movement_n = np.zeros((self.n_groups, m), dtype=np.int64)
        self.movement_hits = np.zeros((self.n_groups, m))

    def add(self, group: np.ndarray, ref: np.ndarray, lab: np.ndarray, movement: np.ndarray) -> None:
        """Count rows: group index, reference and label codes (_codes), movement code (_group_codes)."""
        valid = (ref >= 0) & (lab >= 0)
        g, r, lab = group[valid], ref[valid], lab[valid]
        m = len(self.movements)
        self.cells += np.bincount(g * K * K + r * K + lab, minlength=self.n_groups * K * K).reshape(self.cells.shape)
        self.dropped += np.bincount(group[~valid], minlength=self.n_groups)
        key = g * m + movement[valid]
        self.movement_n += np.bincount(key, minlength=self.n_groups * m).reshape(self.movement_n.shape)
        self.movement_hits += np.bincount(key, weights=(r == lab).astype(float),
                                          minlength=self.n_groups * m).reshape(self.movement_hits.shape)

    def comparisons(self, boot: Bootstrap, names: list[str], axes: list[tuple[str, str]],
                    metas: list[dict]) -> list[Comparison]:
        """Return one Comparison per group (names, confusion axis names and meta per group)."""
        estimates = _estimates_by_group(CELL_PATTERNS, self.cells, PAIR_MEASURES, boot)
        per_movement = [_proportions_table(self.movements, self.movement_n[g], self.movement_hits[g], boot,
                                           "movement", MOVEMENTS) for g in range(len(estimates))]
        out = []
        for g, est in enumerate(estimates):
            table = self.cells[g].reshape(K, K)
            # Precision and sensitivity from the 7 x 7 table: scikit-learn's precision_recall_fscore_support
            # (zero_division=nan) gives the same numbers (tests/test_agreement.py checks), but its input
            # validation cost 16 ms per call, 3 s over the 190 reader pairs of bench/scale.py.
            hits, predicted, support = np.diag(table).astype(float), table.sum(0), table.sum(1)
            precision = np.divide(hits, predicted, out=np.full(K, NAN), where=predicted > 0)
            sensitivity = np.divide(hits, support, out=np.full(K, NAN), where=support > 0)
            per_class = pd.DataFrame({"class": _CLASS_NAMES, "support": support, "predicted": predicted,
                                      "precision": precision, "sensitivity": sensitivity})
            out.append(Comparison(names[g], int(table.sum()), int(self.dropped[g]), est["percent_agreement"],
                                  est["side_agreement"], est["degree_agreement"], est["cohen_kappa"],
                                  est["cohen_kappa_weighted"], _confusion_frame(self.cells[g], *axes[g]),
                                  per_class, per_movement[g], metas[g]))
        return out


def _compare_codes(name: str, ref: np.ndarray, lab: np.ndarray, movement, boot: Bootstrap,
                   names: tuple[str, str], meta: dict | None = None) -> Comparison:
    mv, movements = _group_codes(np.full(len(ref), None, dtype=object) if movement is None else movement)
    counts = _PairedCounts(1, movements)
    counts.add(np.zeros(len(ref), dtype=np.int64), ref, lab, mv)
    return counts.comparisons(boot, [name], [names], [meta or {}])[0]


def compare_labels(reference, labels, *, movement=None, name: str = "labels", names=("reference", "labels"),
                   n_boot: int = 1000, seed: int = 0, confidence: float = 0.95) -> Comparison:
    """Return the Comparison of `labels` against `reference` (two equal-length label sequences;
    None/NaN or non-class entries are dropped and counted in n_dropped)."""
    ref = _codes(pd.Series(list(reference), dtype=object))
    lab = _codes(pd.Series(list(labels), dtype=object))
    mv = None if movement is None else list(movement)
    return _compare_codes(name, ref, lab, mv, Bootstrap(n_boot, seed, confidence), tuple(names))


def confusion_frame(reference, labels, *, names=("reference", "labels")) -> pd.DataFrame:
    """Return the confusion counts (reference in rows) with all 7 classes on both axes."""
    return compare_labels(reference, labels, names=names, n_boot=0).confusion


def reader_pairs(reads, *, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95) -> list[Comparison]:
    """Return one Comparison per pair of readers who read the same images (reader A in rows;
    a reader paired with themself is intra-reader agreement, first read in rows). Reads without a
    reader name are left out."""
    prep = prepare_reads(reads)
    g = prep.reads.loc[prep.reads["code"] >= 0, ["image", "reader_code", "code"]]  # by image, then rank
    image, reader, code = g["image"].to_numpy(), g["reader_code"].to_numpy(), g["code"].to_numpy()
    names = prep.readers
    n = max(len(names), 1)
    movement, movements = _group_codes(pd.Categorical(prep.images["movement"].to_numpy(dtype=object)))
    counts = _PairedCounts(n * n, movements)
    # Row i with row i + d of the same image, for every offset d: each pair of an image's reads
    # once, earlier read first, counted per reader pair (key reader_a * n + reader_b, reader_a <=
    # reader_b) without listing the pairs (45 per image at 10 reads: 4.5 million at bench/scale.py).
    for d in range(1, len(image)):
        i = np.flatnonzero(image[:-d] == image[d:])
        if not len(i):
            break  # no image has more than d graded reads
        i = i[(reader[i] >= 0) & (reader[i + d] >= 0)]
        ra, rb = reader[i], reader[i + d]
        swap = ra > rb
        counts.add(np.minimum(ra, rb) * n + np.maximum(ra, rb), np.where(swap, code[i + d], code[i]),
                   np.where(swap, code[i], code[i + d]), movement[image[i]])
    keys = np.flatnonzero(counts.cells.sum(1))
    pairs = [(names[k // n], names[k % n]) for k in keys]
    counts.cells, counts.dropped = counts.cells[keys], counts.dropped[keys]
    counts.movement_n, counts.movement_hits = counts.movement_n[keys], counts.movement_hits[keys]
    return counts.comparisons(Bootstrap(n_boot, seed, confidence), [f"{a} vs {b}" for a, b in pairs],
                              [(f"reader {a}", f"reader {b}" + (" (second read)" if a == b else "")) for a, b in pairs],
                              [{"reader_a": a, "reader_b": b} for a, b in pairs])


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
    counts = _PairedCounts(len(names), movements)
    counts.add(reader[keep], _codes(r["final_label"].astype(object))[keep], r["code"].to_numpy()[keep],
               movement[keep])
    names = [str(name) for name in names]
    return counts.comparisons(Bootstrap(n_boot, seed, confidence), names,
                              [("final", f"reader {name}") for name in names], [{"reader": name} for name in names])


def _image_movements(frames) -> pd.Series:
    """image_id -> movement from the first frame that has both columns."""
    parts = [f[["image_id", "movement"]] for f in frames
             if f is not None and {"image_id", "movement"} <= set(f.columns)]
    if not parts:
        return pd.Series(dtype=object)
    both = pd.concat(parts).dropna().drop_duplicates("image_id")
    return pd.Series(both["movement"].to_numpy(), index=both["image_id"].to_numpy())


def asymmetry_vs_final(ranges: pd.DataFrame | None, finals: pd.DataFrame | None, reads=None, *,
                       n_boot: int = 1000, seed: int = 0, confidence: float = 0.95) -> list[Comparison]:
    """Return one Comparison per `range_class*` column of `ranges` (image_id, range_class, ...)
    against the final label: the asymmetry method's accuracy (paper Table 7). Movement is taken
    from `ranges`, else `finals`, else the reads."""
    if ranges is None or finals is None or not len(ranges) or not len(finals):
        return []
    boot = Bootstrap(n_boot, seed, confidence)
    m = ranges.merge(finals[["image_id", "final_label"]].drop_duplicates("image_id", keep="last"), on="image_id")
    images = prepare_reads(reads).images if reads is not None else None
    movement = m["image_id"].map(_image_movements([ranges, finals, images]))
    final = _codes(m["final_label"].astype(object))
    return [_compare_codes(f"asymmetry {col}", final, _codes(m[col].astype(object)), movement, boot,
                           ("final", col), {"column": col})
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


def evaluate_runs(predictions, *, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95) -> list[Comparison]:
    """Return one Comparison per trainer run: true `label` (rows) vs `predicted`, with accuracy,
    per-class precision and sensitivity (Tables 5-6), the confusion matrix (normalise with
    `.confusion_normalised`, Figure 4) and per-movement accuracy. `predictions` is a DataFrame with
    label, predicted, optional movement, run and arch columns, or a mapping run -> DataFrame."""
    boot = Bootstrap(n_boot, seed, confidence)
    out = []
    for run, arch, df in _prediction_runs(predictions):
        mv = df["movement"].reset_index(drop=True) if "movement" in df else None
        out.append(_compare_codes(run, _codes(df["label"].astype(object).reset_index(drop=True)),
                                  _codes(df["predicted"].astype(object).reset_index(drop=True)), mv, boot,
                                  ("true", "predicted"), {"arch": arch}))
    return out


def compare_runs(evaluations: list[Comparison]) -> pd.DataFrame:
    """Return runs side by side, best accuracy first (paper Table 9): run, arch, n, accuracy with
    CI, Cohen's kappa, balanced accuracy and macro precision."""
    rows = [{"run": c.name, "arch": c.meta.get("arch"), "n": c.n, "accuracy": c.agreement.value,
             "accuracy_lo": c.agreement.ci_low, "accuracy_hi": c.agreement.ci_high,
             "cohen_kappa": c.cohen_kappa.value, "balanced_accuracy": c.balanced_accuracy,
             "macro_precision": float(c.per_class.loc[c.per_class["predicted"] > 0, "precision"].mean())
             if (c.per_class["predicted"] > 0).any() else NAN} for c in evaluations]
    cols = ["run", "arch", "n", "accuracy", "accuracy_lo", "accuracy_hi", "cohen_kappa", "balanced_accuracy",
            "macro_precision"]
    return pd.DataFrame(rows, columns=cols).sort_values("accuracy", ascending=False, na_position="last",
                                                        ignore_index=True)


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
    """check1: share of images whose two reads agreed (paper 97%); check2: share of check-1
    consensus images whose range class was accepted (paper 93%)."""
    check1: Estimate
    check2: Estimate


def _proportion(hits: pd.Series, boot: Bootstrap, empty: str) -> Estimate:
    n = len(hits)
    if n == 0:
        return Estimate(NAN, n=0, reason=empty)
    t = _proportions_by(np.zeros(n), hits.to_numpy(float), boot, "g", []).iloc[0]
    return Estimate(float(t["agreement"]), float(t["agreement_lo"]), float(t["agreement_hi"]), n)


def check_rates(checks: pd.DataFrame | None, *, n_boot: int = 1000, seed: int = 0,
                confidence: float = 0.95) -> CheckRates:
    """Return CheckRates from `checks` (image_id, check1 agree/disagree, check2 accepted/mismatch/None);
    other values are not counted."""
    boot = Bootstrap(n_boot, seed, confidence)
    if checks is None or not len(checks):
        checks = pd.DataFrame({"check1": [], "check2": []})
    c1 = checks["check1"] if "check1" in checks else pd.Series(dtype=object)
    c2 = checks["check2"] if "check2" in checks else pd.Series(dtype=object)
    c1, c2 = c1[c1.isin(["agree", "disagree"])], c2[c2.isin(["accepted", "mismatch"])]
    return CheckRates(_proportion(c1 == "agree", boot, "no check-1 result"),
                      _proportion(c2 == "accepted", boot, "no check-2 result"))


def agreement_over_time(reads, freq: str = "W") -> pd.DataFrame:
    """Return per period (by when an image got its second graded read; pandas period alias such
    as 'D', 'W', 'M'): n_images, percent_agreement and cohen_kappa (first vs second read)."""
    prep = prepare_reads(reads)
    img = prep.images[(prep.images["pattern"] >= 0) & prep.images["second_at"].notna()]
    cols = ["period", "n_images", "percent_agreement", "cohen_kappa"]
    if not len(img):
        return pd.DataFrame(columns=cols)
    period = img["second_at"].dt.tz_convert(None).dt.to_period(freq).dt.start_time
    unanimous = _unanimous(prep.patterns)[img["pattern"].to_numpy()]
    rows = []
    for start, idx in sorted(pd.Series(range(len(img))).groupby(period.to_numpy()).indices.items()):
        w = np.bincount(img["pattern"].to_numpy()[idx], minlength=len(prep.patterns)).astype(float)
        kappa, _ = COHEN.replicate(_Counts(prep.patterns, w[None, :]))
        rows.append({"period": start, "n_images": len(idx), "percent_agreement": float(unanimous[idx].mean()),
                     "cohen_kappa": COHEN.library(prep.patterns, w) if np.isfinite(kappa[0]) else NAN})
    return pd.DataFrame(rows, columns=cols)


def reader_label_distribution(reads) -> pd.DataFrame:
    """Return per reader and label (7 classes + 'cannot grade'): n, share of the reader's reads,
    the pooled share of all readers, and the difference (a reader's bias)."""
    prep = prepare_reads(reads)
    r = prep.reads[prep.reads["code"] >= -1]
    labels = list(CLASSES) + [CANNOT_GRADE]
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
    t = t.reshape(len(prep.readers), K + 1)
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
    # Every timed read counts for its reader (if named) and for 'all'. Grouped by integer codes
    # in name order ('all' among the names): grouping two million strings took 0.1 s.
    named = reader >= 0
    present = np.unique(reader[named])
    names = sorted(set(prep.readers[present]) | {"all"})
    position = np.full(len(prep.readers), -1)
    position[present] = [names.index(name) for name in prep.readers[present]]
    code = position[reader[named]]
    g = pd.Series(np.concatenate([seconds[named], seconds])).groupby(
        np.concatenate([code, np.full(len(seconds), names.index("all"))]), sort=True)
    q = g.quantile([0.05, 0.25, 0.5, 0.75, 0.95]).unstack()
    q.columns = ["p05", "p25", "median", "p75", "p95"]
    out = pd.concat([g.size().rename("n"), q, g.mean().rename("mean")], axis=1).reset_index(drop=True)
    out.insert(0, "reader", [names[i] for i in g.size().index])
    return out[cols]


# --------------------------------------------------------------------------------------------
# Published figures (DESIGN §7 and the paper), to show beside ours


PUBLISHED_FIGURES = (
    # (scale, statistic, low, high, source, compares with our measure)
    ("House-Brackmann", "Cohen's kappa (global grade)", 0.54, 0.54, "Reitzen et al. 2009", "cohen_kappa"),
    ("House-Brackmann", "Fleiss' kappa", 0.21, 0.50, "later studies (as cited in DESIGN §7)", "fleiss_kappa"),
    ("Sunnybrook", "ICC", 0.89, 0.97, "as cited in DESIGN §7", None),
    ("FNGS 2.0", "ICC", 0.84, 0.97, "as cited in DESIGN §7", None),
    ("Song 2018 seven classes", "check-1 agreement", 0.97, 0.97, "Song et al. 2018 §2.3.3", "check1"),
    ("Song 2018 seven classes", "check-2 agreement", 0.93, 0.93, "Song et al. 2018 §2.3.3", "check2"),
    ("Song 2018 seven classes", "side agreement", 1.00, 1.00, "Song et al. 2018 (DESIGN §7)", "side_agreement"),
    ("Song 2018 seven classes", "degree agreement", 0.971, 0.980, "Song et al. 2018 (DESIGN §7)", "degree_agreement"),
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
    tables built from them. `to_dict()` is the JSON summary, `tables()` the CSV tables.
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

    @property
    def runs_table(self) -> pd.DataFrame:
        """Table 9 layout: compare_runs(models)."""
        return compare_runs(self.models)

    @property
    def movement_table(self) -> pd.DataFrame:
        """Table 7 layout: movement_table(per_movement, asymmetry + models)."""
        return movement_table(self.per_movement, self.asymmetry + self.models)

    def headline(self) -> pd.DataFrame:
        """Return our headline measures beside the published figures (published_figures())."""
        ours = {**self.reads.estimates(), "check1": self.checks.check1, "check2": self.checks.check2}
        if self.models:
            ours["model_accuracy"] = max((m.agreement for m in self.models),
                                         key=lambda e: -1 if math.isnan(e.value) else e.value)
        if self.asymmetry:
            ours["asymmetry_accuracy"] = self.asymmetry[0].agreement
        pub = published_figures()
        rows = []
        for _, p in pub.iterrows():
            e = ours.get(p["compares_with"]) if p["compares_with"] else None
            rows.append({"published_scale": p["scale"], "statistic": p["statistic"], "published_low": p["low"],
                         "published_high": p["high"], "source": p["source"], "ours": e.value if e else NAN,
                         "ours_lo": e.ci_low if e else NAN, "ours_hi": e.ci_high if e else NAN,
                         "ours_n": e.n if e else 0, "ours_note": (e.reason or "") if e else "not measured here"})
        return pd.DataFrame(rows)

    def comparison_table(self, comparisons: list[Comparison]) -> pd.DataFrame:
        """Return the comparisons as one table, a row each (Comparison.row())."""
        return pd.DataFrame([c.row() for c in comparisons])

    def tables(self) -> dict[str, pd.DataFrame]:
        """Return every table by name (what report_csv writes)."""
        t = {"headline": self.headline(), "overall": pd.DataFrame([{"n_reads": self.reads.n_reads,
             "n_images": self.reads.n_images, "n_double_read": self.reads.n_double_read,
             "n_cannot_grade": self.reads.n_cannot_grade, "n_invalid_label": self.reads.n_invalid_label,
             "n_readers": self.reads.n_readers, **_flat(self.reads.estimates())}]),
             "checks": pd.DataFrame([{"check": k, "rate": e.value, "rate_lo": e.ci_low, "rate_hi": e.ci_high,
                                      "n": e.n, "reason": e.reason or ""}
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
        return t

    def to_dict(self) -> dict:
        """Return everything as one JSON-serialisable dict (NaN as null, reasons as text)."""
        def comparison(c: Comparison) -> dict:
            return {"name": c.name, "meta": c.meta, "n": c.n, "n_dropped": c.n_dropped,
                    "agreement": c.agreement, "side_agreement": c.side_agreement,
                    "degree_agreement": c.degree_agreement, "cohen_kappa": c.cohen_kappa,
                    "cohen_kappa_weighted": c.cohen_kappa_weighted, "balanced_accuracy": c.balanced_accuracy,
                    "confusion": _matrix(c.confusion), "confusion_normalised": _matrix(c.confusion_normalised),
                    "per_class": c.per_class, "per_movement": c.per_movement}
        r = self.reads
        return _jsonable({
            "classes": list(CLASSES), "movements": list(MOVEMENTS), "settings": self.settings,
            "counts": {"n_reads": r.n_reads, "n_images": r.n_images, "n_double_read": r.n_double_read,
                       "n_cannot_grade": r.n_cannot_grade, "n_invalid_label": r.n_invalid_label,
                       "n_readers": r.n_readers},
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
    return {"rows_are": frame.index.name, "columns_are": frame.columns.name, "labels": list(CLASSES),
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
        return _num(float(x))
    if x is None or x is pd.NaT or x is pd.NA:
        return None
    return x if isinstance(x, str) else str(x)


def audit(reads, finals: pd.DataFrame | None = None, ranges: pd.DataFrame | None = None,
          checks: pd.DataFrame | None = None, predictions=None, *, n_boot: int = 1000, seed: int = 0,
          confidence: float = 0.95, time_freq: str = "W") -> Audit:
    """Return the Audit of one data state: reads (effective reads), finals (image_id, final_label),
    ranges (image_id, range_class[, range_class_*, movement]), checks (image_id, check1, check2)
    and predictions (see evaluate_runs). Any input but reads may be None."""
    prep = prepare_reads(reads)
    kw = {"n_boot": n_boot, "seed": seed, "confidence": confidence}
    # The reader pairs (180 at bench/scale.py) are compared on a second thread while this one
    # computes the rest: their bootstrap is mostly numpy's random draws, which do not hold the
    # GIL, so the two share the cores (0.2-0.4 s less there on 2 cores; the same numbers).
    with ThreadPoolExecutor(1) as pool:
        pairs = pool.submit(reader_pairs, prep, **kw)
        return Audit(
            settings={**kw, "ci": "percentile bootstrap, images resampled with replacement",
                      "time_freq": time_freq},
            reads=read_agreement(prep, **kw), per_class=class_agreement(prep, **kw),
            per_movement=agreement_by(prep, "movement", **kw), per_source=agreement_by(prep, "source", **kw),
            per_synthetic=agreement_by(prep, "synthetic", **kw),
            readers_vs_final=readers_vs_final(prep, finals, **kw),
            asymmetry=asymmetry_vs_final(ranges, finals, prep, **kw), models=evaluate_runs(predictions, **kw),
            checks=check_rates(checks, **kw), over_time=agreement_over_time(prep, time_freq),
            label_distribution=reader_label_distribution(prep), reading_times=reading_time_summary(prep),
            reader_pairs=pairs.result())


def summary(reads, finals: pd.DataFrame | None = None, ranges: pd.DataFrame | None = None,
            checks: pd.DataFrame | None = None, predictions=None, **options) -> dict:
    """Return audit(...).to_dict(): every number as one JSON-serialisable dict (for `--json`)."""
    return audit(reads, finals, ranges, checks, predictions, **options).to_dict()


def report_csv(result: Audit) -> str:
    """Return every table of the audit as one long CSV (table, row, column, value), text cells
    guarded against formula injection."""
    parts = []
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
