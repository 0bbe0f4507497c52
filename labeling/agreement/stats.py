"""Intervals for the agreement audit, with the subject as the unit: a subject's photos (seven
movements, sometimes two sources) are not independent, so every interval treats the subject,
not the image, as the independent unit.

- Proportions (exact, side, degree agreement, L/R swaps, accuracy, check rates): Clopper-Pearson
  on the effective sample size (Korn & Graubard 1998): n_eff = p (1 - p) / v, v the
  cluster-robust variance of p = sum k_s / sum n_s over subjects s, capped at n and scaled by
  (z / t_{S-1})^2 for the few-subjects case. At p = 0 or 1 the data cannot tell how alike a
  subject's photos are, so n_eff is the number of subjects: the interval never collapses.
- Coefficients (kappas, AC1/AC2, Fleiss, Krippendorff): percentile bootstrap over subjects (a
  cluster bootstrap: whole subjects enter or leave a resample), each subject weighted by a
  Poisson(1) count. Every measure depends on a subject only through its counts per pattern (its
  "profile"), so a resample is one Poisson draw per distinct profile: fast at 100,000 images.

Plain numpy/scipy/statsmodels; labeling/agreement/summary.py does the bookkeeping, docs/agreement.md
("Confidence intervals") states the method for a methods section.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse, stats
from statsmodels.stats.proportion import proportion_confint

NAN = float("nan")
PROPORTION_METHOD = ("Clopper-Pearson on the effective sample size n/deff, design effect deff from the "
                     "clustering of images within subjects (Korn & Graubard 1998); at 0% or 100% the number "
                     "of subjects")
BOOTSTRAP_METHOD = ("percentile bootstrap over subjects (cluster bootstrap), each subject entering a resample a "
                    "Poisson(1) number of times (Hanley & MacGibbon 2006)")


@dataclass(frozen=True)
class Bootstrap:
    """Interval settings: resamples (0: no interval), seed, confidence level."""
    n_boot: int = 1000
    seed: int = 0
    confidence: float = 0.95


# --------------------------------------------------------------------------------------------
# Subject profiles


@dataclass
class Profiles:
    """One group's units by subject: `vectors` (P, V) the distinct per-subject counts over V
    values (patterns, table cells, hit/miss), `mult` (P,) how many subjects have each."""
    vectors: np.ndarray | sparse.csr_matrix
    mult: np.ndarray

    @property
    def n_subjects(self) -> int:
        return int(self.mult.sum())

    def totals(self) -> np.ndarray:
        """Counts per value over all subjects (the observed data)."""
        return np.asarray(self.vectors.T @ self.mult, dtype=float).ravel()

    def project(self, values: np.ndarray) -> np.ndarray:
        """Per-profile sums of a quantity given per value: vectors @ values -> (P, ...)."""
        return np.asarray(self.vectors @ values, dtype=float)


def _empty_profiles(n_values: int) -> Profiles:
    return Profiles(np.zeros((0, n_values), dtype=np.int64), np.zeros(0, dtype=np.int64))


def _flat_keys(group: np.ndarray, subject: np.ndarray, n_groups: int, n_subjects: int
               ) -> tuple[np.ndarray, int, np.ndarray | None]:
    """Return (key per row, number of keys, group of each key or None): key = group * n_subjects +
    subject, renumbered densely (np.unique) only when that range would be too large to count in."""
    S = max(int(n_subjects), 1)
    key = np.asarray(group, np.int64) * S + np.asarray(subject, np.int64)
    # Counting in a dense range keeps memory bounded (a few words of 8 bytes per key): 3 million
    # (pair, subject) keys at bench scale; beyond 4 million the keys present are numbered instead.
    if n_groups * S <= 1 << 22:
        return key, n_groups * S, None
    present, key = np.unique(key, return_inverse=True)
    return key.ravel(), len(present), present // S


def profiles_by_group(group: np.ndarray, subject: np.ndarray, value: np.ndarray, n_values: int, n_groups: int,
                      n_subjects: int) -> list[Profiles]:
    """Return each group's Profiles from one row per counted unit: its group, its subject (the
    cluster code) and its value (0 .. n_values - 1).

    A (group, subject)'s counts are packed exactly into float64 words, several values per word in
    base (largest count + 1) digits below 2^52, by one np.bincount (no sort of the rows). The
    (group, subject)s of a group with the same words are one profile: grouped by a 64-bit hash of
    the words with pd.factorize, then checked word for word (a collision, never seen, falls back
    to exact grouping). The profiles come in a canonical order (group, then counts), whatever the
    subjects' numbering, so a group's resamples do not depend on it.
    """
    value = np.asarray(value, np.int64)
    if not len(value):
        return [_empty_profiles(n_values) for _ in range(n_groups)]
    key, n_keys, key_group = _flat_keys(group, subject, n_groups, n_subjects)
    total = np.bincount(key, minlength=n_keys)
    base = int(total.max()) + 1
    per_word = max(1, int(52 // math.log2(base))) if base > 1 else 52
    n_words = -(-n_values // per_word)
    present = np.flatnonzero(total)
    # Value v adds base ** (v % per_word) to word v // per_word of its key: one bincount over
    # (key, word) cells. Integer sums below 2^52 are exact in float64.
    place = float(base) ** (np.arange(n_values) % per_word)
    bins = key * n_words + (value // per_word) if n_words > 1 else key
    words = np.bincount(bins, weights=place[value], minlength=n_keys * n_words).reshape(n_keys, n_words)[present]
    kg = present // max(int(n_subjects), 1) if key_group is None else key_group[present]
    mix = np.random.default_rng(12345).integers(1, 2 ** 63, size=n_words + 1, dtype=np.uint64) | np.uint64(1)
    with np.errstate(over="ignore"):
        h = kg.astype(np.uint64) * mix[-1] + (words.astype(np.uint64) * mix[:-1]).sum(1, dtype=np.uint64)
    codes = pd.factorize(h)[0].astype(np.int64)
    n_profiles = int(codes.max()) + 1
    first = np.empty(n_profiles, np.int64)
    first[codes] = np.arange(len(codes))
    if not ((words == words[first[codes]]).all() and (kg == kg[first[codes]]).all()):
        codes = pd.factorize(kg)[0].astype(np.int64)  # a hash collision: group word by word
        for j in range(n_words):
            part, uniques = pd.factorize(words[:, j])
            codes = pd.factorize(codes * len(uniques) + part)[0].astype(np.int64)
        n_profiles = int(codes.max()) + 1
        first = np.empty(n_profiles, np.int64)
        first[codes] = np.arange(len(codes))
    mult = np.bincount(codes, minlength=n_profiles)
    reps, rep_group = words[first].astype(np.uint64), kg[first]
    # Decode the representatives' digits back into counts per value, and order the profiles by
    # group, then by their counts (not by the words, whose base depends on the other groups).
    powers = np.uint64(base) ** np.arange(per_word, dtype=np.uint64)
    counts = (reps[:, :, None] // powers) % np.uint64(base)
    vectors = counts.reshape(len(reps), n_words * per_word)[:, :n_values].astype(float)
    order = np.lexsort([*vectors.T[::-1], rep_group])
    vectors, rep_group, mult = vectors[order], rep_group[order], mult[order]
    bounds = np.searchsorted(rep_group, np.arange(n_groups + 1))
    out = []
    for g in range(n_groups):
        v = vectors[bounds[g]:bounds[g + 1]]
        out.append(Profiles(sparse.csr_matrix(v) if n_values > 64 else v, mult[bounds[g]:bounds[g + 1]]))
    return out


def resample(profiles: Profiles, boot: Bootstrap) -> np.ndarray | None:
    """Return (n_boot, V) counts per value of n_boot resamples of the group's subjects, from a
    generator seeded with boot.seed: a group's resamples do not depend on any other group. None
    without subjects or resamples.

    Each subject enters a resample a Poisson(1) number of times (the Poisson bootstrap, Hanley &
    MacGibbon 2006), so the subjects sharing a profile enter it Poisson(multiplicity) times in all:
    one vectorised draw per profile and resample. For statistics that are ratios of totals, as
    every measure here is, it agrees with drawing exactly S subjects with replacement up to the
    factor S / (S - 1) on the variance (tests/test_agreement_intervals.py compares it with that
    textbook scheme), and it draws in half the time of numpy's multinomial, which at bench scale
    (180 reader pairs of about 50 profiles, 1,000 resamples) is the difference between meeting the
    3 s target and not.
    """
    if boot.n_boot <= 0 or profiles.n_subjects == 0:
        return None
    rng = np.random.default_rng(boot.seed)
    M = rng.poisson(profiles.mult.astype(float), size=(boot.n_boot, len(profiles.mult))).astype(float)
    return np.asarray(M @ profiles.vectors if not sparse.issparse(profiles.vectors)
                      else (profiles.vectors.T @ M.T).T, dtype=float)


# --------------------------------------------------------------------------------------------
# Proportions: Clopper-Pearson on the effective sample size


@dataclass(frozen=True)
class ProportionCI:
    """Arrays, one entry per proportion: p, its interval, n (units), the number of subjects, the
    effective sample size behind the interval and the design effect (NaN where not estimable)."""
    p: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    n: np.ndarray
    subjects: np.ndarray
    n_eff: np.ndarray
    deff: np.ndarray


def proportion_ci(k, n, kk, kn, nn, subjects, confidence: float = 0.95) -> ProportionCI:
    """Clopper-Pearson intervals on the effective sample size of proportions p = k / n, given per
    proportion the subject-level sums kk = sum k_s^2, kn = sum k_s n_s, nn = sum n_s^2 and the
    number of subjects with n_s > 0 (arrays of one shape).

    v = S / (S - 1) * sum (k_s - p n_s)^2 / n^2 (the linearised variance of a ratio over
    clusters); n_eff = min(n, p (1 - p) / v) * (z / t_{S-1})^2. At p = 0 or 1 (v = 0, nothing to
    estimate the clustering from) and with one subject, n_eff is the number of subjects. NaN
    everywhere for n = 0.
    """
    k, n, kk, kn, nn, S = (np.atleast_1d(np.asarray(x, float)) for x in (k, n, kk, kn, nn, subjects))
    ok = n > 0
    p = np.where(ok, k / np.where(ok, n, 1.0), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        ss = kk - 2.0 * p * kn + p ** 2 * nn  # sum over subjects of (k_s - p n_s)^2
        v = np.where(S > 1, S / np.maximum(S - 1, 1) * np.maximum(ss, 0.0) / n ** 2, np.nan)
        inner = ok & (p > 0) & (p < 1) & (S > 1)
        raw = np.where(inner & (v > 0), p * (1 - p) / np.where(v > 0, v, 1.0), n)
        z = stats.norm.ppf(0.5 + confidence / 2)
        t = stats.t.ppf(0.5 + confidence / 2, np.maximum(S - 1, 1))
        n_eff = np.where(inner, np.minimum(raw, n) * (z / t) ** 2, np.minimum(S, n))
        deff = np.where(inner, n / np.maximum(np.minimum(raw, n), 1e-300), np.nan)
    lo, hi = np.full(p.shape, np.nan), np.full(p.shape, np.nan)
    if ok.any():
        lo[ok], hi[ok] = proportion_confint(p[ok] * n_eff[ok], n_eff[ok], alpha=1 - confidence, method="beta")
    return ProportionCI(p, lo, hi, n, S, np.where(ok, n_eff, np.nan), deff)


def cluster_sums(group: np.ndarray, subject: np.ndarray, hits: np.ndarray, n_groups: int, n_subjects: int,
                 eligible: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Per group: k, n, sum k_s^2, sum k_s n_s, sum n_s^2 and the number of subjects with n_s > 0,
    from one row per unit with its group, subject and hits (and eligible, default 1)."""
    key, n_keys, key_group = _flat_keys(group, subject, n_groups, n_subjects)
    e = np.ones(len(key)) if eligible is None else np.asarray(eligible, float)
    ks = np.bincount(key, weights=np.asarray(hits, float), minlength=n_keys)
    ns = np.bincount(key, weights=e, minlength=n_keys)
    g = np.arange(n_keys) // max(int(n_subjects), 1) if key_group is None else key_group
    out = [np.bincount(g, weights=w, minlength=n_groups) for w in (ks, ns, ks * ks, ks * ns, ns * ns)]
    return (*out, np.bincount(g, weights=(ns > 0).astype(float), minlength=n_groups))


def profile_sums(profiles: Profiles, hits_per_value: np.ndarray, eligible_per_value: np.ndarray
                 ) -> tuple[float, ...]:
    """k, n, sum k_s^2, sum k_s n_s, sum n_s^2 and subjects with n_s > 0 of one group's profiles."""
    ks = profiles.project(np.asarray(hits_per_value, float)).ravel()
    ns = profiles.project(np.asarray(eligible_per_value, float)).ravel()
    m = profiles.mult.astype(float)
    return (m @ ks, m @ ns, m @ (ks * ks), m @ (ks * ns), m @ (ns * ns), m @ (ns > 0))


# --------------------------------------------------------------------------------------------
# Coefficients: percentile bootstrap, and the interval at perfect agreement


def percentile_ci(reps: np.ndarray, boot: Bootstrap) -> tuple[float, float, str | None]:
    """The percentile interval of one measure's resampled values (NaN: undefined in that
    resample, left out and counted; no interval when more than half are undefined)."""
    finite = reps[np.isfinite(reps)]
    bad = len(reps) - len(finite)
    if len(finite) < 0.5 * len(reps):
        return NAN, NAN, f"no CI: the measure is undefined in {bad} of {len(reps)} resamples"
    tail = (1.0 - boot.confidence) / 2.0
    lo, hi = np.quantile(finite, [tail, 1.0 - tail])
    return float(lo), float(hi), (f"{bad} of {len(reps)} resamples undefined; CI from the rest" if bad else None)


def percentile_cis(reps: np.ndarray, boot: Bootstrap) -> list[tuple[float, float, str | None]]:
    """percentile_ci of each row of reps (groups x resamples); the rows without an undefined
    value in one np.quantile call, which computes each row as the 1-D call would."""
    out: list = [None] * len(reps)
    finite = np.isfinite(reps).all(axis=1)
    if finite.any():
        tail = (1.0 - boot.confidence) / 2.0
        lo, hi = np.quantile(reps[finite], [tail, 1.0 - tail], axis=1)
        for row, low, high in zip(np.flatnonzero(finite), lo, hi):
            out[row] = (float(low), float(high), None)
    for row in np.flatnonzero(~finite):
        out[row] = percentile_ci(reps[row], boot)
    return out


def perfect_agreement_lower(agree_lo: float, d_e: float, d_max: float) -> float:
    """The lower limit of a coefficient 1 - D_o / D_e whose resamples all show perfect agreement:
    the value it takes when the share of disagreeing units is at its upper limit 1 - agree_lo
    (the exact agreement's Clopper-Pearson limit), each disagreement carrying the largest weight
    d_max and chance held at its observed D_e. Within [-1, 1], and NaN if anything is unknown."""
    if not (math.isfinite(agree_lo) and math.isfinite(d_e) and d_e > 0):
        return NAN
    return float(min(1.0, max(-1.0, 1.0 - (1.0 - agree_lo) * d_max / d_e)))
