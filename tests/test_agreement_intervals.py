"""The intervals: Clopper-Pearson on the effective sample size for proportions (checked by hand
and against statsmodels), the subject-cluster bootstrap for coefficients (checked against a
brute-force cluster bootstrap that resamples subjects and recomputes each coefficient with
scikit-learn, krippendorff and statsmodels), and intervals that keep a width at 0% and 100%."""
from __future__ import annotations

import math

import krippendorff
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa
from statsmodels.stats.proportion import proportion_confint

from labeling.agreement import summary as ag
from labeling.agreement import measures as am
from labeling.agreement.stats import Bootstrap, profiles_by_group, proportion_ci, resample


def df_factor(subjects: int) -> float:
    return (stats.norm.ppf(0.975) / stats.t.ppf(0.975, subjects - 1)) ** 2


# ---- proportions -----------------------------------------------------------------------------


def test_one_unit_per_subject_is_clopper_pearson_on_subjects_minus_one():
    # n_s = 1: v = S/(S-1) * S p (1 - p) / S^2 = p (1 - p) / (S - 1), so n_eff = S - 1, then the
    # few-subjects factor (z / t_{S-1})^2; the interval is statsmodels' Clopper-Pearson on that.
    k, S = 27, 40
    ks = np.r_[np.ones(k), np.zeros(S - k)]
    ci = proportion_ci(k, S, (ks ** 2).sum(), ks.sum(), S, S)
    n_eff = (S - 1) * df_factor(S)
    assert ci.n_eff[0] == pytest.approx(n_eff)
    lo, hi = proportion_confint(k / S * n_eff, n_eff, alpha=0.05, method="beta")
    assert (ci.lo[0], ci.hi[0]) == pytest.approx((lo, hi))
    assert ci.deff[0] == pytest.approx(S / (S - 1))


def test_seven_copies_per_subject_count_as_one_subject():
    # Each subject's 7 photos all agree or all disagree: n = 280 images carry the information of
    # 40 subjects, and the interval is the one-unit-per-subject interval, not a 7x narrower one.
    S, m = 40, 7
    ks = np.r_[np.full(36, m), np.zeros(4)]
    clustered = proportion_ci(ks.sum(), S * m, (ks ** 2).sum(), (ks * m).sum(), S * m * m, S)
    single = proportion_ci(36, S, 36, 36, S, S)
    assert (clustered.lo[0], clustered.hi[0]) == pytest.approx((single.lo[0], single.hi[0]))
    assert clustered.deff[0] == pytest.approx(m * S / (S - 1))
    naive = proportion_confint(36 * m, S * m, method="beta")
    assert clustered.hi[0] - clustered.lo[0] > 2 * (naive[1] - naive[0])


def test_at_0_and_100_percent_the_interval_rests_on_the_subjects():
    # All 280 images agree: the data cannot estimate how alike a subject's photos are, so the
    # interval is Clopper-Pearson on the 40 subjects: [0.025^(1/40), 1], not [1, 1].
    ci = proportion_ci([280, 0], [280, 280], [40 * 49, 0], [40 * 49, 0], [40 * 49, 40 * 49], [40, 40])
    assert ci.lo[0] == pytest.approx(0.025 ** (1 / 40)) and ci.hi[0] == 1.0
    assert ci.lo[1] == 0.0 and ci.hi[1] == pytest.approx(1 - 0.025 ** (1 / 40))
    # One subject: one independent unit, whatever its number of photos.
    one = proportion_ci(7, 7, 49, 49, 49, 1)
    assert one.n_eff[0] == 1 and one.lo[0] == pytest.approx(0.025)
    empty = proportion_ci(0, 0, 0, 0, 0, 0)
    assert math.isnan(empty.p[0]) and math.isnan(empty.lo[0])


def test_the_issue_example_is_wider_than_the_image_interval():
    # 40 subjects x 7 movements, errors in 2 subjects (3 photos each): the image interval ignores
    # that the errors cluster; ours is wider and never reaches past 1.
    rows = [("s%d" % s, mv, ("N", "L1" if s < 2 and mv < 3 else "N")) for s in range(40) for mv in range(7)]
    reads = pd.DataFrame([{"image_id": f"{s}-{mv}", "reader": r, "label": lab, "subject": s,
                           "submitted_at": pd.Timestamp("2024-01-01") + pd.Timedelta(minutes=k)}
                          for s, mv, labels in rows for k, (r, lab) in enumerate(zip("AB", labels))])
    e = ag.read_agreement(reads, n_boot=200).percent_agreement
    assert e.value == pytest.approx(274 / 280) and e.subjects == 40
    image_lo, image_hi = proportion_confint(274, 280, method="beta")
    assert e.ci_low < image_lo and e.ci_high <= 1.0 and (e.ci_high - e.ci_low) > (image_hi - image_lo)


# ---- the subject-cluster bootstrap -------------------------------------------------------------


def small_project(seed: int = 0, subjects: int = 24) -> pd.DataFrame:
    """Two readers, 3-7 photos per subject; a subject is easy (readers agree 90%) or hard (40%),
    so disagreements cluster within subjects."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(subjects):
        hard = rng.random() < 0.3
        truth = rng.integers(0, 7)
        for mv in range(rng.integers(3, 8)):
            for k, reader in enumerate("AB"):
                lab = truth if rng.random() < (0.4 if hard else 0.9) else rng.integers(0, 7)
                rows.append({"image_id": f"{s}-{mv}", "subject": f"S{s}", "reader": reader,
                             "label": am.CLASSES[lab], "movement": f"MV{mv}",
                             "submitted_at": pd.Timestamp("2024-01-01") + pd.Timedelta(minutes=k)})
    return pd.DataFrame(rows)


def brute_force(reads: pd.DataFrame, n_boot: int, seed: int) -> dict[str, tuple[float, float]]:
    """The textbook cluster bootstrap: draw the subjects with replacement, stack their photos (a
    subject drawn twice counts twice) and recompute each coefficient with the libraries."""
    per_image = reads.sort_values("submitted_at").groupby(["subject", "image_id"])["label"].apply(list)
    by_subject = {s: list(g) for s, g in per_image.groupby(level=0)}
    subjects = sorted(by_subject)
    rng = np.random.default_rng(seed)
    reps = {"cohen_kappa": [], "krippendorff_alpha": [], "fleiss_kappa": []}
    for _ in range(n_boot):
        images = [img for s in rng.choice(subjects, len(subjects)) for img in by_subject[s]]
        first, second = [i[0] for i in images], [i[1] for i in images]
        reps["cohen_kappa"].append(cohen_kappa_score(first, second, labels=list(am.CLASSES)))
        C = np.array([[img.count(c) for c in am.CLASSES] for img in images])
        reps["krippendorff_alpha"].append(krippendorff.alpha(value_counts=C, level_of_measurement="nominal"))
        reps["fleiss_kappa"].append(fleiss_kappa(C))  # two reads per image: Fleiss' 1971 kappa
    return {k: tuple(np.nanquantile(v, [0.025, 0.975])) for k, v in reps.items()}


@pytest.mark.parametrize("seed", [0, 1])
def test_cluster_bootstrap_equals_a_brute_force_one(seed):
    reads = small_project(seed)
    fast = ag.read_agreement(reads, n_boot=2000, seed=seed)
    assert fast.unit == "subject" and fast.n_subjects == 24
    slow = brute_force(reads, 800, seed + 100)
    for name, (lo, hi) in slow.items():
        e = fast.measures[name]
        # Independent Monte Carlo draws: the 2.5% and 97.5% quantiles agree within about 6 of
        # their standard errors (about 0.005 here).
        assert e.ci_low == pytest.approx(lo, abs=0.03) and e.ci_high == pytest.approx(hi, abs=0.03), name


def test_resampling_subjects_is_wider_than_resampling_images_when_they_cluster():
    reads = small_project(3, subjects=30)
    by_subject = ag.read_agreement(reads, n_boot=1000).cohen_kappa
    by_image = ag.read_agreement(reads.drop(columns="subject"), n_boot=1000).cohen_kappa
    assert ag.read_agreement(reads.drop(columns="subject"), n_boot=0).unit == "image (no subject known)"
    assert by_subject.value == by_image.value
    assert by_subject.ci_high - by_subject.ci_low > 1.2 * (by_image.ci_high - by_image.ci_low)


@pytest.mark.parametrize("n_subjects", [90, 5_000_000])  # counted in a dense range, or numbered first
def test_profiles_hold_every_subject_once_and_resamples_keep_their_total(n_subjects):
    rng = np.random.default_rng(5)
    group, value = rng.integers(0, 3, 2000), rng.integers(0, 49, 2000)
    subject = rng.choice(rng.integers(0, n_subjects, 90), 2000)
    profiles = profiles_by_group(group, subject, value, 49, 3, n_subjects)
    frame = pd.DataFrame({"g": group, "s": subject, "v": value})
    for g, p in enumerate(profiles):
        # Brute force: each subject's counts per value, then how many subjects share each vector.
        vectors = frame[frame.g == g].groupby("s")["v"].apply(lambda v: tuple(np.bincount(v, minlength=49)))
        expected = vectors.value_counts()
        got = {tuple(int(x) for x in row): int(m) for row, m in zip(p.vectors, p.mult)}
        assert got == {k: int(v) for k, v in expected.items()}
        assert p.totals() == pytest.approx(np.bincount(frame[frame.g == g].v, minlength=49))
        W = resample(p, Bootstrap(200, 1))
        # A resample holds as many subjects as the group, so its counts are sums of whole profiles.
        assert W.shape == (200, 49) and np.allclose(W.sum(1) % 1, 0)


def test_every_subject_alike_gives_no_false_precision():
    # Twelve subjects with the same two photos each: every resample is the same data. Proportions
    # still get an interval (on 12 subjects); a coefficient below 1 gets none, with the reason.
    pairs = [("N", "N"), ("L1", "N")]
    reads = pd.DataFrame([{"image_id": f"{s}-{i}", "subject": s, "reader": r, "label": lab,
                           "submitted_at": pd.Timestamp("2024-01-01") + pd.Timedelta(minutes=k)}
                          for s in range(12) for i, p in enumerate(pairs) for k, (r, lab) in enumerate(zip("AB", p))])
    r = ag.read_agreement(reads, n_boot=100)
    assert r.percent_agreement.value == 0.5 and r.percent_agreement.ci_low < 0.5 < r.percent_agreement.ci_high
    assert r.cohen_kappa.value == 0.0 and math.isnan(r.cohen_kappa.ci_low) and "alike" in r.cohen_kappa.reason


def test_perfect_agreement_lower_limit_is_the_formula():
    reads = ag.read_agreement(small_project(4).assign(label=lambda f: f.groupby("image_id")["label"].transform("first")),
                              n_boot=200)
    e, agree = reads.cohen_kappa, reads.percent_agreement
    assert e.value == 1.0 and agree.value == 1.0 and e.ci_high == 1.0
    # Observed margins (first = second read): D_e = sum over a != b of p_a p_b.
    prep = ag.prepare_reads(small_project(4).assign(label=lambda f: f.groupby("image_id")["label"].transform("first")))
    p = np.bincount(prep.images["first"], minlength=7) / len(prep.images)
    d_e = 1 - (p ** 2).sum()
    assert e.ci_low == pytest.approx(1 - (1 - agree.ci_low) / d_e)


def test_model_runs_resample_subjects_and_say_so():
    rng = np.random.default_rng(8)
    subjects = np.repeat([f"{i:016x}" for i in range(30)], 7)
    truth = np.repeat(rng.choice(am.CLASSES, 30), 7)
    wrong = np.repeat(rng.random(30) < 0.2, 7)  # a subject's photos are all right or all wrong
    preds = pd.DataFrame({"label": truth, "predicted": np.where(wrong, "N", truth), "subject": subjects,
                          "image_sha256": [f"{i:064x}" for i in range(210)], "movement": "MV1"})
    with_subject = ag.evaluate_runs(preds, n_boot=300)[0]
    without = ag.evaluate_runs(preds.drop(columns="subject"), n_boot=300)[0]
    assert with_subject.unit == "subject" and with_subject.n_subjects == 30
    assert without.unit == "image (no subject known)" and without.n_subjects == 210
    width = {c.unit: c.agreement.ci_high - c.agreement.ci_low for c in (with_subject, without)}
    assert width["subject"] > 2 * width["image (no subject known)"]
    assert ag.compare_runs([with_subject])["resampling_unit"].tolist() == ["subject"]
