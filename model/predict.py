"""Predicts the class of photos with a trained run, cropping them the way the export does.

Raw photos go through asymmetry.crop.crop_for_model (the export's landmark-driven, movement-aware
crop); --precropped images, already cropped like the export, are only resized. Images that cannot
be cropped get a status (e.g. "no_face") instead of a prediction. A --cv run predicts with the mean
probabilities of its fold models. Decoding and resizing are the running backend's input pipeline's
own (model/data.py), so a prediction matches what evaluate computes for the same crop.

Mirrored photos. A front camera (a selfie) often stores the mirror image, the patient's left on the
image's left; the export flips those so that one label convention holds, and predict must do the
same or it reads the palsy on the wrong side. The flag comes from --mirrored / --not-mirrored, or
else from the photo's source as the importer reads it (--source mobile: mirrored, hospital: not).
When none of these is given and the photo's EXIF names a front camera, the prediction carries a
warning: it was read as not mirrored, which may be wrong.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labeling.vocabulary import SOURCES
from model import CLASSES, ModelError
from model.runs import read_run_config, trained_model_paths

EXPORT_SIZE = 299  # the export's crop size; the pipeline resizes from it
EXIF_IFD, LENS_MODEL, LENS_MAKE = 0x8769, 0xA434, 0xA433


@dataclass
class Prediction:
    """The outcome for one image: status "ok" with the class and probabilities, or why not."""

    image: str
    status: str
    predicted: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    seconds: float | None = None  # crop + model time for this image (model already loaded and warm)
    mirrored: bool | None = None  # whether the raw photo was flipped before cropping (None: pre-cropped)
    warning: str | None = None  # e.g. a selfie read without the mirrored flag


def mirrored_from(mirrored: bool | None, source: str | None) -> bool | None:
    """Returns the mirrored flag for raw photos: the explicit one, else the source's (mobile front
    cameras mirror, as the importer assumes), else None (unknown)."""
    if mirrored is not None:
        return mirrored
    if source is None:
        return None
    if source not in SOURCES:
        raise ModelError(f"--source must be one of {', '.join(SOURCES)}, not {source!r}")
    return source == "mobile"


def front_camera(path: Path) -> bool:
    """Returns True when the photo's EXIF lens model names a front camera (as phones write it,
    e.g. "iPhone 12 front camera 2.71mm f/2.2"); False when it does not say, or cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            exif = image.getexif().get_ifd(EXIF_IFD)
    except Exception:  # noqa: BLE001  any unreadable file or EXIF block: the crop reports the real problem
        return False
    lens = " ".join(str(exif.get(tag, "")) for tag in (LENS_MAKE, LENS_MODEL)).lower()
    return "front" in lens


SELFIE_WARNING = (
    "the EXIF says a front camera took this photo (a selfie?), but neither --mirrored, --not-mirrored nor "
    "--source was given, so it was read as not mirrored; if the photo shows the patient's left on the "
    "image's left, the side of the prediction is reversed: predict it again with --mirrored"
)


def load_cropper():
    """Returns asymmetry.crop.crop_for_model; raises ModelError when this checkout lacks it."""
    try:
        from asymmetry.crop import crop_for_model
    except ImportError:
        raise ModelError(
            "asymmetry.crop is not available, so raw photos cannot be cropped like the export; "
            "pass --precropped for images already cropped"
        ) from None
    return crop_for_model


def model_input(path: Path, image_size: int, precropped: bool, movement: str | None, cropper,
                mirrored: bool = False):
    """Returns (1 x S x S x 3 float32 batch, "ok") for one image, or (None, status).

    Pre-cropped files go through the input pipeline's own decode and resize.
    """
    from model.data import UnreadableImage, load_image, resize_pixels

    if not path.is_file():
        return None, "not_found"
    if precropped:
        try:
            resized = load_image(path, image_size)
        except UnreadableImage:
            return None, "unreadable"
    else:
        pixels, status = cropper(str(path), movement=movement, size=EXPORT_SIZE, mirrored=mirrored)
        if pixels is None or status != "ok":
            return None, status if status != "ok" else "crop_failed"
        resized = resize_pixels(np.asarray(pixels, dtype=np.uint8), image_size)
    return np.asarray(resized, dtype=np.float32)[None], "ok"


def predict_images(
    run_dir: str | Path, images: list[str | Path], precropped: bool = False, movement: str | None = None,
    mirrored: bool | None = None, source: str | None = None, xla: str = "auto",
) -> list[Prediction]:
    """Returns one Prediction per image path, in order, using the run's model(s).

    mirrored / source: see the module docstring (raw photos only; pre-cropped images were flipped,
    if need be, by the export). xla: auto | on | off for the prediction step (model/backend.py).
    """
    from model.backend import set_jit_compile
    from model.config import TrainConfig
    from model.data import resize_pixels
    from model.idfnp import load_trained

    header = read_run_config(run_dir)
    config = TrainConfig.from_dict(header["train"])
    image_size = config.image_size
    known = mirrored_from(mirrored, source)
    cropper = None if precropped else load_cropper()
    networks = [load_trained(p, config.arch, image_size, config.dropout, config.deepid_size) for p in trained_model_paths(run_dir)]
    # The first calls build (and compile) the step; keep that out of the per-image time.
    warm = np.asarray(resize_pixels(np.zeros((EXPORT_SIZE, EXPORT_SIZE, 3), np.uint8), image_size), np.float32)
    for network in networks:
        set_jit_compile(network, xla)
        network.predict_on_batch(warm[None])
    results = []
    for image in images:
        started = time.perf_counter()
        flip = None if precropped else bool(known)
        warning = None
        if not precropped and known is None and front_camera(Path(image)):
            warning = SELFIE_WARNING
        batch, status = model_input(Path(image), image_size, precropped, movement, cropper, bool(flip))
        if batch is None:
            results.append(Prediction(str(image), status, mirrored=flip, warning=warning))
            continue
        probabilities = np.mean([np.asarray(n.predict_on_batch(batch), dtype=np.float64)[0] for n in networks], axis=0)
        results.append(
            Prediction(
                str(image),
                "ok",
                CLASSES[int(np.argmax(probabilities))],
                {c: float(p) for c, p in zip(CLASSES, probabilities)},
                time.perf_counter() - started,
                mirrored=flip,
                warning=warning,
            )
        )
    return results
