"""Estimates with intervals for groups of images: the measures of labeling/agreement/measures.py
evaluated on pattern counts, with the subject-level intervals of labeling/agreement/stats.py.

A *pattern* is what an image's graded reads reduce to: (first label, second label, count per
class). Every measure depends on a group's images only through how many images share each
pattern, and every interval only through how many subjects share each per-subject vector of
pattern counts (its profile). A two-labeller comparison is the special case of the 49 patterns
CELL_PATTERNS, one per (reference, label) cell.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from labeling.agreement import measures as am
from labeling.agreement.stats import (Bootstrap, Profiles, perfect_agreement_lower, percentile_cis, profile_sums,
                                      proportion_ci, resample)

K = am.K
NAN = float("nan")
_FIRST, _SECOND, _COUNTS = 0, 1, slice(2, 2 + K)


@dataclass(frozen=True)
class Estimate:
    """One measure: its value, its interval, the number of units (images, pairs, reads) and of
    subjects it rests on, and `reason`, which says why `value` is NaN or notes a caveat on the
    interval."""
    value: float
    ci_low: float = NAN
    ci_high: float = NAN
    n: int = 0
    reason: str | None = None
    subjects: int = 0

    def to_dict(self) -> dict:
        """Return the estimate as a JSON-ready dict (NaN becomes None)."""
        return {"value": _num(self.value), "ci_low": _num(self.ci_low), "ci_high": _num(self.ci_high),
                "n": int(self.n), "subjects": int(self.subjects), "reason": self.reason}


def _num(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


# --------------------------------------------------------------------------------------------
# Patterns


def _cell_patterns() -> np.ndarray:
    """Patterns of the 49 (a, b) label pairs, index a * 7 + b: for two-labeller comparisons."""
    a, b = np.divmod(np.arange(K * K), K)
    counts = np.zeros((K * K, K), int)
    np.add.at(counts, (np.arange(K * K), a), 1)
    np.add.at(counts, (np.arange(K * K), b), 1)
    return np.column_stack([a, b, counts])


CELL_PATTERNS = _cell_patterns()


def pattern_counts(P: np.ndarray) -> np.ndarray:
    """The count per class (U, 7) of each pattern."""
    return P[:, _COUNTS]


class Counts:
    """Images per pattern W (B, U) over the patterns P (U, 9), with the first/second-read tables
    and Krippendorff's inputs computed once for all measures."""

    def __init__(self, P: np.ndarray, W: np.ndarray):
        self.P, self.W = P, np.atleast_2d(np.asarray(W, float))

    @cached_property
    def tables(self) -> np.ndarray:
        """(B, 7, 7) tables of first read (rows) against second read (columns)."""
        if self.P is CELL_PATTERNS:  # pattern a * 7 + b is the cell (a, b): the counts are the tables
            return self.W.reshape(-1, K, K)
        P = self.P
        idx = np.flatnonzero(P[:, _SECOND] >= 0)
        onehot = np.zeros((len(P), K * K))
        onehot[idx, P[idx, _FIRST] * K + P[idx, _SECOND]] = 1.0
        return (self.W @ onehot).reshape(-1, K, K)

    @cached_property
    def margins(self) -> am.Margins:
        """The first/second-read tables' margins, shared by every two-rater coefficient."""
        return am.margins(self.tables)

    @cached_property
    def kappas(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every named kappa's parts at once (KAPPA_WEIGHTS order, leading axis)."""
        return am.kappa_parts(self.margins, np.stack([am.WEIGHTS[w] for w in am.KAPPA_WEIGHTS.values()]))

    @cached_property
    def units(self) -> np.ndarray:
        """Images (units with two or more graded reads) per row of W."""
        return self.W @ (pattern_counts(self.P).sum(1) >= 2)


# --------------------------------------------------------------------------------------------
# Measures on patterns


@dataclass(frozen=True)
class Measure:
    """A named measure on patterns: a proportion ((hits, eligible) per pattern) or a coefficient
    (Counts -> D_o, D_e, d_max, units per row)."""
    name: str
    kind: str
    empty: str
    undefined: str = "undefined"
    proportion: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None
    parts: Callable[[Counts], tuple[np.ndarray, np.ndarray, np.ndarray | float, np.ndarray]] | None = None


NO_DOUBLE = "no image has two graded reads"
ONE_CLASS = "undefined: the reads use a single class, so chance agreement is 1"


def proportion(name: str, empty: str = NO_DOUBLE, cls: int | None = None, as_name: str | None = None) -> Measure:
    def parts(P):
        return am.proportion_parts(name, pattern_counts(P), cls)
    return Measure(as_name or name, "proportion", empty, proportion=parts)


def kappa(name: str) -> Measure:
    i = list(am.KAPPA_WEIGHTS).index(name)

    def parts(s: Counts):
        d_o, d_e, d_max = s.kappas
        return d_o[i], d_e[i], float(d_max[i]), s.margins.n
    return Measure(name, "coefficient", NO_DOUBLE, ONE_CLASS, parts=parts)


def gwet(name: str) -> Measure:
    w = am.WEIGHTS[am.GWET_WEIGHTS[name]]

    def parts(s: Counts):
        if s.P is CELL_PATTERNS:  # two ratings per unit: the two-rater formula, from the shared margins
            d_o, d_e, d_max = am.gwet_parts(s.margins, w)
            return d_o, d_e, d_max, s.margins.n
        d_o, d_e, d_max = am.multi_gwet_parts(pattern_counts(s.P), s.W, w)
        return d_o, d_e, d_max, s.units
    return Measure(name, "coefficient", NO_DOUBLE, ONE_CLASS, parts=parts)


def fleiss(name: str) -> Measure:
    """Fleiss' kappa (nominal, or weighted) over every image with two or more graded reads."""
    w = am.WEIGHTS[am.FLEISS_WEIGHTS[name]]

    def parts(s: Counts):
        d_o, d_e, d_max = am.fleiss_parts(pattern_counts(s.P), s.W, w)
        return d_o, d_e, d_max, s.units
    return Measure(name, "coefficient", NO_DOUBLE, ONE_CLASS, parts=parts)


def alpha(metric: str) -> Measure:
    def parts(s: Counts):
        d_o, d_e, d_max = am.alpha_parts(pattern_counts(s.P), s.W, metric)
        return d_o, d_e, d_max, s.units
    return Measure("krippendorff_alpha" if metric == "nominal" else f"krippendorff_alpha_{metric}", "coefficient",
                   NO_DOUBLE, ONE_CLASS, parts=parts)


def one_vs_rest_kappa(c: int) -> Measure:
    """Cohen's kappa of class c against all others, first against second read."""
    def parts(s: Counts):
        m = s.margins
        a, row, col, n = m.cells[:, c * K + c], m.rows[:, c], m.cols[:, c], m.n
        two = np.stack([np.stack([a, row - a], -1), np.stack([col - a, n - row - col + a], -1)], 1)
        d_o, d_e, d_max = am.kappa_parts(two, 1.0 - np.eye(2))
        return d_o, d_e, d_max, n
    return Measure("kappa_one_vs_rest", "coefficient", NO_DOUBLE,
                   f"undefined: {am.CLASSES[c]} is used by neither or by every first/second read", parts=parts)


KAPPAS = tuple(kappa(name) for name in am.KAPPA_WEIGHTS)
GWETS = tuple(gwet(name) for name in am.GWET_WEIGHTS)
PAIR_PROPORTIONS = (proportion("agreement"),
                    proportion("side_agreement", "no compared image has two labels naming a side"),
                    proportion("degree_agreement"), proportion("lr_swap_rate"))
PAIR_MEASURES = PAIR_PROPORTIONS + KAPPAS + GWETS
READ_PROPORTIONS = (proportion("percent_agreement"),
                    proportion("side_agreement", "no image has two reads naming a side (every pair involves N)"),
                    proportion("degree_agreement"), proportion("lr_swap_rate"))
ALPHAS = (alpha("nominal"), alpha("ordinal"))
FLEISSES = tuple(fleiss(name) for name in am.FLEISS_WEIGHTS)
# The names of a comparison's and of the reads' measures, in the order tables show them.
PAIR_NAMES = tuple(m.name for m in PAIR_MEASURES)
READ_MEASURES = READ_PROPORTIONS + KAPPAS + GWETS + FLEISSES + ALPHAS
READ_NAMES = tuple(m.name for m in READ_MEASURES)


# --------------------------------------------------------------------------------------------
# Estimating groups

# Replicate rows computed at once: 50 groups of 1000 resamples of the 49 cells of a comparison
# keep each pass's arrays near 20 MB.
_BATCH_ROWS = 50_000
_AGREE = proportion("percent_agreement")


def estimate_groups(P: np.ndarray, groups: list[Profiles], measures, boot: Bootstrap) -> list[dict[str, Estimate]]:
    """Every measure of each group (its subjects' Profiles over the patterns P).

    Proportions get their Clopper-Pearson interval on the effective sample size; coefficients a
    percentile interval of resampled subjects (each group drawing from its own generator seeded
    with boot.seed, so a group's interval does not depend on the other groups), the replicates
    of many groups going through each measure in one vectorised pass. A coefficient whose
    resamples all show perfect agreement gets the lower limit of perfect_agreement_lower.
    """
    G = len(groups)
    if not G:
        return []
    W0 = np.array([g.totals() for g in groups]).reshape(G, len(P))
    observed = Counts(P, W0)
    out: list[dict[str, Estimate]] = [{} for _ in range(G)]
    subjects = np.array([g.n_subjects for g in groups])

    def proportions(m: Measure):
        hits, eligible = m.proportion(P)
        sums = np.array([profile_sums(g, hits, eligible) for g in groups]).T
        return proportion_ci(*sums, confidence=boot.confidence)

    agree = proportions(_AGREE)
    coefficients = [m for m in measures if m.kind == "coefficient"]
    for m in measures:
        if m.kind != "proportion":
            continue
        ci = proportions(m)
        for g in range(G):
            n, S = int(round(ci.n[g])), int(round(ci.subjects[g]))
            if n == 0:
                out[g][m.name] = Estimate(NAN, n=0, reason=m.empty)
            else:  # n_boot = 0 asks for no interval at all
                lo, hi = (ci.lo[g], ci.hi[g]) if boot.n_boot > 0 else (NAN, NAN)
                out[g][m.name] = Estimate(float(ci.p[g]), float(lo), float(hi), n, None, S)
    if not coefficients:
        return out
    parts0 = {m.name: m.parts(observed) for m in coefficients}
    cis: dict[str, list] = {m.name: [None] * G for m in coefficients}
    per_batch = max(1, _BATCH_ROWS // max(boot.n_boot, 1))
    for start in range(0, G, per_batch):
        batch = range(start, min(start + per_batch, G))
        draws = {g: resample(groups[g], boot) if subjects[g] >= 2 else None for g in batch}
        drawn = [g for g in batch if draws[g] is not None]
        if not drawn:
            continue
        resampled = Counts(P, np.concatenate([draws[g] for g in drawn]))
        for m in coefficients:
            d_o, d_e, _, _ = m.parts(resampled)
            reps = am.coefficient(d_o, d_e).reshape(len(drawn), -1)
            for g, ci in zip(drawn, percentile_cis(reps, boot)):
                cis[m.name][g] = ci
    for m in coefficients:
        d_o, d_e, d_max, units = parts0[m.name]
        values = am.coefficient(d_o, d_e)
        d_max = np.broadcast_to(np.asarray(d_max, float), values.shape)
        for g in range(G):
            n0, v0 = int(round(units[g])), float(values[g])
            if n0 == 0:
                out[g][m.name] = Estimate(NAN, n=0, reason=m.empty, subjects=int(subjects[g]))
                continue
            if not math.isfinite(v0):
                out[g][m.name] = Estimate(NAN, n=n0, reason=m.undefined, subjects=int(subjects[g]))
                continue
            lo, hi, note = cis[m.name][g] or (NAN, NAN, None)
            if boot.n_boot > 0 and subjects[g] < 2:
                note = "one subject: no interval"
            elif math.isfinite(lo) and lo == hi:
                if v0 == 1.0:
                    lo = perfect_agreement_lower(float(agree.lo[g]), float(d_e[g]), float(d_max[g]))
                    note = ("every resample agrees perfectly: lower limit from the exact agreement's "
                            "Clopper-Pearson limit, chance agreement held at its observed value")
                else:
                    lo = hi = NAN
                    note = "every resample gives the same value (the subjects are alike): no interval"
            out[g][m.name] = Estimate(v0, lo, hi, n0, note, int(subjects[g]))
    return out


def flat(estimates: Mapping[str, Estimate]) -> dict:
    """One table row: value, _lo, _hi, _n per measure, the subjects once, and the reasons joined
    in `notes`."""
    row, notes, subjects = {}, [], 0
    for name, e in estimates.items():
        row.update({name: e.value, f"{name}_lo": e.ci_low, f"{name}_hi": e.ci_high, f"{name}_n": e.n})
        subjects = max(subjects, e.subjects)
        if e.reason:
            notes.append(f"{name}: {e.reason}")
    row["subjects"] = subjects
    row["notes"] = "; ".join(notes)
    return row


def flat_columns(names) -> list[str]:
    return [c for n in names for c in (n, f"{n}_lo", f"{n}_hi", f"{n}_n")] + ["subjects", "notes"]
