"""Bilinear resizing as a fixed linear map, in NumPy: TensorFlow's arithmetic without TensorFlow.

`tf.image.resize(..., "bilinear", antialias=True)` (and Keras' `Resizing(antialias=True)`) is
TensorFlow's ScaleAndTranslate op with a triangle kernel, which has no XLA kernel. Along each axis
it is a matrix: output pixel i is a weighted sum of the input pixels near its centre,
(i + 0.5) * in / out - 0.5, weighted by a triangle stretched by in / out when shrinking (the
antialiasing) and normalised to sum to 1. `resize_weights` builds that matrix (JAX's
`scale_and_translate` computes the same), so:

- the DeepID branch downscales inside the model with two matrix products, which XLA compiles on
  every backend (`model.idfnp.SeparableResize`);
- the input pipeline without TensorFlow resizes exactly as `tf.image.resize` does (`resize`).

Without antialiasing (antialias=False) the matrix is plain bilinear interpolation with half-pixel
centres and clamped edges, TensorFlow's ResizeBilinear.
"""
from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=64)
def resize_weights(in_size: int, out_size: int, antialias: bool = True) -> np.ndarray:
    """Returns the (out_size x in_size) float32 matrix that resizes one axis of in_size pixels to out_size.

    Every row sums to 1 (rows outside the input, which a plain resize never has, are 0).
    The matrix is cached and read-only.
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be at least 1, not {in_size} -> {out_size}")
    inverse_scale = in_size / out_size
    kernel_scale = max(inverse_scale, 1.0) if antialias else 1.0
    centres = (np.arange(out_size, dtype=np.float64) + 0.5) * inverse_scale - 0.5
    distance = np.abs(centres[:, None] - np.arange(in_size, dtype=np.float64)[None, :]) / kernel_scale
    weights = np.maximum(0.0, 1.0 - distance)
    totals = weights.sum(axis=1, keepdims=True)
    weights = np.where(totals > 1000 * np.finfo(np.float32).eps, weights / np.where(totals != 0, totals, 1), 0.0)
    inside = (centres >= -0.5) & (centres <= in_size - 0.5)
    matrix = np.where(inside[:, None], weights, 0.0).astype(np.float32)
    matrix.flags.writeable = False
    return matrix


@functools.lru_cache(maxsize=64)
def resize_taps(in_size: int, out_size: int, antialias: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Returns (indices, weights), both (out_size x k): the k input pixels each output pixel reads
    and their weights (the nonzero band of resize_weights; zero-padded where a row has fewer)."""
    matrix = resize_weights(in_size, out_size, antialias)
    nonzero = matrix != 0
    k = max(1, int(nonzero.sum(axis=1).max()))
    first = np.where(nonzero.any(axis=1), nonzero.argmax(axis=1), 0)
    indices = np.clip(first[:, None] + np.arange(k)[None, :], 0, in_size - 1)
    weights = np.take_along_axis(matrix, indices, axis=1) * (first[:, None] + np.arange(k)[None, :] < in_size)
    indices.flags.writeable = False
    weights = weights.astype(np.float32)
    weights.flags.writeable = False
    return indices, weights


def resize_axis(image: np.ndarray, out_size: int, axis: int, antialias: bool = True) -> np.ndarray:
    """Returns `image` (float32) resized along one axis, reading only each output pixel's taps."""
    in_size = image.shape[axis]
    if in_size == out_size:
        return image
    indices, weights = resize_taps(in_size, out_size, antialias)
    shape = [1] * image.ndim
    shape[axis] = out_size
    out = np.take(image, indices[:, 0], axis=axis)
    out *= weights[:, 0].reshape(shape)
    for tap in range(1, indices.shape[1]):
        part = np.take(image, indices[:, tap], axis=axis)
        part *= weights[:, tap].reshape(shape)
        out += part
    return out


def resize(image: np.ndarray, size: tuple[int, int], antialias: bool = True) -> np.ndarray:
    """Returns an H x W x C (or N x H x W x C) image resized to size = (height, width), as float32:
    the values `tf.image.resize(image, size, "bilinear", antialias=antialias)` gives, to float
    rounding."""
    image = np.asarray(image, dtype=np.float32)
    height_axis = image.ndim - 3
    out = resize_axis(image, size[0], height_axis, antialias)
    return resize_axis(out, size[1], height_axis + 1, antialias)
