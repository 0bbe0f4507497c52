"""Agreement measures against hand-made cases whose values are derived by hand in the comments."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from labeling.agreement import summary as ag
from labeling.agreement import plots
from labeling.csvsafe import safe_csv_cell, safe_csv_frame


def reads_from_pairs(pairs, readers=("A", "B"), movements=None, sources=None, synthetic=None, start="2024-01-01"):
    """Two reads per image (reader A then B, an hour apart) from (label_a, label_b) pairs."""
    rows = []
    t0 = pd.Timestamp(start, tz="UTC")
    for i, labels in enumerate(pairs):
        for k, label in enumerate(labels):
            rows.append({"image_id": f"img{i}", "reader": readers[k % len(readers)], "label": label,
                         "submitted_at": t0 + pd.Timedelta(days=i, hours=k), "duration_ms": 1000 * (k + 1),
                         "movement": movements[i] if movements else "MV1",
                         "source": sources[i] if sources else "hospital",
                         "synthetic": synthetic[i] if synthetic else False})
    return pd.DataFrame(rows)


# Three classes, ten images (reader A first):
#   (N,N) x3, (L1,L1) x3, (R1,R1) x2, (N,L1) x1, (L1,R1) x1
HAND = [("N", "N")] * 3 + [("L1", "L1")] * 3 + [("R1", "R1")] * 2 + [("N", "L1"), ("L1", "R1")]


def test_hand_case_every_measure():
    r = ag.read_agreement(reads_from_pairs(HAND), n_boot=200)
    assert r.n_images == r.n_double_read == 10 and r.n_readers == 2
    # Percent: 8 of 10 pairs coincide.
    assert r.percent_agreement.value == pytest.approx(0.8)
    # Side: pairs where both reads name a side are (L1,L1)x3, (R1,R1)x2, (L1,R1): 5 of 6 agree.
    assert r.side_agreement.value == pytest.approx(5 / 6) and r.side_agreement.n == 6
    # Degree: only (N,L1) differs in degree (0 vs 1); (L1,R1) share degree 1: 9 of 10.
    assert r.degree_agreement.value == pytest.approx(0.9)
    # Cohen: p_o = 0.8; A's marginals N .4, L1 .4, R1 .2; B's N .3, L1 .4, R1 .3;
    # p_e = .12 + .16 + .06 = .34; kappa = (.8 - .34) / .66 = 23/33.
    assert r.cohen_kappa.value == pytest.approx(23 / 33)
    # Laterality-weighted: w(N,L1) = w(N,R1) = 1/3, w(L1,R1) = 1 (opposite sides).
    # Observed weighted disagreement: (1/3 + 1) / 10 = 2/15.
    # Expected: 1/3 * (.4*.4 + .4*.3 + .4*.3 + .2*.3) + 1 * (.4*.3 + .2*.4) = .46/3 + .2 = 53/150.
    # kappa_w = 1 - (2/15) / (53/150) = 33/53.
    assert r.kappa_laterality.value == pytest.approx(33 / 53)
    # L/R swap: only (L1,R1) names both sides: 1 of 10 images.
    assert r.lr_swap_rate.value == pytest.approx(0.1) and r.lr_swap_rate.n == 10
    # Gwet's AC1: p_a = .8; pi = N 7/20, L1 8/20, R1 5/20; p_e = sum pi (1 - pi) / (7 - 1) = .655 / 6;
    # AC1 = (.8 - .655/6) / (1 - .655/6) = (4.8 - .655) / (6 - .655) = 4.145 / 5.345.
    assert r.gwet_ac1.value == pytest.approx(4.145 / 5.345)
    # Fleiss: P_bar = .8; pooled p: N 7/20, L1 8/20, R1 5/20; P_e = .1225 + .16 + .0625 = .345;
    # kappa = (.8 - .345) / .655 = 91/131.
    assert r.fleiss_kappa.value == pytest.approx(91 / 131)
    # Krippendorff (nominal, 2 coders): D_o = 4/20 pairable disagreements; D_e = (400 - (49+64+25)) / 380;
    # alpha = 1 - (4/20) / (262/380) = 93/131.
    assert r.krippendorff_alpha.value == pytest.approx(93 / 131)
    # The library oracle for Cohen's kappa agrees.
    a, b = zip(*HAND)
    assert r.cohen_kappa.value == pytest.approx(cohen_kappa_score(a, b))
    for e in r.estimates().values():
        assert e.ci_low <= e.value <= e.ci_high


def test_two_by_two_kappa():
    # (N,N) x4, (L1,L1) x4, (N,L1), (L1,N): p_o = .8, both marginals .5/.5, p_e = .5,
    # kappa = (.8 - .5) / (1 - .5) = 0.6. With two classes one weight scales out, so every weighted
    # kappa is 0.6 too.
    r = ag.read_agreement(reads_from_pairs([("N", "N")] * 4 + [("L1", "L1")] * 4 + [("N", "L1"), ("L1", "N")]),
                          n_boot=0)
    assert r.cohen_kappa.value == pytest.approx(0.6)
    for name in ("kappa_linear", "kappa_quadratic", "kappa_degree_linear", "kappa_degree_quadratic",
                 "kappa_laterality"):
        assert r.measures[name].value == pytest.approx(0.6), name
    assert math.isnan(r.cohen_kappa.ci_low)  # n_boot=0: no CI


def test_degree_weights():
    w = pd.DataFrame(ag.DEGREE_WEIGHTS, index=ag.CLASSES, columns=ag.CLASSES)
    assert np.allclose(np.diag(w), 0) and np.allclose(w, w.T)
    assert w.loc["N", "L1"] == pytest.approx(1 / 3) and w.loc["N", "R3"] == pytest.approx(1)
    assert w.loc["L1", "L3"] == pytest.approx(2 / 3) and w.loc["R2", "R3"] == pytest.approx(1 / 3)
    assert w.loc["L1", "R1"] == 1 and w.loc["L3", "R3"] == 1


def test_three_readers_fleiss_alpha_and_pairs():
    # Four images, readers A, B, C: (N,N,N), (L1,L1,L1), (N,N,L1), (L1,L1,N).
    # Fleiss: P_i = 1, 1, 1/3, 1/3 -> P_bar = 2/3; p_N = p_L1 = .5 -> P_e = .5; kappa = 1/3.
    # Krippendorff: coincidences NN = 3+1, L1L1 = 3+1, N-L1 = L1-N = 2; n = 12;
    # D_e cells 6*6/11 twice = 72/11; alpha = 1 - 4 / (72/11) = 7/18.
    reads = reads_from_pairs([("N",) * 3, ("L1",) * 3, ("N", "N", "L1"), ("L1", "L1", "N")], readers=("A", "B", "C"))
    r = ag.read_agreement(reads, n_boot=100)
    assert r.fleiss_kappa.value == pytest.approx(1 / 3)
    assert r.krippendorff_alpha.value == pytest.approx(7 / 18)
    assert r.percent_agreement.value == pytest.approx(0.5)  # unanimous on 2 of 4
    assert r.cohen_kappa.value == pytest.approx(1.0)  # first vs second read = A vs B, always equal
    pairs = {(c.meta["reader_a"], c.meta["reader_b"]): c for c in ag.reader_pairs(reads, n_boot=0)}
    assert set(pairs) == {("A", "B"), ("A", "C"), ("B", "C")}
    # A vs C: (N,N), (L1,L1), (N,L1), (L1,N): p_o = .5, p_e = .5, kappa = 0.
    assert pairs[("A", "C")].cohen_kappa.value == pytest.approx(0.0)
    assert pairs[("A", "C")].agreement.value == pytest.approx(0.5)


def test_fleiss_uses_every_image_whatever_its_number_of_reads():
    # (N,N), (L1,L1), (N,L1), (N,N,N): Gwet's generalisation (irrCAC's), not only the 2-read images.
    # Per image agreeing pairs: 1, 1, 0, 1 -> p_a = 3/4; shares pi: N (1 + 0 + 1/2 + 1) / 4 = 5/8,
    # L1 3/8 -> p_e = 25/64 + 9/64 = 34/64; kappa = (3/4 - 34/64) / (1 - 34/64) = 14/30.
    reads = reads_from_pairs([("N", "N"), ("L1", "L1"), ("N", "L1"), ("N", "N", "N")], readers=("A", "B", "C"))
    f = ag.read_agreement(reads, n_boot=0).fleiss_kappa
    assert f.n == 4 and f.value == pytest.approx(14 / 30) and f.reason is None


def test_one_class_only_is_undefined_not_an_error():
    r = ag.read_agreement(reads_from_pairs([("N", "N")] * 5), n_boot=50)
    # 100% on five images (each its own subject): Clopper-Pearson on 5, never the point [1, 1].
    assert r.percent_agreement.value == 1.0 and r.percent_agreement.ci_high == 1.0
    assert r.percent_agreement.ci_low == pytest.approx(0.025 ** (1 / 5))
    assert r.degree_agreement.value == 1.0 and r.lr_swap_rate.value == 0.0 and r.lr_swap_rate.ci_high > 0
    assert math.isnan(r.side_agreement.value) and r.side_agreement.n == 0 and "side" in r.side_agreement.reason
    for name in ("cohen_kappa", "kappa_linear", "kappa_laterality", "fleiss_kappa", "fleiss_kappa_quadratic",
                 "krippendorff_alpha", "krippendorff_alpha_ordinal"):
        e = r.measures[name]
        assert math.isnan(e.value) and "single class" in e.reason and e.n == 5, name
    # Gwet's chance agreement counts all 7 categories, so AC1 stays defined: 1, with an interval below.
    assert r.gwet_ac1.value == 1.0 and r.gwet_ac1.ci_low < 1.0 and "perfectly" in r.gwet_ac1.reason


def test_all_agree_gives_one_and_intervals_that_do_not_collapse():
    r = ag.read_agreement(reads_from_pairs([("N", "N"), ("L2", "L2"), ("R3", "R3")] * 4), n_boot=100)
    for name, e in r.estimates().items():
        assert e.value == pytest.approx(0.0 if name == "lr_swap_rate" else 1.0), name
        # Every interval keeps a width at the edge: Clopper-Pearson for proportions, the perfect-
        # agreement lower limit for coefficients (every resample agrees perfectly).
        assert e.ci_low < e.ci_high, name
        assert (e.ci_low == 0.0) if name == "lr_swap_rate" else (e.ci_high == 1.0), name


@pytest.mark.parametrize("reads", [
    reads_from_pairs([("N",), ("L1",), ("R2",)], readers=("A",)),                 # one reader, one read each
    reads_from_pairs([("N",), ("L1",), ("R2",), ("L1",)], readers=("A",)).assign(  # two readers, no overlap
        reader=["A", "B", "A", "B"]),
    pd.DataFrame(),                                                               # empty, no columns
    pd.DataFrame(columns=list(ag.READ_COLUMNS)),                                  # empty, with columns
])
def test_nothing_to_compare_gives_nan_with_reasons(reads):
    r = ag.read_agreement(reads)
    assert r.n_double_read == 0
    for e in r.estimates().values():
        assert math.isnan(e.value) and e.n == 0 and e.reason
    assert ag.reader_pairs(reads) == []
    assert ag.class_agreement(reads)["specific_agreement"].isna().all()
    s = ag.summary(reads, finals=pd.DataFrame({"image_id": [], "final_label": []}), n_boot=20)
    json.dumps(s, allow_nan=False)
    assert s["agreement"]["cohen_kappa"]["value"] is None
    assert s["agreement"]["cohen_kappa"]["reason"] == "no image has two graded reads"


def test_one_reader_reading_twice_is_intra_reader_agreement():
    reads = reads_from_pairs([("N", "N"), ("L1", "L2"), ("R1", "R1")], readers=("A",))
    pairs = ag.reader_pairs(reads, n_boot=0)
    assert len(pairs) == 1 and pairs[0].name == "A vs A" and pairs[0].n == 3
    assert pairs[0].agreement.value == pytest.approx(2 / 3)
    assert pairs[0].confusion.loc["L1", "L2"] == 1  # first read in rows


def test_cannot_grade_and_invalid_labels_are_excluded_and_counted():
    reads = reads_from_pairs([("N", "N"), ("L1", None), ("L1", "L1"), ("R1", "XX")])
    r = ag.read_agreement(reads, n_boot=0)
    assert (r.n_cannot_grade, r.n_invalid_label, r.n_double_read) == (1, 1, 2)
    assert r.percent_agreement.value == 1.0
    dist = ag.reader_label_distribution(reads).set_index(["reader", "label"])
    assert dist.loc[("B", "cannot grade"), "n"] == 1


def test_image_order_follows_submission_time_not_row_order():
    reads = reads_from_pairs([("N", "L1")]).iloc[::-1]  # B's later read comes first in the frame
    prep = ag.prepare_reads(reads)
    assert (prep.images.loc[0, "first"], prep.images.loc[0, "second"]) == (0, 1)  # N then L1


def test_bootstrap_is_seeded():
    reads = reads_from_pairs(HAND * 3)
    a = ag.read_agreement(reads, n_boot=300, seed=4).cohen_kappa
    b = ag.read_agreement(reads, n_boot=300, seed=4).cohen_kappa
    c = ag.read_agreement(reads, n_boot=300, seed=5).cohen_kappa
    assert a == b and (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)
    wider = ag.read_agreement(reads, n_boot=300, seed=4, confidence=0.99).cohen_kappa
    assert wider.ci_low <= a.ci_low and wider.ci_high >= a.ci_high


def test_breakdowns_per_movement_source_synthetic():
    pairs = [("N", "N"), ("L1", "L1"), ("N", "L1"), ("L2", "L3")]
    reads = reads_from_pairs(pairs, movements=["MV1", "MV1", "MV4", "MV4"], sources=["hospital", "mobile"] * 2,
                             synthetic=[True, False, True, False])
    mv = ag.agreement_by(reads, "movement", n_boot=0).set_index("movement")
    assert list(mv.index) == ["MV1", "MV4"]
    assert mv.loc["MV1", "percent_agreement"] == 1.0 and mv.loc["MV4", "percent_agreement"] == 0.0
    assert mv.loc["MV1", "cohen_kappa"] == pytest.approx(1.0)
    # MV4: (N,L1), (L2,L3) differ; degree agreement 0; side: (L2,L3) only lateral pair, same side.
    assert mv.loc["MV4", "degree_agreement"] == 0.0 and mv.loc["MV4", "side_agreement"] == 1.0
    src = ag.agreement_by(reads, "source", n_boot=0).set_index("source")
    assert src.loc["hospital", "percent_agreement"] == pytest.approx(0.5) and src.loc["hospital", "n_images"] == 2
    syn = ag.agreement_by(reads, "synthetic", n_boot=0)
    assert list(syn["synthetic"]) == ["real", "synthetic"] and syn["percent_agreement"].tolist() == [0.5, 0.5]


def test_per_class_specific_agreement():
    per = ag.class_agreement(reads_from_pairs(HAND), n_boot=0).set_index("class")
    # Specific agreement = 2 n_cc / (reads of c by A + reads of c by B):
    # N: 2*3 / (4 + 3) = 6/7; L1: 2*3 / (4 + 4) = 3/4; R1: 2*2 / (2 + 3) = 4/5.
    assert per.loc["N", "specific_agreement"] == pytest.approx(6 / 7)
    assert per.loc["L1", "specific_agreement"] == pytest.approx(3 / 4)
    assert per.loc["R1", "specific_agreement"] == pytest.approx(4 / 5)
    assert math.isnan(per.loc["L3", "specific_agreement"]) and per.loc["L3", "n_reads"] == 0
    # One-vs-rest kappa for R1: table [[2, 0], [1, 7]] -> p_o = .9, p_e = .2*.3 + .8*.7 = .62,
    # kappa = .28 / .38 = 14/19.
    assert per.loc["R1", "kappa_one_vs_rest"] == pytest.approx(14 / 19)
    assert list(per.index) == ["L3", "L2", "L1", "N", "R1", "R2", "R3"]  # scale order


def test_reader_pair_orientation_and_confusion_axes():
    reads = reads_from_pairs([("N", "L1"), ("L2", "L2")], readers=("zoe", "adam"))
    (pair,) = ag.reader_pairs(reads, n_boot=0)
    assert (pair.meta["reader_a"], pair.meta["reader_b"]) == ("adam", "zoe")
    cm = pair.confusion
    scale = ["L3", "L2", "L1", "N", "R1", "R2", "R3"]
    assert list(cm.index) == scale and list(cm.columns) == scale
    assert cm.loc["L1", "N"] == 1 and cm.loc["L2", "L2"] == 1 and cm.to_numpy().sum() == 2
    assert cm.index.name == "reader adam" and cm.columns.name == "reader zoe"


def test_check_rates():
    checks = pd.DataFrame({"image_id": range(110),
                           "check1": ["agree"] * 97 + ["disagree"] * 3 + [None] * 10,
                           "check2": ["accepted"] * 93 + ["mismatch"] * 7 + [None] * 10})
    rates = ag.check_rates(checks, n_boot=200)
    assert rates.check1.value == pytest.approx(0.97) and rates.check1.n == 100
    assert rates.check2.value == pytest.approx(0.93) and rates.check2.n == 100
    assert rates.check1.ci_low < 0.97 < rates.check1.ci_high
    empty = ag.check_rates(None)
    assert math.isnan(empty.check1.value) and empty.check1.reason == "no check-1 result"


def test_confusion_frame_matches_sklearn_and_keeps_absent_classes():
    ref = ["N", "N", "L1", "R3", None]
    lab = ["N", "L1", "L1", "R3", "N"]
    cm = ag.confusion_frame(ref, lab)
    assert cm.shape == (7, 7) and cm.loc["L3"].sum() == 0
    expected = confusion_matrix(ref[:4], lab[:4], labels=list(ag.ORDINAL_ORDER))
    assert (cm.to_numpy() == expected).all() and list(cm.index) == ["L3", "L2", "L1", "N", "R1", "R2", "R3"]


def test_model_evaluation_precision_sensitivity_accuracy():
    # true:      N  N  L1 L1 L1 R2
    # predicted: N  L1 L1 L1 N  R2
    # precision: N 1/2 (one of two predicted N right), L1 2/3, R2 1; sensitivity: N 1/2, L1 2/3, R2 1;
    # accuracy 4/6; never-predicted classes have NaN precision, absent classes NaN sensitivity.
    preds = pd.DataFrame({"image_id": range(6), "movement": ["MV1", "MV1", "MV2", "MV2", "MV2", "MV3"],
                          "label": ["N", "N", "L1", "L1", "L1", "R2"], "predicted": ["N", "L1", "L1", "L1", "N", "R2"],
                          "prob_N": 0.5})
    (run,) = ag.evaluate_runs(preds, n_boot=100)
    pc = run.per_class.set_index("class")
    assert pc.loc["N", "precision"] == pytest.approx(0.5) and pc.loc["L1", "precision"] == pytest.approx(2 / 3)
    assert pc.loc["N", "sensitivity"] == pytest.approx(0.5) and pc.loc["R2", "sensitivity"] == 1.0
    assert math.isnan(pc.loc["L3", "precision"]) and math.isnan(pc.loc["L3", "sensitivity"])
    assert run.agreement.value == pytest.approx(4 / 6) and run.name == "model"
    norm = run.confusion_normalised
    assert norm.loc["N", ["N", "L1"]].tolist() == [0.5, 0.5] and norm.loc["L3"].isna().all()
    assert run.balanced_accuracy == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    mv = run.per_movement.set_index("movement")
    assert mv.loc["MV1", "agreement"] == 0.5 and mv.loc["MV2", "agreement"] == pytest.approx(2 / 3)


def test_precision_and_sensitivity_equal_scikit_learn():
    from sklearn.metrics import precision_recall_fscore_support

    rng = np.random.default_rng(3)
    ref = rng.choice(["N", "L1", "L2", "R3"], 300)
    lab = np.where(rng.random(300) < 0.6, ref, rng.choice(["N", "L1", "R1"], 300))
    pc = ag.compare_labels(ref, lab, n_boot=0).per_class
    precision, sensitivity, _, _ = precision_recall_fscore_support(ref, lab, labels=list(ag.ORDINAL_ORDER),
                                                                   zero_division=np.nan)
    np.testing.assert_allclose(pc["precision"], precision, equal_nan=True)
    np.testing.assert_allclose(pc["sensitivity"], sensitivity, equal_nan=True)


def test_runs_side_by_side_and_movement_table():
    base = pd.DataFrame({"image_id": range(4), "movement": ["MV1", "MV1", "MV2", "MV2"],
                         "label": ["N", "L1", "L2", "R1"]})
    preds = {"idfnp": base.assign(predicted=["N", "L1", "L2", "R1"], arch="idfnp"),
             "resnet50": base.assign(predicted=["N", "L1", "L2", "N"], arch="resnet50")}
    runs = ag.evaluate_runs(preds, n_boot=0)
    table9 = ag.compare_runs(runs)
    assert table9["run"].tolist() == ["idfnp", "resnet50"] and table9["accuracy"].tolist() == [1.0, 0.75]
    assert table9.loc[1, "arch"] == "resnet50"
    reads = reads_from_pairs([("N", "N"), ("L1", "L2"), ("L2", "L2"), ("R1", "R1")],
                             movements=["MV1", "MV1", "MV2", "MV2"])
    finals = pd.DataFrame({"image_id": [f"img{i}" for i in range(4)], "final_label": ["N", "L1", "L2", "R1"]})
    ranges = pd.DataFrame({"image_id": finals["image_id"], "range_class": ["N", "L2", "L2", "R1"],
                           "range_class_anas": ["N", "N", "N", "N"]})
    asym = ag.asymmetry_vs_final(ranges, finals, reads, n_boot=0)
    assert [c.name for c in asym] == ["asymmetry range_class", "asymmetry range_class_anas"]
    assert asym[0].agreement.value == 0.75 and asym[1].agreement.value == 0.25
    t7 = ag.movement_table(ag.agreement_by(reads, "movement", n_boot=0), asym + runs).set_index("movement")
    assert list(t7.index) == [*ag.MOVEMENTS, "all"]
    assert t7.loc["MV1", "asymmetry range_class"] == 0.5 and t7.loc["MV2", "resnet50"] == 0.5
    assert t7.loc["MV1", "neurologists (double-read agreement)"] == 0.5
    assert t7.loc["all", "neurologists (double-read agreement)"] == 0.75 and t7.loc["all", "idfnp"] == 1.0
    assert math.isnan(t7.loc["MV0", "idfnp"])


def test_readers_vs_final():
    reads = reads_from_pairs([("N", "N"), ("L1", "L2")])
    finals = pd.DataFrame({"image_id": ["img0", "img1"], "final_label": ["N", "L2"]})
    by = {c.name: c for c in ag.readers_vs_final(reads, finals, n_boot=0)}
    assert by["A"].agreement.value == 0.5 and by["B"].agreement.value == 1.0
    assert by["A"].confusion.loc["L2", "L1"] == 1  # final in rows


def random_reads(seed: int, n_images: int = 150) -> pd.DataFrame:
    """2-5 reads per image by five readers (a reader may read an image twice), rows shuffled, a
    few cannot-grade reads, reads without a reader or a duration, a missing movement."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_images):
        truth = rng.integers(0, 7)
        for _ in range(rng.integers(2, 6)):
            label = ag.CLASSES[truth] if rng.random() < 0.6 else ag.CLASSES[rng.integers(0, 7)]
            reader = ("ann", "bob", "cy", "dee", "eve")[rng.integers(0, 5)] if rng.random() > 0.05 else None
            at = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=int(rng.integers(500)))
            rows.append({"image_id": i, "reader": reader,
                         "label": None if rng.random() < 0.04 else label,
                         "submitted_at": at,
                         "duration_ms": None if rng.random() < 0.05 else int(rng.integers(500, 20000)),
                         "movement": None if i == 3 else f"MV{i % 7}", "source": "hospital", "synthetic": False})
    return pd.DataFrame(rows).sample(frac=1, random_state=seed)


def test_reader_pairs_equal_one_pair_at_a_time_and_sklearn():
    # reader_pairs counts every pair of every image at once and bootstraps all pairs in one
    # vectorised pass (estimate_groups); each pair must come out exactly as compare_labels gives
    # it from that pair's own list of reads, and its kappa as scikit-learn computes it.
    reads = random_reads(3)
    prep = ag.prepare_reads(reads)
    graded = prep.reads[(prep.reads["code"] >= 0) & prep.reads["reader"].notna()]
    pairs: dict = {}
    for _, g in graded.groupby("image"):  # sorted by time within the image
        rows = list(g.itertuples())
        for x in range(len(rows)):
            for y in range(x + 1, len(rows)):
                a, b = rows[x], rows[y]
                if b.reader < a.reader:
                    a, b = b, a
                pairs.setdefault((a.reader, b.reader), []).append((a.label, b.label, a.movement, a.image_id))
    got = ag.reader_pairs(reads, n_boot=200, seed=2)
    assert [(c.meta["reader_a"], c.meta["reader_b"]) for c in got] == sorted(pairs)
    for c in got:
        la, lb, mv, image = zip(*pairs[(c.meta["reader_a"], c.meta["reader_b"])])
        # No subject given: the image is the cluster, so an image's several pairs resample together.
        one = ag.compare_labels(la, lb, movement=mv, subject=image, n_boot=200, seed=2)
        for measure in ag.PAIR_NAMES:
            x, y = c.measures[measure], one.measures[measure]
            assert (x.n, x.subjects, x.reason) == (y.n, y.subjects, y.reason), (c.name, measure)
            # Matrix products over 1 or 50 groups may round the last bit differently.
            np.testing.assert_allclose([x.value, x.ci_low, x.ci_high], [y.value, y.ci_low, y.ci_high], rtol=1e-12,
                                       atol=1e-12, err_msg=f"{c.name} {measure}")
        assert (c.confusion.to_numpy() == one.confusion.to_numpy()).all()
        pd.testing.assert_frame_equal(c.per_class, one.per_class, check_dtype=False)
        if math.isfinite(c.cohen_kappa.value):
            assert c.cohen_kappa.value == pytest.approx(cohen_kappa_score(la, lb))


def test_label_distribution_and_reading_times_equal_pandas():
    # Both are computed from integer reader codes with numpy; pandas' crosstab and groupby on the
    # names are the reference (reads without a reader name are left out, but count in 'all').
    reads = random_reads(5)
    prep = ag.prepare_reads(reads)
    r = prep.reads[prep.reads["code"] >= -1]
    name = np.where(r["code"] >= 0, np.array(ag.CLASSES + (ag.CANNOT_GRADE,))[r["code"]], ag.CANNOT_GRADE)
    t = pd.crosstab(r["reader"].astype(str).to_numpy(), name).reindex(
        columns=[*ag.ORDINAL_ORDER, ag.CANNOT_GRADE], fill_value=0)
    dist = ag.reader_label_distribution(reads)
    assert dist["reader"].tolist() == np.repeat(t.index, ag.K + 1).tolist()
    assert (dist["n"].to_numpy() == t.to_numpy().ravel()).all()
    assert (dist["share"].to_numpy() == t.div(t.sum(axis=1), axis=0).to_numpy().ravel()).all()
    timed = prep.reads[prep.reads["duration_ms"].notna()].assign(seconds=lambda f: f["duration_ms"] / 1000.0)
    both = pd.concat([timed.assign(reader=timed["reader"].astype(str)), timed.assign(reader="all")])
    g = both.groupby("reader", sort=True)["seconds"]
    expected = pd.concat([g.size().rename("n"), g.quantile([0.05, 0.25, 0.5, 0.75, 0.95]).unstack(),
                          g.mean().rename("mean")], axis=1).reset_index()
    times = ag.reading_time_summary(reads)
    assert times["reader"].tolist() == expected["reader"].tolist() and "all" in times["reader"].tolist()
    # numpy's quantile and pandas' groupby quantile interpolate alike, up to the last bit.
    np.testing.assert_allclose(times.drop(columns="reader").to_numpy(float),
                               expected.drop(columns="reader").to_numpy(float), rtol=1e-12)


def test_over_time_distribution_and_reading_times():
    reads = reads_from_pairs([("N", "N"), ("L1", "L2"), ("N", "N"), ("R1", "R1")], start="2024-01-01")
    reads.loc[reads["image_id"].isin(["img2", "img3"]), "submitted_at"] += pd.Timedelta(days=14)
    ot = ag.agreement_over_time(reads, "W")
    assert ot["n_images"].tolist() == [2, 2] and ot["percent_agreement"].tolist() == [0.5, 1.0]
    dist = ag.reader_label_distribution(reads)
    assert dist.groupby("reader")["share"].sum().round(9).eq(1).all()
    times = ag.reading_time_summary(reads).set_index("reader")
    assert times.loc["A", "median"] == 1.0 and times.loc["B", "median"] == 2.0 and times.loc["all", "n"] == 8


def test_published_figures_and_headline():
    pub = ag.published_figures()
    hb = pub[pub["statistic"].str.startswith("Cohen")].iloc[0]
    assert hb["low"] == 0.54 and "Reitzen" in hb["source"]
    assert {"check-1 agreement", "check-2 agreement", "side agreement", "degree agreement"} <= set(pub["statistic"])
    result = ag.audit(reads_from_pairs(HAND), n_boot=50)
    head = result.headline().set_index("statistic")
    assert head.loc["side agreement", "ours"] == pytest.approx(5 / 6)
    assert head.loc["ICC", "ours_note"].iloc[0] == "not measured here"


def test_summary_is_json_and_report_csv_is_injection_safe():
    reads = reads_from_pairs(HAND, readers=("=HYPERLINK(\"x\")", "B"))
    finals = pd.DataFrame({"image_id": [f"img{i}" for i in range(10)], "final_label": [a for a, _ in HAND]})
    checks = pd.DataFrame({"image_id": finals["image_id"], "check1": ["agree"] * 8 + ["disagree"] * 2,
                           "check2": ["accepted"] * 7 + ["mismatch"] + [None] * 2})
    result = ag.audit(reads, finals, finals.rename(columns={"final_label": "range_class"}), checks, n_boot=50)
    s = result.to_dict()
    text = json.dumps(s, allow_nan=False)
    assert s["checks"]["check1"]["value"] == 0.8 and s["checks"]["check2"]["value"] == 0.875
    assert s["agreement"]["cohen_kappa"]["value"] == pytest.approx(23 / 33)
    assert len(s["reader_pairs"][0]["confusion"]["values"]) == 7 and "HYPERLINK" in text
    csv = ag.report_csv(result)
    assert "'=HYPERLINK" in csv and "\n=HYPERLINK" not in csv and ",=HYPERLINK" not in csv
    tables = pd.read_csv(pd.io.common.StringIO(csv))
    assert {"headline", "per_movement", "reader_pairs", "published"} <= set(tables["table"])


def test_safe_csv_cell():
    assert [safe_csv_cell(v) for v in ("=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "ok", "")] == \
        ["'=1+2", "'+1", "'-1", "'@SUM(A1)", "'\tx", "'\nx", "ok", ""]  # a CR becomes a (quoted) line feed
    assert safe_csv_cell(-0.5) == -0.5 and safe_csv_cell(None) is None
    f = safe_csv_frame(pd.DataFrame({"=a": ["=x", "y"], "n": [-1, 2]}))
    assert list(f.columns) == ["'=a", "n"] and f["'=a"].tolist() == ["'=x", "y"]
    assert f["n"].tolist() == [-1, 2]


def test_figures_build_with_data_and_when_empty():
    result = ag.audit(reads_from_pairs(HAND, movements=["MV1", "MV2"] * 5), n_boot=20)
    pair = result.reader_pairs[0]
    heat = plots.confusion_heatmap(pair.confusion, normalise=True)
    assert isinstance(heat, go.Figure) and len(heat.data[0].z) == 7
    for fig in (plots.agreement_over_time_figure(result.over_time),
                plots.label_distribution_figure(result.label_distribution),
                plots.reading_time_figure(result.reading_times),
                plots.agreement_over_time_figure(pd.DataFrame()),
                plots.label_distribution_figure(pd.DataFrame()),
                plots.reading_time_figure(pd.DataFrame()),
                plots.asymmetry_scatter(pd.DataFrame(), None)):
        assert isinstance(fig, go.Figure)
    points = pd.DataFrame({"rgas": [0.1, 0.5, -0.4], "anas": [0.0, 2.0, -1.5], "label": ["N", "L2", "R1"]})
    boxes = pd.DataFrame({"cls": ["L2", "R1"], "rgas_lo": [0.3, -0.6], "rgas_hi": [0.7, -0.2], "anas_lo": [1, -2],
                          "anas_hi": [3, -1], "n": [40, 3], "enough": [True, False]})
    fig = plots.asymmetry_scatter(points, boxes, movement="MV4", highlight={"rgas": 0.5, "anas": 2.5, "label": "img9"})
    assert len(fig.layout.shapes) == 2 and fig.layout.shapes[1].line.dash == "dash"
    assert fig.data[-1].marker.symbol == "star"


def test_report_html_is_self_contained_and_escaped():
    reads = reads_from_pairs(HAND, readers=("<script>alert(1)</script>", "B"))
    html = plots.report_html(ag.audit(reads, n_boot=20), title="Audit <b>")
    assert html.startswith("<!DOCTYPE html>") and "Audit &lt;b&gt;" in html
    assert "<script>alert(1)" not in html and "<script src" not in html.lower()
    assert "Plotly.newPlot" in html and len(html) > 1_000_000  # plotly.js is inline
    assert "Reitzen" in html


def test_a_week_of_data_is_drawn_by_day_and_never_in_milliseconds():
    # Seven images double-read over one week: days, not one weekly point on an axis plotly would
    # tick in fractions of a millisecond. One day of data: a single point on an axis a day wide.
    week = reads_from_pairs([("N", "N")] * 7)  # image i is read on day i
    ot = ag.agreement_over_time(week)
    assert ot["freq"].unique().tolist() == ["D"] and len(ot) == 7
    for frame in (ot, ag.agreement_over_time(reads_from_pairs([("N", "N")]))):
        axis = plots.agreement_over_time_figure(frame).layout.xaxis
        lo, hi = (pd.Timestamp(x) for x in axis.range)
        assert axis.dtick >= 86_400_000 and hi - lo >= pd.Timedelta(days=1) and axis.tickformat == "%d %b %Y"
    long = reads_from_pairs([("N", "N")] * 400)  # 400 days: months, at most about ten ticks
    ot = ag.agreement_over_time(long)
    assert ot["freq"].iloc[0] == "W"
    axis = plots.agreement_over_time_figure(ag.agreement_over_time(long, "M")).layout.xaxis
    assert axis.dtick == "M2" and axis.tickformat == "%b %Y"


def test_confusion_matrices_and_label_shares_are_in_scale_order():
    result = ag.audit(reads_from_pairs(HAND), n_boot=0)
    heat = plots.confusion_heatmap(result.reader_pairs[0].confusion)
    scale = ["L3", "L2", "L1", "N", "R1", "R2", "R3"]
    assert list(heat.data[0].y) == scale and list(heat.data[0].x) == scale
    assert result.to_dict()["reader_pairs"][0]["confusion"]["labels"] == scale
    assert list(dict.fromkeys(result.label_distribution["label"])) == [*scale, ag.CANNOT_GRADE]


def test_synthetic_data_is_marked_in_the_html_and_the_csv():
    synthetic = ag.audit(reads_from_pairs(HAND, synthetic=[True] * 10), n_boot=0)
    real = ag.audit(reads_from_pairs(HAND), n_boot=0)
    assert synthetic.synthetic and not real.synthetic
    html = plots.report_html(synthetic)
    body = html.split("<body>", 1)[1]
    assert body.startswith("<div class='synthetic'>SYNTHETIC DATA: 10 of the images")
    assert "<title>SYNTHETIC" in html and "SYNTHETIC DATA" in html.split("Methods paragraph")[1][:400]
    assert "SYNTHETIC" not in plots.report_html(real)
    assert ag.report_csv(synthetic).splitlines()[1].startswith("notice,0,notice,\"SYNTHETIC: 10 of the images")
    assert "SYNTHETIC" not in ag.report_csv(real)


def test_every_output_names_its_resampling_unit():
    reads = reads_from_pairs(HAND).assign(subject=[f"S{i // 4}" for i in range(20)])  # 2 images per subject
    result = ag.audit(reads, finals=pd.DataFrame({"image_id": [f"img{i}" for i in range(10)],
                                                  "final_label": [a for a, _ in HAND]}), n_boot=50)
    assert result.settings["resampling_unit"] == "subject" and result.settings["subjects"] == 5
    assert result.reads.n_subjects == 5 and result.reads.cohen_kappa.subjects == 5
    s = result.to_dict()
    for kind in ("reader_pairs", "readers_vs_final"):
        assert {c["resampling_unit"] for c in s[kind]} == {"subject"}, kind
    assert set(result.tables()["reader_pairs"]["resampling_unit"]) == {"subject"}
    assert result.per_movement["subjects"].tolist() == [5]
    assert "subject" in result.settings["ci"] and "Clopper-Pearson" in result.settings["proportion_interval"]
