"""The synthetic FNP generator moves what dlib sees: the paralysed side and its severity show
in the landmarks, sides follow the mirrored flag, and everything it makes is marked synthetic."""
import numpy as np

from asymmetry.landmarks import detect_landmarks
from labeling.demo.project import load_demo
from labeling.demo.painting import polygon_mask
from labeling.demo.synthetic import contact_sheet, make_image, render_face
from tests.conftest import SHELL


def _frame(p):
    """Points rotated so the pupil line is horizontal, centred on its midpoint, in IPD units."""
    left, right = p[36:42].mean(0), p[42:48].mean(0)
    v = right - left
    ipd = np.linalg.norm(v)
    c, s = v / ipd
    rot = np.array([[c, s], [-s, c]])
    return (p - (left + right) / 2) @ rot.T / ipd


def _mouth_drop_image_left(jpeg):
    """How much lower the image-left mouth corner sits than the image-right one (IPD units)."""
    lm = detect_landmarks(jpeg)
    assert lm.ok, lm.message
    q = _frame(lm.points)
    return q[48, 1] - q[54, 1]


def _lid_opening(jpeg):
    lm = detect_landmarks(jpeg)
    assert lm.ok
    q = _frame(lm.points)
    return float(np.mean([q[41, 1] - q[37, 1], q[40, 1] - q[38, 1], q[47, 1] - q[43, 1], q[46, 1] - q[44, 1]]))


SUBJECT = dict(seed=11, subject_seed=5)
SUBJECTS = (dict(seed=11, subject_seed=5), dict(seed=2, subject_seed=2), dict(seed=3, subject_seed=3))


def test_mouth_corner_drop_grows_with_severity_on_the_paralysed_side():
    # Not mirrored: the patient's left is on the image's right. In the grin the working corner goes
    # up and the paralysed one stays down at rest; dlib follows the difference only up to ~0.09 IPD
    # (its shape prior), so one subject's grades 2 and 3 can come out equal: the mean of three
    # subjects grows with every grade.
    drops = {lab: np.mean([_mouth_drop_image_left(make_image("S", "MV4", lab, mirrored=False, **subject).jpeg)
                           for subject in SUBJECTS]) for lab in ("N", "L1", "L2", "L3", "R1", "R2", "R3")}
    assert drops["L1"] < drops["N"] - 0.02 and drops["L3"] < drops["L2"] < drops["L1"]  # image-right corner lower
    assert drops["R1"] > drops["N"] + 0.02 and drops["R3"] > drops["R2"] > drops["R1"]  # image-left corner lower
    # dlib sees about half of the warp; measured 0.05-0.08 IPD at grade 3.
    assert drops["R3"] - drops["N"] > 0.04 and drops["N"] - drops["L3"] > 0.04


def test_mirrored_flag_puts_the_patients_side_on_the_other_image_side():
    plain = _mouth_drop_image_left(make_image("S", "MV4", "L3", mirrored=False, **SUBJECT).jpeg)
    mirrored = _mouth_drop_image_left(make_image("S", "MV4", "L3", mirrored=True, **SUBJECT).jpeg)
    normal = _mouth_drop_image_left(make_image("S", "MV4", "N", mirrored=False, **SUBJECT).jpeg)
    assert plain < normal < mirrored


def test_eye_closure_fails_more_with_severity():
    openings = [_lid_opening(make_image("S", "MV1", lab, mirrored=False, **SUBJECT).jpeg) for lab in ("N", "L1", "L2", "L3")]
    assert openings == sorted(openings) and openings[3] - openings[0] > 0.07  # measured 0.09


def _teeth_share(movement, label):
    """The share of the mouth (inside the outer lip line the warp aimed for) that shows teeth:
    pale, yellowish-white pixels, unlike lips (red) and skin (G/R ~0.87)."""
    img, pts = render_face(movement, label, mirrored=False, **SUBJECT)
    rgb = img[polygon_mask([pts[48:60]], img.shape[:2]) > 0.5].astype(float)
    return float(np.mean((rgb[:, 1] / rgb[:, 0] > 0.88) & (rgb[:, 1] > 150)))


def test_lips_close_at_rest_and_part_in_the_grin():
    # The astronaut smiles with her teeth showing; at rest, eyes closed, brows raised and cheeks puffed
    # her lips are together (no tooth between them), in the grin they part. Measured: 0.9-1.0% (the
    # lower lip's highlight) against 10% in the grin; a paralysed half keeps its lips closer.
    shut = {mv: _teeth_share(mv, "N") for mv in ("MV0", "MV1", "MV2", "MV3", "MV6")}
    assert max(shut.values()) < 0.02, shut
    grin = _teeth_share("MV4", "N")
    assert grin > 0.06 and _teeth_share("MV4", "R3") < 0.85 * grin


def _mouth_width(movement):
    lm = detect_landmarks(make_image("S", movement, "N", mirrored=False, **SUBJECT).jpeg)
    assert lm.ok, lm.message
    q = _frame(lm.points)
    return float(np.linalg.norm(q[54] - q[48]))


def test_whistling_narrows_and_the_grin_widens_the_mouth_dlib_sees():
    # Measured 0.82 / 0.95 / 1.13 IPD (dlib follows about half of the pucker's narrowing).
    rest = _mouth_width("MV0")
    assert _mouth_width("MV6") < 0.92 * rest and _mouth_width("MV4") > 1.1 * rest


def test_contact_sheet_is_marked_synthetic():
    sheet = np.asarray(contact_sheet(("N", "R3"), ("MV0", "MV4"), tile=100))
    assert sheet.shape[1] == 90 + 2 * 100 and sheet.shape[0] > 2 * 100
    banner = sheet[:20].reshape(-1, 3).astype(int)  # the red SYNTHETIC banner along the top
    assert np.mean((banner[:, 0] > 150) & (banner[:, 1] < 60)) > 0.7
    # Two different photos per row: the grin is not the face at rest.
    assert np.abs(sheet[60:, 90:190].astype(int) - sheet[60:, 190:290].astype(int)).mean() > 3


def test_subjects_differ_and_the_generator_is_deterministic():
    a = make_image("S", "MV0", "N", mirrored=False, seed=1, subject_seed=1).jpeg
    b = make_image("S", "MV0", "N", mirrored=False, seed=1, subject_seed=2).jpeg
    assert a == make_image("S", "MV0", "N", mirrored=False, seed=1, subject_seed=1).jpeg
    assert a != b
    la, lb = detect_landmarks(a), detect_landmarks(b)
    assert np.abs(_frame(la.points) - _frame(lb.points)).max() > 0.04  # measured 0.07


def test_demo_is_marked_synthetic_with_hidden_truth(db, data_dir):
    res = load_demo(db, data_dir, subjects=2, seed=3, simulate_readers=1.0, workers=2, actor=SHELL)
    assert res.images == 14 and res.report.added == 14 and not res.report.errors
    assert db.execute("SELECT count(*) FROM images WHERE synthetic = 0").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM subjects WHERE synthetic = 0").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM ground_truth").fetchone()[0] == 14
    # File names give nothing away about the class.
    for (name,) in db.execute("SELECT original_name FROM image_names"):
        assert not any(c in name.split("/")[-1] for c in ("L1", "L2", "L3", "R1", "R2", "R3", "_N"))
    # Perfect simulated readers agree with the truth on every read.
    wrong = db.execute("SELECT count(*) FROM reads r JOIN ground_truth g USING (image_id) "
                       "WHERE r.label <> g.label").fetchone()[0]
    assert db.execute("SELECT count(*) FROM reads WHERE simulated = 1").fetchone()[0] == 28 and wrong == 0
    again = load_demo(db, data_dir, subjects=2, seed=3, workers=1, actor=SHELL)
    assert again.report.added == 0 and again.report.already_present == 14
