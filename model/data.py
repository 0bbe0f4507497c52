"""tf.data input pipeline from an export manifest: parallel decode, cache, light augmentation, prefetch.

Images enter the model as float32 RGB in [0, 255]; each architecture's own ImageNet preprocessing
is a layer inside the model, so training, evaluation and prediction cannot disagree about it.

Augmentation (training only, deliberately light because the crops are already landmark-driven
and movement-specific, paper §2.3.4): a random zoom of up to 10% (crop 90-100% of the side at a
random position, resized back), brightness +-10%, contrast and saturation x0.9-1.1. There is no
horizontal flip: a flip moves the palsy to the other side and so would change L into R.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import tensorflow as tf

from model import CLASSES

AUTOTUNE = tf.data.AUTOTUNE


def label_indices(labels) -> np.ndarray:
    """Returns the class indices (position in CLASSES) of an iterable of class names, as int32."""
    index = {name: i for i, name in enumerate(CLASSES)}
    return np.array([index[label] for label in labels], dtype=np.int32)


def resize_for_model(image, image_size: int) -> tf.Tensor:
    """Returns an HxWx3 image resized to image_size x image_size, as uint8 (the one resize used by
    training, evaluation and prediction: bilinear with antialiasing)."""
    image = tf.convert_to_tensor(image)
    resized = tf.image.resize(image, (image_size, image_size), method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def load_image(path, image_size: int) -> tf.Tensor:
    """Returns the image file at `path` (PNG, JPEG, ...) as image_size x image_size x 3 uint8."""
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    return resize_for_model(image, image_size)


def augment(image: tf.Tensor, image_size: int) -> tf.Tensor:
    """Returns a lightly perturbed float32 copy of a uint8 training image (see the module docstring)."""
    image = tf.cast(image, tf.float32)
    side = tf.cast(tf.round(image_size * tf.random.uniform([], 0.9, 1.0)), tf.int32)
    image = tf.image.random_crop(image, tf.stack([side, side, 3]))
    image = tf.image.resize(image, (image_size, image_size), method="bilinear")
    image = tf.image.random_brightness(image, max_delta=0.1 * 255)
    image = tf.image.random_contrast(image, 0.9, 1.1)
    image = tf.image.random_saturation(image, 0.9, 1.1)
    return tf.clip_by_value(image, 0.0, 255.0)


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
