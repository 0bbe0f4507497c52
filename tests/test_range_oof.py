"""Out-of-fold range classes (labeling/agreement/range_oof.py): every image classified by ranges learned
without its subject, so the asymmetry method's accuracy an auditor sees is not in-sample."""
from __future__ import annotations

import numpy as np
import pandas as pd

from asymmetry.ranges import learn_ranges
from labeling.agreement.range_oof import COLUMNS, out_of_fold_frame, subject_folds


def _project(n_subjects: int = 12, seed: int = 0):
    """Measurements and states of n_subjects x 3 images (MV0), labels N / L2 / R2 with separated
    clouds, plus subject 99: one R3 image far out, the only R3 of the project."""
    rng = np.random.default_rng(seed)
    centre = {"N": (0.0, 0.0), "L2": (0.08, 4.0), "R2": (-0.08, -4.0)}
    rows, image_id = [], 0
    for s in range(n_subjects):
        for label in ("N", "L2", "R2"):
            image_id += 1
            r, a = centre[label]
            rows.append({"image_id": image_id, "subject_id": s, "consensus": label, "movement": "MV0", "status": "ok",
                         "rgas": r + rng.normal(0, 0.01), "anas": a + rng.normal(0, 0.5)})
    rows.append({"image_id": 999, "subject_id": 99, "consensus": "R3", "movement": "MV0", "status": "ok",
                 "rgas": -0.3, "anas": -12.0})
    frame = pd.DataFrame(rows)
    return frame[["image_id", "movement", "status", "rgas", "anas"]], frame[["image_id", "subject_id", "consensus"]]


def test_folds_keep_every_subject_in_one_fold():
    subjects = pd.Series([1, 1, 2, 3, 3, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    folds = subject_folds(subjects)
    assert set(folds) == set(range(10))
    for s in subjects.unique():
        assert len(set(folds[subjects == s])) == 1
    assert set(subject_folds(pd.Series([1, 2, 3]))) == {0, 1, 2}
    assert (subject_folds(pd.Series([7, 7, 7])) == -1).all()


def test_each_image_is_classified_by_ranges_learned_without_its_subject():
    measurements, states = _project()
    oof = out_of_fold_frame(measurements, states, lo=5, hi=95, min_count=1).set_index("image_id")
    assert list(oof.columns) == ["movement", "fold", *COLUMNS]
    # In-sample, the stored table holds an R3 box made of image 999 alone and gives it back R3;
    # out-of-fold no other subject has an R3, so the nearest learned box is all it can get.
    in_sample = learn_ranges(states.rename(columns={"consensus": "label"}).merge(
        measurements.rename(columns={"rgas": "rgas_signed", "anas": "anas_signed"}), on="image_id"), min_count=1)
    assert in_sample.classify("MV0", -0.3, -12.0).range_class == "R3"
    assert oof.loc[999, "range_class (out-of-fold)"] in {"N", "L2", "R2"}
    # Any image: the same class as a table learned by hand on the other folds' subjects.
    full = states.merge(measurements, on="image_id")
    for image_id in (1, 17, 30, 999):
        fold = oof.loc[image_id, "fold"]
        others = full[full["image_id"].map(oof["fold"]) != fold]
        table = learn_ranges(others.rename(columns={"consensus": "label", "rgas": "rgas_signed",
                                                    "anas": "anas_signed"}), lo=5, hi=95, min_count=1)
        me = full[full["image_id"] == image_id].iloc[0]
        assert oof.loc[image_id, "range_class (out-of-fold)"] == table.classify("MV0", me.rgas, me.anas).range_class
    # The separated clouds are still recognised out of fold.
    labels = states.set_index("image_id")["consensus"]
    right = (oof["range_class (out-of-fold)"] == labels.reindex(oof.index)).drop(999)
    assert right.mean() > 0.95


def test_images_without_consensus_are_classified_but_never_learned_from():
    measurements, states = _project()
    states = states.copy()
    states.loc[states["image_id"] == 2, "consensus"] = None  # the reads disagreed on image 2
    measurements = measurements.copy()
    measurements.loc[measurements["image_id"] == 2, ["rgas", "anas"]] = (0.5, 20.0)  # far from every cloud
    oof = out_of_fold_frame(measurements, states, min_count=1).set_index("image_id")
    assert oof.loc[2, "range_class (out-of-fold)"] is not None  # classified (nearest box) ...
    # ... and never part of a box: no learned box anywhere reaches its point.
    full = states.merge(measurements, on="image_id")
    learned = learn_ranges(full[full["consensus"].notna()].rename(columns={
        "consensus": "label", "rgas": "rgas_signed", "anas": "anas_signed"}), min_count=1)
    assert all(c.rgas_hi < 0.5 for c in learned.cells)


def test_one_subject_has_no_out_of_fold_estimate():
    measurements, states = _project()
    states = states.assign(subject_id=1)
    oof = out_of_fold_frame(measurements, states)
    assert len(oof) == len(measurements) and oof[list(COLUMNS)].isna().all().all()
    empty = out_of_fold_frame(measurements.iloc[0:0], states)
    assert list(empty.columns) == ["image_id", "movement", "fold", *COLUMNS] and empty.empty


def test_learning_from_a_frame_gives_the_table_of_learning_row_by_row():
    # learn_ranges groups a DataFrame by column (ten tables from 100,000 rows in about a second);
    # the cells, counts, messages and version are those of the row-by-row path.
    measurements, states = _project()
    rows = states.rename(columns={"consensus": "label"}).merge(
        measurements.rename(columns={"rgas": "rgas_signed", "anas": "anas_signed"}), on="image_id")
    rows.loc[3, "rgas_signed"] = np.nan
    rows.loc[4, "movement"] = ""
    rows.loc[5, "label"] = None
    rows.loc[6, ["movement", "label"]] = None
    by_frame, by_rows = learn_ranges(rows, min_count=2), learn_ranges(rows.to_dict("records"), min_count=2)
    assert by_frame == by_rows and by_frame.version == by_rows.version
    assert by_frame.n_skipped == 4 and len(by_frame.messages) == 4
