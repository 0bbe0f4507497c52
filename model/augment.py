"""What both input pipelines (tf.data in model/data_tf.py, NumPy in model/data.py) share: the
training augmentation's ranges and the label coding, so that they serve the same batches."""
from __future__ import annotations

import numpy as np

from model import CLASSES

__all__ = ["BRIGHTNESS_DELTA", "CONTRAST_RANGE", "SATURATION_RANGE", "ZOOM_RANGE", "label_indices"]

ZOOM_RANGE = (0.9, 1.0)  # side of the random square, as a fraction of the image side
BRIGHTNESS_DELTA = 0.1 * 255  # added, uniform in +-this
CONTRAST_RANGE = (0.9, 1.1)  # factor, uniform
SATURATION_RANGE = (0.9, 1.1)  # factor, uniform


def label_indices(labels) -> np.ndarray:
    """Returns the class indices (position in CLASSES) of an iterable of class names, as int32."""
    index = {name: i for i, name in enumerate(CLASSES)}
    return np.array([index[label] for label in labels], dtype=np.int32)
