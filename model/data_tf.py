"""The tf.data input pipeline, used under the TensorFlow backend: parallel decode, cache, light
augmentation, prefetch. model/data.py chooses it and describes what both pipelines serve; the
NumPy pipeline there computes the same resize and the same augmentation (tested side by side).
Imported only under the TensorFlow backend.
"""
from __future__ import annotations

import pandas as pd
import tensorflow as tf

from model.augment import (
    BRIGHTNESS_DELTA,
    CONTRAST_RANGE,
    SATURATION_RANGE,
    ZOOM_RANGE,
    label_indices,
)

AUTOTUNE = tf.data.AUTOTUNE


def resize_for_model(image, image_size: int) -> tf.Tensor:
    """Returns an HxWx3 image resized to image_size x image_size, as uint8 (the one resize used by
    training, evaluation and prediction: bilinear with antialiasing)."""
    image = tf.convert_to_tensor(image)
    resized = tf.image.resize(image, (image_size, image_size), method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def decode(path) -> tf.Tensor:
    """Returns the image file at `path` (PNG, JPEG, ...) as HxWx3 uint8."""
    return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)


def load_image(path, image_size: int) -> tf.Tensor:
    """Returns the image file at `path` (PNG, JPEG, ...) as image_size x image_size x 3 uint8."""
    return resize_for_model(decode(path), image_size)


def apply_augmentation(image, image_size: int, side, top, left, brightness, contrast, saturation) -> tf.Tensor:
    """Returns a float32 copy of a uint8 image_size-square image with the given perturbation: the
    side x side square at (top, left) resized back to image_size, then + brightness, contrast and
    saturation factors, clipped to [0, 255]. model.data.apply_augmentation is the NumPy twin."""
    image = tf.cast(image, tf.float32)
    image = image[top:top + side, left:left + side]
    image = tf.image.resize(image, (image_size, image_size), method="bilinear")
    image = tf.image.adjust_brightness(image, brightness)
    image = tf.image.adjust_contrast(image, contrast)
    image = tf.image.adjust_saturation(image, saturation)
    return tf.clip_by_value(image, 0.0, 255.0)


def augment(image: tf.Tensor, image_size: int) -> tf.Tensor:
    """Returns a lightly perturbed float32 copy of a uint8 training image (see model/data.py)."""
    side = tf.cast(tf.round(image_size * tf.random.uniform([], *ZOOM_RANGE)), tf.int32)
    top = tf.random.uniform([], 0, image_size - side + 1, dtype=tf.int32)
    left = tf.random.uniform([], 0, image_size - side + 1, dtype=tf.int32)
    brightness = tf.random.uniform([], -BRIGHTNESS_DELTA, BRIGHTNESS_DELTA)
    contrast = tf.random.uniform([], *CONTRAST_RANGE)
    saturation = tf.random.uniform([], *SATURATION_RANGE)
    return apply_augmentation(image, image_size, side, top, left, brightness, contrast, saturation)


def make_dataset(
    frame: pd.DataFrame,
    image_size: int,
    batch_size: int,
    training: bool,
    seed: int = 0,
    augmentation: bool = True,
    cache: bool | str = True,
) -> tf.data.Dataset:
    """Returns a batched, prefetched dataset of (image float32 [0, 255], class index) for `frame`'s rows.

    Decoded images are cached after the first pass (in memory, or in the file `cache` names);
    training datasets are reshuffled every epoch and augmented; others keep the frame's order.
    """
    paths = frame["path"].astype(str).tolist()
    labels = label_indices(frame["label"])
    data = tf.data.Dataset.from_tensor_slices((paths, labels))
    data = data.map(
        lambda path, label: (load_image(path, image_size), label),
        num_parallel_calls=AUTOTUNE,
        deterministic=not training,
    )
    if cache:
        data = data.cache("" if cache is True else cache)
    if training:
        data = data.shuffle(max(len(paths), 1), seed=seed, reshuffle_each_iteration=True)
    if training and augmentation:
        data = data.map(lambda image, label: (augment(image, image_size), label), num_parallel_calls=AUTOTUNE)
    else:
        data = data.map(lambda image, label: (tf.cast(image, tf.float32), label), num_parallel_calls=AUTOTUNE)
    data = data.batch(batch_size).prefetch(AUTOTUNE)
    options = tf.data.Options()
    # Files are listed in memory, not sharded by file, so several workers split the elements.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return data.with_options(options)
