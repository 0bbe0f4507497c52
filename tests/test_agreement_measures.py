"""Every named measure of labeling/agreement/measures.py against a case worked by hand (in the
comments) and against scikit-learn, statsmodels, krippendorff and irrCAC where they overlap; and
the audit's values (estimated on pattern counts) against the same libraries on raw reads."""
from __future__ import annotations

import krippendorff
import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT
from irrCAC.raw import CAC
from irrCAC.table import CAC as TableCAC
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import cohens_kappa, fleiss_kappa

from labeling.agreement import summary as ag
from labeling.agreement import measures as am
from model.evaluation import classification_metrics
from tests.test_agreement import HAND, reads_from_pairs

SCALE = ["L3", "L2", "L1", "N", "R1", "R2", "R3"]


def labels(codes):
    return [am.CLASSES[c] for c in codes]


def random_pairs(seed: int, n: int = 400, agree: float = 0.6):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 7, n)
    b = np.where(rng.random(n) < agree, a, rng.integers(0, 7, n))
    return labels(a), labels(b)


def value(parts) -> float:
    return float(np.asarray(am.coefficient(parts[0], parts[1])).ravel()[0])


# ---- the scale and the weights -----------------------------------------------------------------


def test_scale_and_weights():
    assert list(am.ORDINAL_ORDER) == SCALE
    w = {name: pd.DataFrame(m, index=am.CLASSES, columns=am.CLASSES) for name, m in am.WEIGHTS.items()}
    for name, m in w.items():
        assert np.allclose(np.diag(m), 0) and np.allclose(m, m.T) and m.to_numpy().max() == pytest.approx(1), name
    assert w["linear"].loc["L3", "R3"] == 1 and w["linear"].loc["L1", "R1"] == pytest.approx(2 / 6)
    assert w["linear"].loc["N", "L2"] == pytest.approx(2 / 6) and w["quadratic"].loc["N", "L2"] == pytest.approx(4 / 36)
    # Degree alone: left and right of one degree do not disagree at all.
    assert w["degree_linear"].loc["L2", "R2"] == 0 and w["degree_linear"].loc["N", "R3"] == 1
    assert w["degree_quadratic"].loc["L1", "R3"] == pytest.approx(4 / 9)
    # Laterality-aware (the former "weighted on degree"): any left against any right is 1.
    assert w["laterality"].loc["L1", "R1"] == 1 and w["laterality"].loc["L1", "L3"] == pytest.approx(2 / 3)
    assert w["laterality"].loc["N", "R2"] == pytest.approx(2 / 3)
    assert np.array_equal(ag.DEGREE_WEIGHTS, am.WEIGHTS["laterality"])  # the former name


# ---- two raters: hand-made ---------------------------------------------------------------------


def test_weighted_kappas_and_gwet_on_the_hand_case():
    # HAND: (N,N)x3, (L1,L1)x3, (R1,R1)x2, (N,L1), (L1,R1); rows (A) N .4 L1 .4 R1 .2, columns (B)
    # N .3 L1 .4 R1 .3. Scale positions N 0, L1 -1, R1 +1.
    a, b = zip(*HAND)
    # Linear |i-j|/6: D_o = (1/6 + 2/6) / 10 = 1/20; D_e = (1/6)(.16+.12+.12+.06) + (2/6)(.12+.08) = 43/300;
    # kappa = 1 - (1/20) / (43/300) = 28/43.
    assert am.weighted_kappa(a, b, "linear") == pytest.approx(28 / 43)
    # Quadratic ((i-j)/6)^2: D_o = (1/36 + 4/36) / 10 = 1/72; D_e = .46/36 + 4 * .2/36 = .035; 1 - 1/2.52.
    assert am.weighted_kappa(a, b, "quadratic") == pytest.approx(1 - 1 / 2.52)
    # Degree (N 0, L1 1, R1 1): only (N,L1) disagrees, weight 1/3: D_o = 1/30, D_e = .46/3: 18/23, and
    # the quadratic weight 1/9 scales out to the same 18/23.
    assert am.weighted_kappa(a, b, "degree_linear") == pytest.approx(18 / 23)
    assert am.weighted_kappa(a, b, "degree_quadratic") == pytest.approx(18 / 23)
    assert am.weighted_kappa(a, b, "laterality") == pytest.approx(33 / 53)  # worked in test_agreement.py
    assert am.weighted_kappa(a, b) == pytest.approx(23 / 33)
    # AC2, quadratic agreement weights v = 1 - ((i-j)/6)^2: p_a = (8 + 35/36 + 32/36) / 10 = 355/360;
    # sum of v over the 7 x 7 scale = 49 - 392/36; p_e = (49 - 392/36) / 42 * .655.
    pe = (49 - 392 / 36) / 42 * 0.655
    assert am.gwet(a, b, "quadratic") == pytest.approx((355 / 360 - pe) / (1 - pe))
    assert am.gwet(a, b) == pytest.approx(4.145 / 5.345)  # AC1, worked in test_agreement.py
    # Fleiss, quadratic weights: p_a as AC2's, 355/360; pi N .35, L1 .4, R1 .25 and
    # p_e = sum v pi pi = .345 + 2 (35/36 * .35 * .4 + 35/36 * .35 * .25 + 32/36 * .4 * .25).
    pe = 0.345 + 2 * (35 / 36 * 0.14 + 35 / 36 * 0.0875 + 32 / 36 * 0.1)
    fleiss_q = ag.read_agreement(reads_from_pairs(HAND), n_boot=0).fleiss_kappa_quadratic
    assert fleiss_q.value == pytest.approx((355 / 360 - pe) / (1 - pe))


def test_lr_swap_rate_and_proportions_by_hand():
    # Units: (L1,R2) swap; (L2,L2); (N,R1) names one side only; (R3,L3) swap; three reads (L1,L1,R1).
    C = np.zeros((5, 7), int)
    for u, unit in enumerate([("L1", "R2"), ("L2", "L2"), ("N", "R1"), ("R3", "L3"), ("L1", "L1", "R1")]):
        for c in unit:
            C[u, am.CLASSES.index(c)] += 1
    hits, eligible = am.proportion_parts("lr_swap_rate", C)
    assert hits.tolist() == [True, False, False, True, True] and eligible.all()
    hits, eligible = am.proportion_parts("side_agreement", C)
    assert eligible.tolist() == [True, True, False, True, True] and hits.tolist() == [False, True, False, False, False]
    hits, eligible = am.proportion_parts("degree_agreement", C)
    assert hits.tolist() == [False, True, False, True, True]
    # Specific agreement of L1 in the three-read unit: n_c (n_c - 1) = 2 of n_c (m - 1) = 4 ordered pairs.
    k, n = am.proportion_parts("specific_agreement", C, cls=am.CLASSES.index("L1"))
    assert (k[4], n[4]) == (2, 4) and (k[0], n[0]) == (0, 1)


def test_krippendorff_by_hand():
    # Units (L1,N), (N,N), (R1,R1): values L1 x1, N x3, R1 x2 (n = 6). Coincidences: L1-N 1 each way,
    # N-N 2, R1-R1 2. Ordinal delta^2 on L1 < N < R1: L1-N (4 - 2)^2 = 4, N-R1 (5 - 2.5)^2 = 6.25,
    # L1-R1 (6 - 1.5)^2 = 20.25. D_o = (4 + 4) / 6; D_e = (2*1*3*4 + 2*3*2*6.25 + 2*1*2*20.25) / 30 = 6;
    # alpha = 1 - (4/3) / 6 = 7/9. Nominal: D_o = 2/6, D_e = (6 + 12 + 4) / 30: alpha = 6/11.
    C = np.zeros((3, 7))
    for u, unit in enumerate([("L1", "N"), ("N", "N"), ("R1", "R1")]):
        for c in unit:
            C[u, am.CLASSES.index(c)] += 1
    W = np.ones((1, 3))
    assert value(am.alpha_parts(C, W, "ordinal")) == pytest.approx(7 / 9)
    assert value(am.alpha_parts(C, W, "nominal")) == pytest.approx(6 / 11)


# ---- two raters: the libraries -----------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cohen_family_equals_scikit_learn_and_statsmodels(seed):
    a, b = random_pairs(seed)
    signed = dict(zip(am.CLASSES, am.SIGNED))
    degree = dict(zip(am.CLASSES, am.DEGREES))
    assert am.weighted_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    for w in ("linear", "quadratic"):
        # On the signed scale L3 .. R3 (-3 .. 3), and on the degree alone (0 .. 3).
        assert am.weighted_kappa(a, b, w) == pytest.approx(
            cohen_kappa_score([signed[x] for x in a], [signed[x] for x in b], weights=w, labels=range(-3, 4)))
        assert am.weighted_kappa(a, b, f"degree_{w}") == pytest.approx(
            cohen_kappa_score([degree[x] for x in a], [degree[x] for x in b], weights=w, labels=range(4)))
    for w in am.WEIGHTS:
        assert am.weighted_kappa(a, b, w) == pytest.approx(
            float(cohens_kappa(am.table(a, b), weights=am.WEIGHTS[w], return_results=False))), w


@pytest.mark.parametrize("seed", [4, 5])
def test_gwet_two_raters_equals_irrcac(seed):
    a, b = random_pairs(seed, agree=0.8)
    T = pd.DataFrame(am.table(a, b))
    for name, w in (("nominal", "nominal"), ("quadratic", "quadratic"), ("linear", "linear")):
        expected = TableCAC(T, weights=1 - am.WEIGHTS[w], digits=12).gwet()["est"]["coefficient_value"]
        assert am.gwet(a, b, name) == pytest.approx(expected, abs=1e-9), name


def test_model_evaluation_uses_the_shared_definitions():
    a, b = random_pairs(6)
    m = classification_metrics(a, b, ["MV0"] * len(a))
    assert m["kappa"] == pytest.approx(am.weighted_kappa(a, b))
    assert m["kappa_linear"] == pytest.approx(am.weighted_kappa(a, b, "linear"))
    # The degree-only kappa it reported before (scikit-learn on degrees 0-3) is the same number.
    deg = dict(zip(am.CLASSES, am.DEGREES))
    assert m["degree_kappa_linear"] == pytest.approx(
        cohen_kappa_score([deg[x] for x in a], [deg[x] for x in b], weights="linear"))
    # and it does so without TensorFlow (in a fresh process: another test may have loaded it here).
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import sys, model.evaluation, labeling.agreement.measures; "
                          "print('tensorflow' in sys.modules)"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.stdout.strip() == "False", out.stderr[-2000:]


# ---- many raters: the libraries ----------------------------------------------------------------


def raters_frame(seed: int, n_units: int = 150, counts=(2, 3, 4), agree: float = 0.65):
    """(units x raters frame of class codes with NaN, count matrix C) with varying reads per unit."""
    rng = np.random.default_rng(seed)
    rows, C = [], np.zeros((n_units, 7))
    for u in range(n_units):
        truth = rng.integers(0, 7)
        m = rng.choice(counts)
        codes = [truth if rng.random() < agree else rng.integers(0, 7) for _ in range(m)]
        for c in codes:
            C[u, c] += 1
        rows.append(codes + [np.nan] * (max(counts) - m))
    return pd.DataFrame(rows, dtype=float), C


@pytest.mark.parametrize("seed, counts", [(7, (2,)), (8, (3,)), (9, (2, 3, 4))])
def test_gwet_fleiss_krippendorff_many_raters_equal_the_libraries(seed, counts):
    raw, C = raters_frame(seed, counts=counts)
    W = np.ones((1, len(C)))
    categories = list(range(7))
    for name, w in (("gwet_ac1", "nominal"), ("gwet_ac2", "quadratic")):
        # irrCAC in the scale's order, all 7 categories (our chance agreement counts all of them).
        scale_codes = raw.replace({c: float(list(am.ORDINAL_INDEX).index(c)) for c in categories})
        v = 1 - am.WEIGHTS[w][np.ix_(am.ORDINAL_INDEX, am.ORDINAL_INDEX)]
        expected = CAC(scale_codes, weights=v, categories=[float(c) for c in categories],
                       digits=12).gwet()["est"]["coefficient_value"]
        assert value(am.multi_gwet_parts(C, W, am.WEIGHTS[w])) == pytest.approx(expected, abs=1e-9), name
    in_scale = C[:, am.ORDINAL_INDEX]  # krippendorff reads the columns' order as the ordinal order
    for metric in ("nominal", "ordinal"):
        expected = krippendorff.alpha(value_counts=in_scale, level_of_measurement=metric)
        assert value(am.alpha_parts(C, W, metric)) == pytest.approx(expected), metric
    if len(counts) == 1:  # Fleiss' 1971 kappa needs a fixed count: statsmodels'
        assert value(am.fleiss_parts(C, W, am.WEIGHTS["nominal"])) == pytest.approx(fleiss_kappa(C.astype(int)))
    for w in ("nominal", "quadratic"):  # any count, and weighted: irrCAC's generalisation
        scale_codes = raw.replace({c: float(list(am.ORDINAL_INDEX).index(c)) for c in categories})
        v = 1 - am.WEIGHTS[w][np.ix_(am.ORDINAL_INDEX, am.ORDINAL_INDEX)]
        expected = CAC(scale_codes, weights=v, categories=[float(c) for c in categories],
                       digits=12).fleiss()["est"]["coefficient_value"]
        assert value(am.fleiss_parts(C, W, am.WEIGHTS[w])) == pytest.approx(expected, abs=1e-9), w


def test_the_audit_reports_the_libraries_values_on_raw_reads():
    # The audit estimates every measure from pattern counts (never per image); on reads with 2-4
    # graded reads per image its values must be the libraries' on the raw reads.
    rng = np.random.default_rng(11)
    rows = []
    for i in range(300):
        truth = rng.integers(0, 7)
        for k in range(rng.choice([2, 3, 3, 4])):
            lab = truth if rng.random() < 0.7 else rng.integers(0, 7)
            rows.append({"image_id": i, "reader": f"r{k}", "label": am.CLASSES[lab],
                         "submitted_at": pd.Timestamp("2024-01-01") + pd.Timedelta(minutes=k)})
    reads = pd.DataFrame(rows)
    r = ag.read_agreement(reads, n_boot=0)
    per_image = reads.groupby("image_id")["label"].apply(list)
    first, second = per_image.str[0], per_image.str[1]
    assert r.cohen_kappa.value == pytest.approx(cohen_kappa_score(first, second))
    signed = dict(zip(am.CLASSES, am.SIGNED))
    assert r.kappa_linear.value == pytest.approx(cohen_kappa_score(first.map(signed), second.map(signed),
                                                                   weights="linear"))
    C = np.array([[row.count(c) for c in am.CLASSES] for row in per_image])
    for metric, name in (("nominal", "krippendorff_alpha"), ("ordinal", "krippendorff_alpha_ordinal")):
        expected = krippendorff.alpha(value_counts=C[:, am.ORDINAL_INDEX], level_of_measurement=metric)
        assert r.measures[name].value == pytest.approx(expected), name
    raw = pd.DataFrame([[float(am.CLASSES.index(x)) for x in row] + [np.nan] * (4 - len(row)) for row in per_image])
    cac = CAC(raw, categories=[float(c) for c in range(7)], digits=12)
    assert r.gwet_ac1.value == pytest.approx(cac.gwet()["est"]["coefficient_value"], abs=1e-9)
    assert r.fleiss_kappa.value == pytest.approx(cac.fleiss()["est"]["coefficient_value"], abs=1e-9)
    assert r.fleiss_kappa.n == len(per_image)
    unanimous = np.mean([len(set(row)) == 1 for row in per_image])
    assert r.percent_agreement.value == pytest.approx(unanimous)
    swaps = np.mean([any(x[0] == "L" for x in row) and any(x[0] == "R" for x in row) for row in per_image])
    assert r.lr_swap_rate.value == pytest.approx(swaps)
