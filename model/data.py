"""Input pipelines from an export manifest: the same batches under every Keras backend.

Under the TensorFlow backend the pipeline is tf.data (model/data_tf.py). Under JAX and torch,
where TensorFlow may not be installed at all, it is `ImageBatches`, a `keras.utils.PyDataset`:
worker threads decode with Pillow, the decoded images are cached in memory, and NumPy applies the
same resize (model/resize.py: TensorFlow's antialiased bilinear arithmetic) and the same
augmentation. `make_dataset` picks the one that fits the running backend.

Images enter the model as float32 RGB in [0, 255]; each architecture's own ImageNet preprocessing
is a layer inside the model, so training, evaluation and prediction cannot disagree about it.

Augmentation (training only, deliberately light because the crops are already landmark-driven
and movement-specific, paper §2.3.4): a random zoom of up to 10% (crop 90-100% of the side at a
random position, resized back), brightness +-10%, contrast and saturation x0.9-1.1. There is no
horizontal flip: a flip moves the palsy to the other side and so would change L into R.
"""
from __future__ import annotations

import collections
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from model import ModelError
from model.augment import BRIGHTNESS_DELTA, CONTRAST_RANGE, SATURATION_RANGE, ZOOM_RANGE, label_indices
from model.resize import resize



class UnreadableImage(ModelError):
    """An image file that cannot be decoded."""


def uses_tf_data() -> bool:
    """Returns True when the running Keras backend is TensorFlow, whose pipeline is tf.data."""
    return keras.backend.backend() == "tensorflow"


def default_workers() -> int:
    """Returns how many threads decode and augment for the NumPy pipeline: the CPUs, at most 16."""
    return max(1, min(16, os.cpu_count() or 1))


def decode_file(path: str | Path) -> np.ndarray:
    """Returns the image file at `path` as HxWx3 uint8 RGB, decoded by Pillow as tf.io.decode_image
    does (grey made RGB, alpha dropped, no EXIF rotation); raises UnreadableImage naming the file."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        raise UnreadableImage(f"cannot decode image {path}: {error}") from None


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Returns float pixels rounded (half to even, as tf.round) and clipped to uint8."""
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def resize_for_model(image: np.ndarray, image_size: int) -> np.ndarray:
    """Returns an HxWx3 image resized to image_size x image_size, as uint8: bilinear with
    antialiasing, the values of tf.image.resize (model/resize.py)."""
    image = np.asarray(image)
    if image.shape[:2] == (image_size, image_size):
        return image.astype(np.uint8)
    return to_uint8(resize(image, (image_size, image_size), antialias=True))


def load_image(path: str | Path, image_size: int) -> np.ndarray:
    """Returns the image file at `path` decoded and resized by the running backend's pipeline, as
    image_size x image_size x 3 uint8; raises UnreadableImage when it cannot be decoded."""
    if uses_tf_data():
        import tensorflow as tf

        from model import data_tf

        try:
            return np.asarray(data_tf.load_image(str(path), image_size))
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
            raise UnreadableImage(f"cannot decode image {path}: {error.message}") from None
    return resize_for_model(decode_file(path), image_size)


def resize_pixels(pixels: np.ndarray, image_size: int) -> np.ndarray:
    """Returns HxWx3 uint8 pixels resized by the running backend's pipeline, as uint8."""
    if uses_tf_data():
        from model import data_tf

        return np.asarray(data_tf.resize_for_model(np.asarray(pixels, np.uint8), image_size))
    return resize_for_model(pixels, image_size)


def adjust_brightness_contrast(image: np.ndarray, brightness: float, contrast: float) -> np.ndarray:
    """tf.image.adjust_brightness then tf.image.adjust_contrast, in one pass: + brightness, then
    each channel's distance from its mean times contrast (the mean moves by brightness too)."""
    mean = image.reshape(-1, image.shape[-1]).mean(axis=0, dtype=np.float64).astype(np.float32)
    return image * np.float32(contrast) + (mean * np.float32(1 - contrast) + np.float32(brightness))


def adjust_saturation(image: np.ndarray, factor: float) -> np.ndarray:
    """tf.image.adjust_saturation without the HSV round trip: hue and value stay, the HSV
    saturation is multiplied by factor and clipped to [0, 1] (a pixel whose largest channel is not
    positive becomes grey at that value, as in TensorFlow)."""
    red, green, blue = image[..., 0], image[..., 1], image[..., 2]
    value = np.maximum(np.maximum(red, green), blue)
    spread = value - np.minimum(np.minimum(red, green), blue)
    positive = value > 0
    saturation = np.divide(spread, value, out=np.zeros_like(value), where=positive)
    scaled = np.minimum(saturation * np.float32(factor), 1)
    ratio = np.divide(scaled, saturation, out=np.ones_like(saturation), where=saturation > 0)
    out = value[..., None] - (value[..., None] - image) * ratio[..., None]
    return np.where(positive[..., None], out, value[..., None])


def augmentation_parameters(rng: np.random.Generator, image_size: int) -> tuple[int, int, int, float, float, float]:
    """Returns one random (side, top, left, brightness, contrast, saturation) for apply_augmentation,
    drawn from the same distributions as the tf.data pipeline's."""
    side = int(np.round(image_size * rng.uniform(*ZOOM_RANGE)))
    top, left = (int(v) for v in rng.integers(0, image_size - side + 1, 2))
    return side, top, left, float(rng.uniform(-BRIGHTNESS_DELTA, BRIGHTNESS_DELTA)), float(rng.uniform(*CONTRAST_RANGE)), float(rng.uniform(*SATURATION_RANGE))


def apply_augmentation(image: np.ndarray, image_size: int, side: int, top: int, left: int,
                       brightness: float, contrast: float, saturation: float) -> np.ndarray:
    """Returns a float32 copy of a uint8 image_size-square image with the given perturbation, as
    model.data_tf.apply_augmentation computes it: the side x side square at (top, left) resized back
    to image_size (bilinear), + brightness, contrast and saturation factors, clipped to [0, 255]."""
    square = np.asarray(image[top:top + side, left:left + side], np.float32)
    out = adjust_brightness_contrast(resize(square, (image_size, image_size), antialias=False), brightness, contrast)
    out = adjust_saturation(out, saturation)
    return np.clip(out, 0.0, 255.0, out=out)


class ImageBatches(keras.utils.PyDataset):
    """Batches of (images float32 [0, 255], class indices) from image files, for any backend.

    Worker threads (Keras' PyDataset machinery) decode with Pillow, each image once: decoded
    images are kept in memory (uint8, like tf.data's cache) unless cache=False. A training set is
    reshuffled every epoch and augmented with randomness drawn from (seed, epoch, batch), so a run
    is reproducible whatever thread serves a batch; others keep the given order.

    pad_to > 1 (data-parallel training over that many devices, which need equal shares) pads a
    short last batch to a multiple of pad_to by repeating images, and then every batch carries
    sample weights: 1 for real images, 0 for the padding, which so counts for nothing.
    """

    def __init__(self, paths, labels, image_size: int, batch_size: int, training: bool, seed: int = 0,
                 augmentation: bool = True, cache: bool = True, workers: int | None = None, pad_to: int = 1):
        super().__init__(workers=workers or default_workers(), use_multiprocessing=False, max_queue_size=8)
        self.paths = [str(p) for p in paths]
        self.labels = np.asarray(labels, dtype=np.int32)
        self.image_size, self.batch_size = int(image_size), int(batch_size)
        self.training, self.seed, self.augmentation, self.pad_to = training, int(seed), augmentation, max(1, int(pad_to))
        self.cache = np.zeros((len(self.paths), image_size, image_size, 3), np.uint8) if cache else None
        self.decoded = np.zeros(len(self.paths), bool)
        self.epoch = 0
        self.order = self.epoch_order()

    def epoch_order(self) -> np.ndarray:
        """Returns the order of the images in the current epoch (a fresh shuffle when training)."""
        if not self.training:
            return np.arange(len(self.paths))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.paths))

    def __len__(self) -> int:
        return math.ceil(len(self.paths) / self.batch_size)

    def image(self, index: int) -> np.ndarray:
        """Returns image `index` resized to the model's input, as uint8 (decoded once if cached)."""
        if self.cache is None:
            return resize_for_model(decode_file(self.paths[index]), self.image_size)
        if not self.decoded[index]:
            self.cache[index] = resize_for_model(decode_file(self.paths[index]), self.image_size)
            self.decoded[index] = True
        return self.cache[index]

    def __getitem__(self, batch: int):
        if not 0 <= batch < len(self):
            raise IndexError(f"batch {batch} of {len(self)}")
        rows = self.order[batch * self.batch_size:(batch + 1) * self.batch_size]
        if self.training and self.augmentation:
            rng = np.random.default_rng([self.seed, self.epoch, batch])
            images = np.stack([apply_augmentation(self.image(i), self.image_size, *augmentation_parameters(rng, self.image_size)) for i in rows])
        else:
            images = np.stack([self.image(i) for i in rows]).astype(np.float32)
        labels = self.labels[rows]
        if self.pad_to == 1:
            return images, labels
        missing = -len(rows) % self.pad_to
        weights = np.concatenate([np.ones(len(rows), np.float32), np.zeros(missing, np.float32)])
        fill = np.arange(missing) % len(rows)
        return np.concatenate([images, images[fill]]), np.concatenate([labels, labels[fill]]), weights

    def on_epoch_end(self):
        self.epoch += 1
        self.order = self.epoch_order()


def make_dataset(
    frame: pd.DataFrame,
    image_size: int,
    batch_size: int,
    training: bool,
    seed: int = 0,
    augmentation: bool = True,
    cache: bool = True,
    pad_to: int = 1,
):
    """Returns the batches of (image float32 [0, 255], class index) for `frame`'s rows: a tf.data
    dataset under the TensorFlow backend, an ImageBatches otherwise.

    Decoded images are cached after the first pass; training batches are reshuffled every epoch
    and augmented; others keep the frame's order. pad_to: see ImageBatches (NumPy pipeline only;
    tf.distribute splits uneven batches itself).
    """
    if uses_tf_data():
        from model import data_tf

        return data_tf.make_dataset(frame, image_size, batch_size, training, seed, augmentation, cache)
    return ImageBatches(frame["path"].tolist(), label_indices(frame["label"]), image_size, batch_size, training,
                        seed, augmentation, bool(cache), pad_to=pad_to)


def iterate_batches(data, limit: int | None = None):
    """Yields up to `limit` batches (all when None) of a make_dataset result as NumPy arrays;
    an ImageBatches is read by its worker threads, a few batches ahead."""
    if not isinstance(data, ImageBatches):
        for batch in data.take(limit) if limit is not None else data:
            yield tuple(np.asarray(part) for part in batch)
        return
    count = len(data) if limit is None else min(limit, len(data))
    with ThreadPoolExecutor(data.workers) as pool:
        pending = collections.deque()
        for index in range(count):
            pending.append(pool.submit(data.__getitem__, index))
            if len(pending) > 2 * data.workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
