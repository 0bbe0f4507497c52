"""The agreement summary of a study, everything at once (`audit` -> `Audit`): agreement among the
reads (labeling/agreement/reads.py), the comparisons of two labellers (reader vs reader, reader vs
final, the asymmetry range classifier vs final, model runs vs their truth;
labeling/agreement/comparisons.py), the check rates, agreement over time, the readers' label
distributions and reading times, and the published figures beside ours; the CSV report.

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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from labeling.vocabulary import MOVEMENTS
from labeling.agreement import measures as am
from labeling.agreement.estimates import CELL_PATTERNS, PAIR_NAMES, Counts, Estimate, flat, pattern_counts
from labeling.agreement.measures import CLASSES, DEGREES, K, ORDINAL_ORDER, SIDES, SIGNED, WEIGHTS
from labeling.agreement.stats import BOOTSTRAP_METHOD, PROPORTION_METHOD, Bootstrap, cluster_sums, proportion_ci
from labeling.csvsafe import safe_csv_frame
from labeling.agreement.comparisons import (asymmetry_vs_final, compare_labels, compare_runs, Comparison,
                                            confusion_frame, evaluate_runs, movement_table, normalise_rows,
                                            reader_pairs, readers_vs_final, subject_lookup)
from labeling.agreement.reads import (CANNOT_GRADE, MEASURE_NAMES, NAN, READ_COLUMNS, agreement_by, class_agreement,
                                      cluster_codes, group_key, prepare_reads, PreparedReads, read_agreement,
                                      ReadAgreement)

__all__ = ["CLASSES", "K", "SIDES", "DEGREES", "SIGNED", "ORDINAL_ORDER", "WEIGHTS", "DEGREE_WEIGHTS",
           "degree_weights", "Estimate", "Bootstrap", "CELL_PATTERNS", "READ_COLUMNS", "CANNOT_GRADE",
           "PreparedReads", "prepare_reads", "ReadAgreement", "MEASURE_NAMES", "PAIR_NAMES", "read_agreement",
           "agreement_by", "class_agreement", "Comparison", "normalise_rows", "compare_labels", "confusion_frame",
           "reader_pairs", "readers_vs_final", "asymmetry_vs_final", "evaluate_runs", "compare_runs",
           "movement_table", "CheckRates", "check_rates", "agreement_over_time", "auto_freq",
           "reader_label_distribution", "reading_time_summary", "published_figures", "Audit", "audit", "summary",
           "report_csv"]

# The laterality-aware matrix, by its former name (the Agreement page called its kappa "weighted
# on degree"); agreement_measures.WEIGHTS["laterality"] is the definition.
DEGREE_WEIGHTS = WEIGHTS["laterality"]


def degree_weights() -> np.ndarray:
    """Return a copy of the laterality-aware disagreement weights (former name)."""
    return WEIGHTS["laterality"].copy()


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
    subject = subject_lookup(ids, checks if "subject" in checks else None, subjects)
    cluster, _ = cluster_codes(subject, ids.to_numpy(dtype=object))
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
    looked_up = subject_lookup(reads["image_id"], subjects)
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
        synthetic = group_key(prep.images, "synthetic") == "synthetic"
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
