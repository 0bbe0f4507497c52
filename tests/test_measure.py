"""The measurement pipeline: statuses for bad photos, stored and resumable runs, overrides, CLI."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from asymmetry.crop import crop_box, crop_for_model
from asymmetry.measure import measure_photo
from labeling.workflow.measuring import effective_flags, measure_pending, pending
from labeling.demo.project import load_demo
from labeling.demo.synthetic import make_image
from tests.conftest import SHELL, ROOT, jpeg_bytes

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL (tests/conftest.py)


def test_statuses_for_no_face_two_faces_and_unreadable(astronaut):
    blank = jpeg_bytes(np.full((400, 400, 3), 128, np.uint8))
    assert measure_photo(blank, False).status == "no_face"
    face = np.asarray(__import__("PIL.Image", fromlist=["Image"]).fromarray(astronaut).crop((130, 30, 320, 250)))
    two = jpeg_bytes(np.concatenate([face, face], axis=1))
    m = measure_photo(two, False)
    assert m.status == "multiple_faces" and m.indices is None
    best = measure_photo(two, False, pick_best=True)
    assert best.status == "ok" and best.landmarks.n_faces == 2 and best.indices is not None
    assert measure_photo(b"not an image", False).status == "unreadable"


def test_run_stores_once_and_resumes(db, data_dir):
    load_demo(db, data_dir, subjects=1, seed=5, workers=1, actor=SHELL)
    assert len(pending(db, data_dir)) == 7
    counts = measure_pending(db, data_dir, workers=1, actor=SHELL)
    assert counts == {"ok": 7}
    assert pending(db, data_dir) == [] and measure_pending(db, data_dir, actor=SHELL) == {}
    row = db.execute("SELECT points, indices, side, rgas FROM measurements LIMIT 1").fetchone()
    assert len(json.loads(row[0])) == 68 and "rgas_signed" in json.loads(row[1])


def test_a_new_index_version_is_recomputed_from_stored_points_without_dlib(db, data_dir, monkeypatch):
    import asymmetry.measure as measure
    import labeling.workflow.measuring as measuring
    from asymmetry.indices import compute_indices

    load_demo(db, data_dir, subjects=1, seed=5, workers=1, actor=SHELL)
    measure_pending(db, data_dir, workers=1, actor=SHELL)
    # A formula change: the same landmarks, a new index version. No photo may be decoded again.
    monkeypatch.setattr(measuring, "INDEX_VERSION", "asym-test-next")
    monkeypatch.setattr(measure, "measure_photo", lambda *a, **k: pytest.fail("decoded a photo again"))
    assert len(pending(db, data_dir)) == 7
    assert measure_pending(db, data_dir, workers=1, actor=SHELL) == {"reindexed": 7}
    assert pending(db, data_dir) == [] and measure_pending(db, data_dir, workers=1, actor=SHELL) == {}
    rows = db.execute("SELECT m.points, i.mirrored, m.rgas, m.side, m.blurry, m.distant, m.sharpness FROM measurements m "
                      "JOIN images i ON i.id = m.image_id WHERE index_version = 'asym-test-next'").fetchall()
    old = db.execute("SELECT blurry, distant, sharpness FROM measurements WHERE index_version <> 'asym-test-next' "
                     "ORDER BY image_id").fetchall()
    assert len(rows) == 7 and [r[4:] for r in rows] == old  # quality flags carried over
    for points, mirrored, rgas, side, *_ in rows:
        ind = compute_indices(np.asarray(json.loads(points)), bool(mirrored))
        assert rgas == pytest.approx(ind.rgas) and side == ind.side


def test_quality_override_wins_and_is_append_only(db, data_dir):
    load_demo(db, data_dir, subjects=1, seed=5, workers=1, actor=SHELL)
    measure_pending(db, data_dir, workers=1, actor=SHELL)
    image_id = db.execute("SELECT id FROM images LIMIT 1").fetchone()[0]
    from labeling.workflow.measuring import override_flag

    override_flag(db, image_id, "blurry", True, SHELL, "motion blur on the lips")
    assert effective_flags(db, image_id)["blurry"] is True
    override_flag(db, image_id, "blurry", False, SHELL, "second look: fine")
    assert effective_flags(db, image_id)["blurry"] is False
    with pytest.raises(Exception, match="append-only"):
        db.execute("DELETE FROM quality_overrides")


def test_crop_is_square_and_widened_for_the_movement():
    jpeg = make_image("S", "MV2", "N", mirrored=False, seed=1, subject_seed=1).jpeg
    lm = measure_photo(jpeg, False).landmarks
    rest = crop_box(lm.points, "MV0", lm.size)
    brows = crop_box(lm.points, "MV2", lm.size)
    assert abs((rest[2] - rest[0]) - (rest[3] - rest[1])) < 1e-6
    assert brows[2] - brows[0] > rest[2] - rest[0]  # more forehead for the frontalis
    crop, status = crop_for_model(jpeg, "MV2")
    assert status == "ok" and crop.shape == (299, 299, 3) and crop.dtype == np.uint8
    assert crop_for_model(b"junk")[1] == "unreadable"


def test_cli_measure_prints_indices_and_overlay(tmp_path):
    img = tmp_path / "face.jpg"
    img.write_bytes(make_image("S", "MV4", "L3", mirrored=False, seed=2, subject_seed=2).jpeg)
    out = subprocess.run([sys.executable, "-m", "asymmetry", "measure", str(img), "--json", "--overlay", str(tmp_path / "o.png")],
                         cwd=ROOT, capture_output=True, text=True, env=os.environ)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)[0]
    assert d["status"] == "ok" and d["indices"]["side"] == "L" and len(d["face_box"]) == 4
    assert (tmp_path / "o.png").stat().st_size > 1000

def test_mirrored_photo_is_flipped_to_the_normal_camera_view():
    jpeg = make_image("S", "MV4", "L3", mirrored=True, seed=3, subject_seed=3).jpeg
    plain, _ = crop_for_model(jpeg, "MV4")
    flipped, status = crop_for_model(jpeg, "MV4", mirrored=True)
    assert status == "ok" and np.array_equal(flipped, plain[:, ::-1])

