"""Landmarks corrected by hand, the domain side (no Streamlit): an append-only event that the
indices, check 2, the export crop, a later landmark model, the overlay, the audit log and the
command line all follow. On the SYNTHETIC demo photos, measured through dlib."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from asymmetry.indices import compute_indices, face_frame
from labeling.workflow.measuring import measure_pending
from db.access import transaction
from labeling.workflow import settings
from labeling.demo.project import load_demo
from labeling.workflow.landmark_edits import LandmarkEditError, correct_landmarks, corrected_images, landmark_state
from labeling.accounts.permissions import PermissionDenied
from labeling.accounts.users import add_user
from labeling.workflow.states import image_states, learn_and_store_ranges, run_check2
from tests.conftest import ROOT, SHELL


@pytest.fixture
def project(db, data_dir):
    """One synthetic subject (7 photos) measured, a coordinator, an adjudicator and a reader."""
    load_demo(db, data_dir, subjects=1, seed=5, workers=1, actor=SHELL)
    measure_pending(db, data_dir, workers=1, actor=SHELL)
    users = {r: add_user(db, f"u-{r}", "a long password", [r], actor=SHELL)
             for r in ("coordinator", "adjudicator", "reader")}
    return db, data_dir, users


def _first_image(db) -> int:
    return db.execute("SELECT image_id FROM measurements WHERE status = 'ok' ORDER BY image_id LIMIT 1").fetchone()[0]


def _lower(points: np.ndarray, k: int, amount: float = 0.15) -> np.ndarray:
    """`points` with point k moved down the face by `amount` eye-centre distances."""
    frame = face_frame(points)
    moved = points.copy()
    moved[k] += frame.v * amount * frame.ipd
    return moved


def _agreed_with_ranges(db, users):
    """Two readers agree on every image (the generator's class), so every image has a consensus;
    ranges learned from them with a minimum of 1. Returns (image_id -> class, the range table)."""
    settings.change(db, "range_min_count", 1, SHELL)
    truth = dict(db.execute("SELECT image_id, label FROM ground_truth").fetchall())
    second = add_user(db, "u-reader-2", "a long password", ["reader"], actor=SHELL)
    with transaction(db) as c:
        for image_id, label in truth.items():
            for reader in (users["reader"], second):
                c.execute("INSERT INTO reads (image_id, reader_id, label, submitted_at) VALUES (?,?,?,?)",
                          (image_id, reader.id, label, "2026-01-01T00:00:00.000+00:00"))
    return truth, learn_and_store_ranges(db, users["coordinator"])


def test_a_correction_is_stored_used_and_reported(project):
    db, data_dir, users = project
    image_id = _first_image(db)
    before = landmark_state(db, image_id)
    assert not before.corrected and np.array_equal(before.points, before.auto_points)
    res = correct_landmarks(db, users["adjudicator"], image_id, _lower(before.points, 54), "mouth corner on the lip")
    assert res.moved == [54]
    after = landmark_state(db, image_id)
    assert after.corrected and after.corrections[-1]["actor"] == "u-adjudicator"
    assert np.allclose(after.points[54], _lower(before.points, 54)[54], atol=0.01)
    assert np.array_equal(after.auto_points, before.points)  # dlib's points kept beside
    # The stored indices are those of the corrected points; the mouth droops on image right.
    expected = compute_indices(after.points, before.mirrored)
    assert after.indices["mas"] == pytest.approx(expected.mas) and after.indices["mas"] > before.indices["mas"]
    row = db.execute("SELECT rgas_signed, anas_signed, correction_id, message FROM measurements WHERE image_id = ? "
                     "ORDER BY id DESC LIMIT 1", [image_id]).fetchone()
    assert row[0] == pytest.approx(expected.rgas_signed) and row[1] == pytest.approx(expected.anas_signed)
    assert row[2] == res.correction_id and "corrected by hand" in row[3]
    assert res.after["rgas_signed"] == pytest.approx(expected.rgas_signed)
    assert res.before["rgas_signed"] == pytest.approx(before.indices["rgas_signed"])
    # The event: who, when, old and new points.
    event = db.execute("SELECT points, previous, moved, reason, actor, at FROM landmark_corrections").fetchone()
    assert np.allclose(json.loads(event[1]), before.points, atol=0.01) and json.loads(event[2]) == [54]
    assert event[3] == "mouth corner on the lip" and event[4] == "u-adjudicator" and event[5]
    audit = db.execute("SELECT actor, detail FROM audit_log WHERE action = 'landmarks.corrected'").fetchall()
    assert len(audit) == 1 and audit[0][0] == "u-adjudicator" and json.loads(audit[0][1])["moved"] == [54]
    # A second correction: the latest wins, dlib's points stay the first ones.
    correct_landmarks(db, users["coordinator"], image_id, _lower(after.points, 48), "")
    again = landmark_state(db, image_id)
    assert len(again.corrections) == 2 and np.array_equal(again.auto_points, before.points)
    table = corrected_images(db)
    assert table.to_dict("records") == [{"image_id": image_id, "corrections": 2, "moved": [48, 54],
                                         "last_actor": "u-coordinator", "last_at": again.corrections[-1]["at"],
                                         "in_use": True}]
    out = subprocess.run([sys.executable, "-m", "labeling", "landmarks", "--json"], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, "FNP_DATA_DIR": str(data_dir)})
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    assert listed["corrected_images"] == 1 and listed["images"][0]["moved"] == [48, 54]


def test_corrections_are_append_only_in_the_database(project):
    db, _, users = project
    image_id = _first_image(db)
    state = landmark_state(db, image_id)
    correct_landmarks(db, users["coordinator"], image_id, _lower(state.points, 8))
    for sql in ("UPDATE landmark_corrections SET actor = 'x'", "DELETE FROM landmark_corrections",
                "INSERT OR REPLACE INTO landmark_corrections (id, image_id, points, previous, moved, actor, at) "
                "SELECT id, image_id, points, previous, moved, 'x', at FROM landmark_corrections"):
        with pytest.raises(Exception, match="append-only"):
            db.execute(sql)


def test_what_is_refused_writes_nothing(project):
    db, _, users = project
    image_id = _first_image(db)
    state = landmark_state(db, image_id)
    with pytest.raises(PermissionDenied, match="may not"):
        correct_landmarks(db, users["reader"], image_id, _lower(state.points, 54))
    with pytest.raises(LandmarkEditError, match="no point was moved"):
        correct_landmarks(db, users["coordinator"], image_id, state.points)
    outside = state.points.copy()
    outside[8, 1] = state.size[1] + 50
    with pytest.raises(LandmarkEditError, match="point\\(s\\) 8 lie outside"):
        correct_landmarks(db, users["coordinator"], image_id, outside)
    with pytest.raises(LandmarkEditError, match="68"):
        correct_landmarks(db, users["coordinator"], image_id, state.points[:60])
    with pytest.raises(LandmarkEditError, match="missing or infinite"):
        correct_landmarks(db, users["coordinator"], image_id, np.full((68, 2), np.nan))
    unmeasured = db.execute("INSERT INTO images (sha256, subject_id, movement, source, mirrored, width, height, format, "
                            "mode, bytes, stored_path, imported_at) VALUES ('new', 1, 'MV0', 'hospital', 0, 400, 400, "
                            "'JPEG', 'RGB', 1, 'x', 'x')").lastrowid
    changes = db.conn.total_changes
    with pytest.raises(LandmarkEditError, match="no landmarks to correct"):
        correct_landmarks(db, users["coordinator"], unmeasured, state.points)
    assert db.conn.total_changes == changes
    assert db.execute("SELECT count(*) FROM landmark_corrections").fetchone()[0] == 0


def test_check_2_runs_again_on_the_corrected_indices(project):
    db, _, users = project
    truth, table = _agreed_with_ranges(db, users)
    run_check2(db, SHELL)
    image_id = _first_image(db)
    first = db.execute("SELECT count(*) FROM check2_results WHERE image_id = ?", [image_id]).fetchone()[0]
    assert first == 1
    state = landmark_state(db, image_id)
    moved = _lower(_lower(state.points, 54, 0.3), 24, 0.2)  # a big droop on the image's right
    res = correct_landmarks(db, users["coordinator"], image_id, moved)
    rows = db.execute("SELECT range_class, outcome FROM check2_results WHERE image_id = ? ORDER BY id",
                      [image_id]).fetchall()
    assert len(rows) == 2 and sum(res.check2.values()) == 1  # re-run on the new indices at once
    movement = db.execute("SELECT movement FROM images WHERE id = ?", [image_id]).fetchone()[0]
    want = table.classify(movement, res.after["rgas_signed"], res.after["anas_signed"])
    assert rows[-1][0] == want.range_class
    state_now = image_states(db, [image_id]).iloc[0]
    assert state_now.check2 == rows[-1][1] and state_now.range_class == want.range_class


def test_export_crop_and_a_new_landmark_model_follow_the_correction(project, monkeypatch):
    import labeling.workflow.measuring as measuring
    from labeling.export.crops import effective_crop_box

    db, data_dir, users = project
    image_id = _first_image(db)
    state = landmark_state(db, image_id)
    box = effective_crop_box(db, image_id).box
    correct_landmarks(db, users["coordinator"], image_id, _lower(state.points, 8, 0.4))  # the chin lower
    assert effective_crop_box(db, image_id).box[3] > box[3] + 1  # the crop reaches further down
    corrected = landmark_state(db, image_id).points
    # A new landmark model measures every photo again; the correction stays in use.
    monkeypatch.setattr(measuring, "LANDMARK_VERSION", "landmarks-next")
    assert measuring.measure_pending(db, data_dir, workers=1, actor=SHELL) == {"ok": 7}
    points, auto, correction_id = db.execute(
        "SELECT points, auto_points, correction_id FROM measurements WHERE image_id = ? AND landmark_version = "
        "'landmarks-next'", [image_id]).fetchone()
    assert np.allclose(json.loads(points), corrected, atol=0.01)
    assert np.allclose(json.loads(auto), state.auto_points, atol=0.01) and correction_id is not None
    others = db.execute("SELECT count(*) FROM measurements WHERE landmark_version = 'landmarks-next' AND "
                        "correction_id IS NULL AND auto_points IS NULL").fetchone()[0]
    assert others == 6


def test_the_overlay_shows_dlib_points_beside_the_corrected_ones():
    from asymmetry.overlay import AUTO_COLOUR, POINT_COLOUR, draw_overlay
    from tests.test_indices import symmetric_face, to_pixels

    rgb = np.full((800, 800, 3), 90, np.uint8)
    points = to_pixels(symmetric_face(), scale=200.0, origin=(400.0, 300.0))
    auto = points.copy()
    auto[54] += (0, 60)
    px = np.asarray(draw_overlay(rgb, points, max_side=800, auto_points=auto))
    x, y = np.round(auto[54]).astype(int)
    ring = px[y - 12:y + 13, x - 12:x + 13]
    assert (ring == AUTO_COLOUR).all(axis=-1).sum() > 20
    assert tuple(px[round(points[54][1]), round(points[54][0])]) == POINT_COLOUR
    plain = np.asarray(draw_overlay(rgb, points, max_side=800))
    assert not (plain == AUTO_COLOUR).all(axis=-1).any()


def test_a_correction_in_the_same_millisecond_as_check_2_still_makes_its_result_stale(project):
    """A check-2 result stands while it is not older than the image's latest correction; a correction
    stamped in the same millisecond as the result (a fast machine) must still send the image back
    through check 2. Simulated with a result stamped ahead of the clock."""
    import datetime as dt

    db, _, users = project
    truth, table = _agreed_with_ranges(db, users)
    image_id = _first_image(db)
    ahead = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)).isoformat(timespec="milliseconds")
    with transaction(db) as c:
        c.execute("INSERT INTO check2_results (image_id, range_version, consensus, range_class, distance, out_of_range, "
                  "outcome, message, at) VALUES (?, ?, ?, ?, 0, 0, 'accepted', '', ?)",
                  (image_id, table.version, truth[image_id], truth[image_id], ahead))
    state = landmark_state(db, image_id)
    correct_landmarks(db, users["coordinator"], image_id, _lower(state.points, 54, 0.3))
    corrected = db.execute("SELECT max(at) FROM landmark_corrections WHERE image_id = ?", [image_id]).fetchone()[0]
    assert corrected > ahead
    # The old result no longer stands, so the correction ran check 2 again on the new indices.
    assert db.execute("SELECT count(*) FROM check2_results WHERE image_id = ?", [image_id]).fetchone()[0] == 2
