"""Quality flags: blurry (variance of the Laplacian on the face crop) and distant (small face box)."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image
from skimage import data
from skimage.filters import gaussian

from asymmetry.imaging import decode_image
from asymmetry.landmarks import Landmarks, detect_landmarks
from asymmetry.quality import BLUR_THRESHOLD, DISTANT_FRACTION, quality_flags, sharpness

# The astronaut scaled so that its face box is about 300 px wide (87 px at 512).
FACE_300 = 1765


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


@pytest.fixture(scope="module")
def big_face(astronaut):
    return np.asarray(Image.fromarray(astronaut).resize((FACE_300, FACE_300), Image.Resampling.LANCZOS))


def blurred(rgb: np.ndarray, sigma: float) -> np.ndarray:
    return gaussian(rgb, sigma=sigma, channel_axis=-1, preserve_range=True).round().astype(np.uint8)


def face(rgb: np.ndarray) -> Landmarks:
    lm = detect_landmarks(rgb, pick_best=True)
    assert lm.ok, lm.message
    return lm


def test_sharp_face_is_not_blurry(big_face):
    flags = quality_flags(big_face, face(big_face))
    assert flags["blurry"] is False and flags["sharpness"] > 1.5 * BLUR_THRESHOLD
    assert flags["message"] == ""


@pytest.mark.parametrize("sigma", [2.0, 2.5, 3.0])
def test_gaussian_blur_of_2_to_3_px_on_a_300_px_face_is_blurry(big_face, sigma):
    img = blurred(big_face, sigma)
    flags = quality_flags(img, face(img))
    assert flags["blurry"] is True
    # Also on the sharp photo's own box, so the verdict is the blur's and not a different crop's.
    assert sharpness(img, face(big_face).box) < BLUR_THRESHOLD


def test_sharpness_does_not_depend_on_resolution(astronaut):
    box = np.array(face(astronaut).box)
    values = []
    for side in (1024, 2048, 4096):
        img = np.asarray(Image.fromarray(astronaut).resize((side, side), Image.Resampling.LANCZOS))
        values.append(sharpness(img, box * side / 512))
    assert max(values) / min(values) < 1.05


def test_flags_use_the_decoded_copy_scale(big_face):
    buf = io.BytesIO()
    Image.fromarray(big_face).save(buf, "PNG")
    # The copy the landmark step decodes (PREDICT_SIDE); its bilinear downscale softens a little.
    decoded = decode_image(buf.getvalue(), max_side=1280)
    assert decoded.scale < 0.75
    lm = face(big_face)
    full = quality_flags(big_face, lm)
    small = quality_flags(decoded, lm)
    assert small["face_fraction"] == pytest.approx(full["face_fraction"])
    assert small["sharpness"] == pytest.approx(full["sharpness"], rel=0.15)
    assert small["blurry"] is False


def test_small_face_in_a_big_canvas_is_distant(astronaut):
    canvas = np.full((1200, 1200, 3), 128, np.uint8)
    canvas[300:812, 400:912] = astronaut
    flags = quality_flags(canvas, face(canvas))
    assert flags["distant"] is True and flags["face_fraction"] < DISTANT_FRACTION
    assert quality_flags(astronaut, face(astronaut))["distant"] is False


def test_face_fraction_without_points_is_box_width_over_image_width():
    rgb = np.zeros((300, 1000, 3), np.uint8)
    near = Landmarks("ok", box=(100.0, 50.0, 400.0, 280.0), size=(1000, 300))
    far = Landmarks("ok", box=(100.0, 50.0, 200.0, 150.0), size=(1000, 300))
    assert quality_flags(rgb, near)["face_fraction"] == pytest.approx(0.3)
    assert quality_flags(rgb, near)["distant"] is False
    assert quality_flags(rgb, far)["distant"] is True


def test_no_face_gives_unknown_flags():
    flags = quality_flags(np.zeros((100, 100, 3), np.uint8), Landmarks("no_face", "no face found"))
    assert flags["blurry"] is None and flags["distant"] is None
    assert math.isnan(flags["sharpness"]) and "no_face" in flags["message"]


def test_box_outside_the_image_gives_nan_sharpness():
    assert math.isnan(sharpness(np.zeros((50, 50, 3), np.uint8), (60, 60, 90, 90)))


@pytest.mark.parametrize("seed", [3, 4])
def test_the_demos_low_quality_photos_trip_the_flags(seed):
    """The synthetic demo's blurry and distant photos (labeling/demo/project.py) are flagged by the measured
    values, so a new user sees the flags and the export's train-only rule at work."""
    from asymmetry.measure import measure_photo
    from labeling.demo.project import BLUR_SIGMA, DISTANT_SCALE
    from labeling.demo.synthetic import make_image

    def flags(**kw):
        photo = make_image("S", "MV0", "L2", mirrored=False, seed=seed, subject_seed=seed, **kw)
        m = measure_photo(photo.jpeg, False)
        assert m.status == "ok"
        return m.quality["blurry"], m.quality["distant"]

    assert flags() == (False, False)
    assert flags(blur=BLUR_SIGMA) == (True, False)
    assert flags(scale=DISTANT_SCALE) == (False, True)
