"""The Keras backend the trainer runs on (KERAS_BACKEND: tensorflow, the default, jax or torch):
its GPUs, the --xla setting, and the versions a run records. Each framework is imported only when
it is the running backend, so nothing here needs TensorFlow under JAX or torch.
"""
from __future__ import annotations

import importlib
import platform

import keras

from model.config import XLA


def name() -> str:
    """Returns the running Keras backend: "tensorflow", "jax" or "torch"."""
    return keras.backend.backend()


def gpus() -> list[str]:
    """Returns the names of the GPUs the running backend sees (empty on a CPU-only machine)."""
    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf

        devices = tf.config.list_physical_devices("GPU")
        return [tf.config.experimental.get_device_details(d).get("device_name", d.name) for d in devices]
    if backend == "jax":
        import jax

        return [d.device_kind for d in jax.devices() if d.platform in ("gpu", "cuda", "rocm")]
    if backend == "torch":
        import torch

        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return []


def jit_compile(xla: str):
    """Returns Keras' jit_compile value for --xla: on -> True, off -> False, auto -> "auto".

    auto is Keras' default: XLA on a single GPU without a tf.distribute strategy under TensorFlow,
    always under JAX (which only runs compiled), never under torch. Under torch, True means
    torch.compile (torch has no XLA).
    """
    if xla not in XLA:
        raise ValueError(f"--xla must be one of {', '.join(XLA)}, not {xla!r}")
    return {"on": True, "off": False, "auto": "auto"}[xla]


def set_jit_compile(network: keras.Model, xla: str) -> None:
    """Makes an uncompiled model's predict and evaluate follow --xla (auto leaves Keras' default)."""
    value = jit_compile(xla)
    if value != "auto":
        network.jit_compile = value


def versions() -> dict[str, str]:
    """Returns the versions of Python, Keras and the running backend's framework."""
    backend = name()
    module = importlib.import_module(backend)
    return {"backend": backend, backend: module.__version__, "keras": keras.__version__, "python": platform.python_version()}
