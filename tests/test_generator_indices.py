"""Issue 3's targets on the synthetic generator, through the real measurement pipeline (JPEG ->
dlib -> indices): |RgAs| and |AnAs| rise with severity for every movement, and the paralysed side
is recovered. Everything measured here is synthetic; docs/asymmetry.md §11 gives the same figures
on more subjects (bench/generator_indices.py)."""
from concurrent.futures import ProcessPoolExecutor

import pytest
from scipy.stats import spearmanr

from asymmetry.measure import measure_photo
from labeling.vocabulary import CLASSES, MOVEMENTS
from labeling.vocabulary import side_and_degree
from labeling.demo.synthetic import base_face, make_image

# (subject_seed, photo seed, mirrored): three subjects, one of them photographed as a selfie.
SUBJECTS = ((1, 11, False), (2, 22, True), (3, 33, False))
MIN_SPEARMAN = 0.8
MIN_SIDE_RECOVERED = 0.95


def _measure(job: tuple) -> tuple:
    movement, label, subject_seed, seed, mirrored = job
    photo = make_image("S", movement, label, mirrored=mirrored, seed=seed, subject_seed=subject_seed)
    m = measure_photo(photo.jpeg, mirrored)
    return movement, label, m.status, m.indices


@pytest.fixture(scope="module")
def measured() -> list[tuple]:
    """(movement, label, status, Indices) of every movement x class x subject photo, made once."""
    base_face()  # built here, so the forked workers inherit it instead of each building it
    jobs = [(mv, label, *subject) for mv in MOVEMENTS for subject in SUBJECTS for label in CLASSES]
    with ProcessPoolExecutor(2) as pool:
        return list(pool.map(_measure, jobs, chunksize=4))


def test_every_photo_is_measured(measured):
    assert [(mv, label, status) for mv, label, status, _ in measured if status != "ok"] == []


@pytest.mark.parametrize("index", ["rgas", "anas"])
@pytest.mark.parametrize("movement", MOVEMENTS)
def test_asymmetry_rises_with_severity(measured, movement, index):
    severity, value = zip(*[(side_and_degree(label)[1], abs(getattr(idx, index)))
                            for mv, label, _, idx in measured if mv == movement])
    assert spearmanr(severity, value).statistic >= MIN_SPEARMAN


def test_the_paralysed_side_is_recovered(measured):
    sides = [(side_and_degree(label)[0], idx.side) for _, label, _, idx in measured if label != "N"]
    assert sum(truth == found for truth, found in sides) / len(sides) >= MIN_SIDE_RECOVERED
