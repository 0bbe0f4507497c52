"""Predicts the class of photos with a trained run, cropping them the way the export does.

Raw photos go through asymmetry.crop.crop_for_model (the export's landmark-driven, movement-aware
crop); --precropped images, already cropped like the export, are only resized. Images that cannot
be cropped get a status (e.g. "no_face") instead of a prediction. A --cv run predicts with the mean
probabilities of its fold models.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model import CLASSES, ModelError
from model.runs import read_run_config, trained_model_paths

EXPORT_SIZE = 299  # the export's crop size (DESIGN §5); the pipeline resizes from it


@dataclass
class Prediction:
    """The outcome for one image: status "ok" with the class and probabilities, or why not."""

    image: str
    status: str
    predicted: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    seconds: float | None = None  # crop + model time for this image (model already loaded and warm)


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

    Pre-cropped files go through the training pipeline's own decode and resize.
    """
    import tensorflow as tf

    from model.data import load_image, resize_for_model

    if not path.is_file():
        return None, "not_found"
    if precropped:
        try:
            resized = load_image(str(path), image_size)
        except tf.errors.InvalidArgumentError:
            return None, "unreadable"
    else:
        pixels, status = cropper(str(path), movement=movement, size=EXPORT_SIZE, mirrored=mirrored)
        if pixels is None or status != "ok":
            return None, status if status != "ok" else "crop_failed"
        resized = resize_for_model(np.asarray(pixels, dtype=np.uint8), image_size)
    return np.asarray(resized, dtype=np.float32)[None], "ok"


def predict_images(
    run_dir: str | Path, images: list[str | Path], precropped: bool = False, movement: str | None = None,
    mirrored: bool = False,
) -> list[Prediction]:
    """Returns one Prediction per image path, in order, using the run's model(s)."""
    import keras

    import model.idfnp  # noqa: F401  registers the custom layer before loading
    from model.data import resize_for_model

    header = read_run_config(run_dir)
    image_size = int(header["train"]["image_size"])
    cropper = None if precropped else load_cropper()
    networks = [keras.saving.load_model(p, compile=False) for p in trained_model_paths(run_dir)]
    # The first calls build graphs; keep that out of the per-image time.
    warm = np.asarray(resize_for_model(np.zeros((EXPORT_SIZE, EXPORT_SIZE, 3), np.uint8), image_size), np.float32)
    for network in networks:
        network.predict_on_batch(warm[None])
    results = []
    for image in images:
        started = time.perf_counter()
        batch, status = model_input(Path(image), image_size, precropped, movement, cropper, mirrored)
        if batch is None:
            results.append(Prediction(str(image), status))
            continue
        probabilities = np.mean([np.asarray(n.predict_on_batch(batch))[0] for n in networks], axis=0)
        results.append(
            Prediction(
                str(image),
                "ok",
                CLASSES[int(np.argmax(probabilities))],
                {c: float(p) for c, p in zip(CLASSES, probabilities)},
                time.perf_counter() - started,
            )
        )
    return results
