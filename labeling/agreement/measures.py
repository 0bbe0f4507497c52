"""The named agreement measures: one definition per name, shared by the Agreement page, the
command line (`python -m labeling agreement`) and the trainer's evaluation (model/evaluation.py).

Plain numpy, no Streamlit, no SQL, no TensorFlow. Every chance-corrected coefficient is written as
1 - D_o / D_e (observed over expected disagreement) and computed here, vectorised over many
tables or resamples at once; tests/test_agreement_measures.py checks each against scikit-learn,
statsmodels, krippendorff and irrCAC and against cases worked by hand. docs/agreement.md
("Measures") defines every name.

The scale. The seven classes are kept in CLASSES order (N, L1, L2, L3, R1, R2, R3) in the data;
the ordinal scale used by the weighted measures, and the order every table and matrix is shown
in, is L3 < L2 < L1 < N < R1 < R2 < R3 (ORDINAL_ORDER): the signed position -3 ... +3.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labeling.vocabulary import CLASSES, ORDINAL_ORDER, side_and_degree

K = len(CLASSES)
SIDES = np.array([{None: 0, "L": 1, "R": 2}[side_and_degree(c)[0]] for c in CLASSES])
DEGREES = np.array([side_and_degree(c)[1] for c in CLASSES])
# Signed position on the ordinal scale: L3 -3, L2 -2, L1 -1, N 0, R1 +1, R2 +2, R3 +3.
SIGNED = DEGREES * np.where(SIDES == 1, -1, 1)
ORDINAL_INDEX = np.array([CLASSES.index(c) for c in ORDINAL_ORDER])  # CLASSES positions, scale order
NAN = float("nan")


# --------------------------------------------------------------------------------------------
# Disagreement weights (CLASSES order on both axes; 0 on the diagonal, at most 1)


def _laterality() -> np.ndarray:
    w = np.abs(DEGREES[:, None] - DEGREES[None, :]) / 3.0
    w[(SIDES[:, None] * SIDES[None, :] > 0) & (SIDES[:, None] != SIDES[None, :])] = 1.0
    return w


_SIGNED_GAP = (SIGNED[:, None] - SIGNED[None, :]) / 6.0
_DEGREE_GAP = (DEGREES[:, None] - DEGREES[None, :]) / 3.0
WEIGHTS: dict[str, np.ndarray] = {
    # every disagreement counts fully
    "nominal": 1.0 - np.eye(K),
    # the ordinal scale L3 .. R3: |position difference| / 6, and its square
    "linear": np.abs(_SIGNED_GAP),
    "quadratic": _SIGNED_GAP ** 2,
    # degree alone (0 N, 1 mild, 2 moderate, 3 severe), the side ignored: |degree difference| / 3
    "degree_linear": np.abs(_DEGREE_GAP),
    "degree_quadratic": _DEGREE_GAP ** 2,
    # laterality-aware: |degree difference| / 3 on one side or against N, 1 for left against right
    "laterality": _laterality(),
}
for _w in WEIGHTS.values():
    _w.setflags(write=False)


# --------------------------------------------------------------------------------------------
# The names


@dataclass(frozen=True)
class Definition:
    """A measure's name (its key in every output), its label for people, whether it is a
    proportion (Clopper-Pearson interval) or a chance-corrected coefficient (bootstrap interval),
    and its definition in one sentence."""
    name: str
    label: str
    kind: str  # "proportion" or "coefficient"
    text: str


_DEFINITIONS = (
    Definition("percent_agreement", "exact agreement", "proportion",
               "share of images read at least twice whose graded reads all give the same class"),
    Definition("agreement", "exact agreement (accuracy against a reference)", "proportion",
               "share of compared images on which the two labels are the same class"),
    Definition("side_agreement", "side agreement", "proportion",
               "among images with at least two reads naming a side, the share whose reads all name the same "
               "side (a read of N names none)"),
    Definition("degree_agreement", "degree agreement", "proportion",
               "share of images whose graded reads all give the same degree (0 N, 1-3), the side ignored"),
    Definition("lr_swap_rate", "left/right swap rate", "proportion",
               "share of compared images on which one read names the left side and another the right"),
    Definition("cohen_kappa", "Cohen's kappa", "coefficient",
               "Cohen's kappa, unweighted (nominal), first against second read or reference against labels"),
    Definition("kappa_linear", "weighted kappa, linear (ordinal scale)", "coefficient",
               "Cohen's kappa with linear weights |i - j| / 6 on the scale L3 < L2 < L1 < N < R1 < R2 < R3"),
    Definition("kappa_quadratic", "weighted kappa, quadratic (ordinal scale)", "coefficient",
               "Cohen's kappa with quadratic weights ((i - j) / 6)^2 on the scale L3 < ... < R3"),
    Definition("kappa_degree_linear", "weighted kappa, linear (degree)", "coefficient",
               "Cohen's kappa with linear weights |i - j| / 3 on the degree 0-3, the side ignored"),
    Definition("kappa_degree_quadratic", "weighted kappa, quadratic (degree)", "coefficient",
               "Cohen's kappa with quadratic weights ((i - j) / 3)^2 on the degree 0-3, the side ignored"),
    Definition("kappa_laterality", "laterality-weighted kappa", "coefficient",
               "Cohen's kappa with the laterality-aware weights: |degree difference| / 3 on one side or against "
               "N, 1 for left against right"),
    Definition("gwet_ac1", "Gwet's AC1", "coefficient",
               "Gwet's first-order agreement coefficient (nominal), all graded reads of an image, 7 categories"),
    Definition("gwet_ac2", "Gwet's AC2 (quadratic)", "coefficient",
               "Gwet's AC2 with quadratic weights on the scale L3 < ... < R3, all graded reads, 7 categories"),
    Definition("fleiss_kappa", "Fleiss' kappa", "coefficient",
               "Fleiss' kappa (nominal), every image with two or more graded reads (Gwet's generalisation to "
               "varying numbers of reads)"),
    Definition("fleiss_kappa_quadratic", "Fleiss' kappa, quadratic (ordinal scale)", "coefficient",
               "Fleiss' kappa with quadratic weights on the scale L3 < ... < R3 (Gwet's weighted generalisation)"),
    Definition("krippendorff_alpha", "Krippendorff's alpha (nominal)", "coefficient",
               "Krippendorff's alpha with the nominal metric, every image with two or more graded reads"),
    Definition("krippendorff_alpha_ordinal", "Krippendorff's alpha (ordinal)", "coefficient",
               "Krippendorff's alpha with the ordinal metric on the scale L3 < ... < R3"),
    Definition("specific_agreement", "specific agreement", "proportion",
               "of the pairs of reads of one image where the first gives the class, the share where the other "
               "gives it too"),
    Definition("kappa_one_vs_rest", "one-vs-rest kappa", "coefficient",
               "Cohen's kappa of the class against all others, first against second read"),
    Definition("check1", "check-1 consensus rate", "proportion",
               "share of images with all their reads in whose reads agree (a cannot-grade read counts as a "
               "disagreement: the image goes to adjudication)"),
    Definition("check2", "check-2 acceptance rate", "proportion",
               "share of check-1 consensus images with a range class whose range class matched the consensus"),
)
DEFINITIONS: dict[str, Definition] = {d.name: d for d in _DEFINITIONS}
# The weights behind each weighted name.
KAPPA_WEIGHTS = {"cohen_kappa": "nominal", "kappa_linear": "linear", "kappa_quadratic": "quadratic",
                 "kappa_degree_linear": "degree_linear", "kappa_degree_quadratic": "degree_quadratic",
                 "kappa_laterality": "laterality"}
GWET_WEIGHTS = {"gwet_ac1": "nominal", "gwet_ac2": "quadratic"}
FLEISS_WEIGHTS = {"fleiss_kappa": "nominal", "fleiss_kappa_quadratic": "quadratic"}


def label(name: str) -> str:
    """The label of a measure name (the name itself when it has none)."""
    d = DEFINITIONS.get(name)
    return d.label if d else name


# --------------------------------------------------------------------------------------------
# Coefficients: 1 - D_o / D_e. Each *_parts function returns (D_o, D_e, d_max): the observed and
# the chance-expected disagreement, and the largest weight a single disagreement can carry (used
# for the interval at perfect agreement, see labeling/agreement/stats.py).


def coefficient(d_o, d_e) -> np.ndarray:
    """1 - D_o / D_e; NaN where D_e is 0 (chance agreement is certain: one category in use) or
    either part is NaN."""
    d_o, d_e = np.asarray(d_o, float), np.asarray(d_e, float)
    ok = d_e > 0
    return np.where(ok, 1.0 - d_o / np.where(ok, d_e, 1.0), np.nan)


_ROW_OF_CELL = np.kron(np.eye(K), np.ones((K, 1)))  # (49, 7): cell a * 7 + b -> row a
_COL_OF_CELL = np.kron(np.ones((K, 1)), np.eye(K))  # (49, 7): cell a * 7 + b -> column b


@dataclass(frozen=True)
class Margins:
    """Tables T (..., q, q) flattened to (N, q * q) cells, with each table's total n and its row and
    column sums (N, q): what every two-rater coefficient is computed from."""
    cells: np.ndarray
    n: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    shape: tuple

    @property
    def safe(self) -> np.ndarray:
        return np.where(self.n > 0, self.n, 1.0)

    def finish(self, d_o: np.ndarray, d_e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        empty = self.n == 0
        return np.where(empty, np.nan, d_o).reshape(self.shape), np.where(empty, np.nan, d_e).reshape(self.shape)


def margins(T: np.ndarray) -> Margins:
    """The Margins of tables T (..., K, K). By matrix products: numpy's sums over a length-7 axis
    of (50,000, 7, 7) arrays are several times slower (the reader pairs' bootstrap)."""
    T = np.asarray(T, float)
    q = T.shape[-1]
    cells = T.reshape(-1, q * q)
    if q == K:
        rows, cols = cells @ _ROW_OF_CELL, cells @ _COL_OF_CELL
    else:
        rows, cols = cells @ np.kron(np.eye(q), np.ones((q, 1))), cells @ np.kron(np.ones((q, 1)), np.eye(q))
    return Margins(cells, rows.sum(1), rows, cols, T.shape[:-2])


def kappa_parts(T, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, float | np.ndarray]:
    """Cohen's (weighted) kappa of tables T (..., K, K) or their Margins, rows one rater and
    columns the other, with disagreement weights w: D_o = sum(w * O), D_e = sum(w * E), O the
    observed and E the product-of-margins proportions (statsmodels' and scikit-learn's
    definition; w = 1 - I gives the unweighted kappa). NaN parts for an empty table.

    `weights` may also be a stack (m, K, K): the parts then have a leading axis of m, computed in
    one pass over the tables (the six weighted kappas of 180 reader pairs x 1,000 resamples)."""
    m = T if isinstance(T, Margins) else margins(T)
    stack = np.asarray(weights, float)
    one = stack.ndim == 2
    stack = stack[None] if one else stack
    q, k = len(stack), stack.shape[-1]
    safe = m.safe[:, None]
    d_o = m.cells @ stack.reshape(q, k * k).T / safe  # (N, q)
    # D_e = rows @ w @ cols per weight, by matrix products (a sum over a length-7 axis is slow).
    rw = (m.rows @ stack.transpose(1, 0, 2).reshape(k, q * k)) * np.tile(m.cols, q)  # (N, q * k)
    d_e = rw @ np.kron(np.eye(q), np.ones((k, 1))) / safe ** 2  # (N, q)
    parts = [m.finish(d_o[:, i], d_e[:, i]) for i in range(q)]
    if one:
        return (*parts[0], float(stack[0].max()))
    return np.stack([p[0] for p in parts]), np.stack([p[1] for p in parts]), stack.max((1, 2))


def gwet_parts(T, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Gwet's AC1 (nominal weights) or AC2 of two raters' tables T (..., K, K) or their Margins:
    p_a = sum(v * O) with agreement weights v = 1 - w; p_e = sum(v) / (q (q - 1)) * sum(pi (1 - pi))
    with pi the mean of the two margins and q = 7 categories (all classes of the scale, used or
    not). Equal to multi_gwet_parts with two ratings per unit."""
    m = T if isinstance(T, Margins) else margins(T)
    safe = m.safe
    v = 1.0 - weights
    pa = m.cells @ v.ravel() / safe
    pi = (m.rows + m.cols) / (2.0 * safe[:, None])
    pe = v.sum() / (K * (K - 1)) * (pi * (1.0 - pi)).sum(1)
    return (*m.finish(1.0 - pa, 1.0 - pe), float(weights.max()))


def multi_gwet_parts(C: np.ndarray, W: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Gwet's AC1/AC2 for any number of raters per unit (Gwet 2014, irrCAC's raw-data formula):
    C (U, K) category counts per kind of unit, W (B, U) how many units of each kind. Units with
    fewer than two ratings are left out (and should not be passed)."""
    C = np.asarray(C, float)
    v = 1.0 - weights
    r = C.sum(1)
    ok = r >= 2
    safe_r = np.where(ok, r, 2.0)
    per_unit_pa = np.where(ok, (C * (C @ v.T - 1.0)).sum(1) / (safe_r * (safe_r - 1.0)), 0.0)
    n = W @ ok.astype(float)
    safe = np.where(n > 0, n, 1.0)
    pa = (W @ per_unit_pa) / safe
    pi = (W @ (C / safe_r[:, None] * ok[:, None])) / safe[:, None]
    pe = v.sum() / (K * (K - 1)) * (pi * (1.0 - pi)).sum(1)
    empty = n == 0
    return np.where(empty, np.nan, 1.0 - pa), np.where(empty, np.nan, 1.0 - pe), float(weights.max())


def fleiss_parts(C: np.ndarray, W: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Fleiss' kappa, in Gwet's generalisation to any number of ratings per unit and to weights
    (irrCAC's `fleiss`; C, W as for multi_gwet_parts): p_a as for Gwet's coefficients, p_e =
    sum(v_kl pi_k pi_l) with pi the mean per-unit shares and v = 1 - w the agreement weights. With
    a fixed number of ratings and nominal weights it is Fleiss' 1971 kappa (statsmodels')."""
    C = np.asarray(C, float)
    v = 1.0 - weights
    r = C.sum(1)
    ok = r >= 2
    safe_r = np.where(ok, r, 2.0)
    per_unit_pa = np.where(ok, (C * (C @ v.T - 1.0)).sum(1) / (safe_r * (safe_r - 1.0)), 0.0)
    n = W @ ok.astype(float)
    safe = np.where(n > 0, n, 1.0)
    pa = (W @ per_unit_pa) / safe
    pi = (W @ (C / safe_r[:, None] * ok[:, None])) / safe[:, None]
    pe = ((pi @ v) * pi).sum(1)
    empty = n == 0
    return np.where(empty, np.nan, 1.0 - pa), np.where(empty, np.nan, 1.0 - pe), float(weights.max())


def coincidences(C: np.ndarray) -> np.ndarray:
    """Krippendorff's coincidences of each kind of unit, (U, K, K): o_ck = sum over ordered pairs
    of its values (c, k), divided by m_u - 1; units with fewer than two values give nothing."""
    C = np.asarray(C, float)
    m = C.sum(1)
    f = C[:, :, None] * C[:, None, :] - C[:, :, None] * np.eye(K)
    f /= np.maximum(m - 1, 1)[:, None, None]
    f[m < 2] = 0.0
    return f


def ordinal_metric(n_v: np.ndarray) -> np.ndarray:
    """Krippendorff's squared ordinal distances (..., K, K) in CLASSES order from the pairable
    value totals n_v (..., K): (sum of n_g from c to k on the scale, minus (n_c + n_k) / 2)^2."""
    n_v = np.asarray(n_v, float)
    scale = n_v[..., ORDINAL_INDEX]  # scale order
    cum = np.cumsum(scale, -1)
    lo = np.minimum.outer(np.arange(K), np.arange(K))
    hi = np.maximum.outer(np.arange(K), np.arange(K))
    between = cum[..., hi] - cum[..., lo] + scale[..., lo]  # sum of n_g for g from lo to hi
    d = (between - (scale[..., :, None] + scale[..., None, :]) / 2.0) ** 2
    d = d * (1.0 - np.eye(K))
    back = np.argsort(ORDINAL_INDEX)  # scale order -> CLASSES order
    return d[..., back[:, None], back[None, :]]


def alpha_parts(C: np.ndarray, W: np.ndarray, metric: str = "nominal") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Krippendorff's alpha (nominal or ordinal metric) of units C (U, K) weighted by W (B, U):
    D_o = sum(o * delta^2) / n, D_e = sum(n_c n_k delta^2) / (n (n - 1)), from the coincidence
    matrix o and its margins n_c. d_max (per row) is the largest delta^2 between two classes used."""
    o = (W @ coincidences(C).reshape(len(C), K * K)).reshape(-1, K, K)
    n_v = o.sum(1)
    n = n_v.sum(1)
    delta = np.broadcast_to(1.0 - np.eye(K), o.shape) if metric == "nominal" else ordinal_metric(n_v)
    safe = np.where(n > 1, n, 2.0)
    d_o = (o * delta).sum((1, 2)) / safe
    d_e = np.einsum("bi,bij,bj->b", n_v, delta, n_v) / (safe * (safe - 1.0))
    empty = n < 2
    # The largest distance between two classes in use (the ordinal metric grows with the counts
    # of the classes between, so unused extremes would overstate it).
    used = n_v > 0
    d_max = np.where(used[:, :, None] & used[:, None, :], delta, 0.0).max((1, 2)) if len(delta) else np.zeros(0)
    return np.where(empty, np.nan, d_o), np.where(empty, np.nan, d_e), d_max


# --------------------------------------------------------------------------------------------
# Proportions: (hits, eligible) per kind of unit, from its category counts C (U, K). A two-rater
# comparison is the same thing with one unit per table cell (two ratings each).


def proportion_parts(name: str, C: np.ndarray, cls: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return (hits, eligible) per unit of proportion `name`: the proportion is sum(hits) /
    sum(eligible) over the units. `cls` is the class of specific_agreement, which counts ordered
    pairs of reads: eligible n_c (m - 1), hits n_c (n_c - 1)."""
    C = np.asarray(C)
    m = C.sum(1)
    double = m >= 2
    left, right = C[:, SIDES == 1].sum(1), C[:, SIDES == 2].sum(1)
    if name in ("percent_agreement", "agreement"):
        return double & (C.max(1) == m), double
    if name == "side_agreement":
        return (left + right >= 2) & ((left == 0) | (right == 0)), left + right >= 2
    if name == "degree_agreement":
        per_degree = np.stack([C[:, DEGREES == d].sum(1) for d in range(4)], 1)
        return double & (per_degree.max(1) == m), double
    if name == "lr_swap_rate":
        return double & (left > 0) & (right > 0), double
    if name == "specific_agreement":
        c = C[:, cls]
        return np.where(double, c * (c - 1), 0), np.where(double, c * (m - 1), 0)
    raise KeyError(f"{name} is not a proportion")


# --------------------------------------------------------------------------------------------
# Label-level helpers (model evaluation, tests)


def codes(labels: Sequence) -> np.ndarray:
    """Class index 0-6 (CLASSES order) of each label; -1 for anything that is not a class."""
    index = {c: i for i, c in enumerate(CLASSES)}
    return np.array([index.get(x, -1) if isinstance(x, str) else -1 for x in labels], dtype=int)


def table(reference: Sequence, labels: Sequence) -> np.ndarray:
    """The K x K table of reference (rows) against labels (columns), CLASSES order; pairs where
    either is not a class are left out."""
    a, b = codes(reference), codes(labels)
    ok = (a >= 0) & (b >= 0)
    return np.bincount(a[ok] * K + b[ok], minlength=K * K).reshape(K, K)


def weighted_kappa(reference: Sequence, labels: Sequence, weights: str = "nominal") -> float:
    """Cohen's kappa of two label sequences with the named weights (WEIGHTS: nominal, linear,
    quadratic, degree_linear, degree_quadratic, laterality); NaN where undefined."""
    d_o, d_e, _ = kappa_parts(table(reference, labels), WEIGHTS[weights])
    return float(coefficient(d_o, d_e))


def gwet(reference: Sequence, labels: Sequence, weights: str = "nominal") -> float:
    """Gwet's AC1 (nominal) or AC2 (other weights) of two label sequences; NaN where undefined."""
    d_o, d_e, _ = gwet_parts(table(reference, labels), WEIGHTS[weights])
    return float(coefficient(d_o, d_e))
