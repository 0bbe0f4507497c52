"""Where training runs, on each backend, and with what precision. See docs/model.md, "Training on
GPU machines".

--distribute   TensorFlow                                   JAX                                   torch
none           one device                                   one device                            one device
mirrored       tf.distribute.MirroredStrategy (local GPUs)  keras.distribution.DataParallel       (refused)
multiworker    MultiWorkerMirroredStrategy (TF_CONFIG)      (refused)                             (refused)

A `Placement` hides the difference from the trainer: where to build the model, where to fit it,
how many replicas share a batch, and which worker writes the run folder. TensorFlow is imported
only under the TensorFlow backend.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import keras

from model import ModelError
from model import backend as backends


@dataclass
class Placement:
    """How a run is spread over devices: replicas (devices sharing each batch), whether this
    process writes the run folder (chief), how many machines take part (workers), and the
    tf.distribute strategy (TensorFlow) or keras.distribution layout (JAX) behind it, if any."""

    mode: str = "none"
    replicas: int = 1
    chief: bool = True
    workers: int = 1
    strategy: object | None = None  # tf.distribute.Strategy, TensorFlow backend only
    distribution: object | None = None  # keras.distribution.DataParallel, JAX backend only

    def build_scope(self):
        """Returns the context in which the model and its optimizer are created."""
        if self.strategy is not None:
            return self.strategy.scope()
        if self.distribution is not None:
            return self.distribution.scope()
        return contextlib.nullcontext()

    def fit_scope(self):
        """Returns the context in which model.fit runs (tf.distribute needs none: the model keeps its strategy)."""
        if self.distribution is not None:
            return self.distribution.scope()
        return contextlib.nullcontext()

    @property
    def pad_to(self) -> int:
        """Returns the multiple every batch must be padded to (JAX data parallelism splits batches evenly)."""
        return self.replicas if self.distribution is not None else 1


def choose_placement(distribute: str) -> Placement:
    """Returns the Placement for --distribute none | mirrored | multiworker on the running backend.

    Raises ModelError where the backend cannot do what is asked, saying which backend can.
    """
    if distribute not in ("none", "mirrored", "multiworker"):
        raise ModelError(f"unknown --distribute {distribute!r}")
    backend = backends.name()
    if backend == "tensorflow":
        strategy = choose_strategy(distribute)
        return Placement(distribute, strategy.num_replicas_in_sync, is_chief(strategy), worker_count(strategy), strategy=strategy)
    if distribute == "none":
        return Placement()
    if backend == "jax" and distribute == "mirrored":
        devices = keras.distribution.list_devices()
        return Placement(distribute, len(devices), distribution=keras.distribution.DataParallel(devices=devices))
    if distribute == "multiworker":
        raise ModelError(f"--distribute multiworker needs the TensorFlow backend (running {backend}); "
                         "on one machine's GPUs use --distribute mirrored under tensorflow or jax")
    raise ModelError(f"--distribute mirrored needs the TensorFlow or JAX backend (running {backend}): "
                     "set KERAS_BACKEND=jax or KERAS_BACKEND=tensorflow")


def choose_strategy(distribute: str):
    """Returns the tf.distribute strategy for --distribute none | mirrored | multiworker (TensorFlow backend).

    multiworker reads the cluster from TF_CONFIG (one JSON per machine; see docs/model.md).
    """
    import tensorflow as tf

    if distribute == "none":
        return tf.distribute.get_strategy()
    if distribute == "mirrored":
        return tf.distribute.MirroredStrategy()
    if distribute == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise ModelError("--distribute multiworker needs the TF_CONFIG environment variable on every machine (see docs/model.md)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ModelError(f"unknown --distribute {distribute!r}")


def is_chief(strategy) -> bool:
    """Returns True on the worker that writes the run folder (always True without multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (not has_chief and resolver.task_type == "worker" and resolver.task_id == 0)


def worker_count(strategy) -> int:
    """Returns the number of machines taking part (1 without multi-worker training)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return sum(len(spec.get(job, [])) for job in ("chief", "worker"))


def patch_keras_multiworker(model: keras.Model, data) -> None:
    """Lets model.fit run across several machines under MultiWorkerMirroredStrategy (TensorFlow).

    Keras 3.15 (keras-team/keras#20585) reduces values across workers in two ways that fail
    there: the whole first batch before it builds the metrics, and every scalar metric with
    strategy.reduce(axis=0). So the model is built from the dataset's element spec instead, and
    the steps return their metrics as 1-element vectors (which that reduce can average).
    """
    import tensorflow as tf

    strategy = model.distribute_strategy

    def build(iterator=None, data_batch=None):
        with strategy.scope():
            model._symbolic_build(data_batch=data.element_spec)

    def as_vectors(step):
        return lambda batch: {name: tf.reshape(value, [1]) for name, value in step(batch).items()}

    model._maybe_symbolic_build = build
    model.train_step = as_vectors(model.train_step)
    model.test_step = as_vectors(model.test_step)


def choose_precision(mode: str) -> str:
    """Returns the Keras dtype policy for --mixed-precision auto | on | off.

    auto is on when the running backend sees a GPU. On a GPU mixed precision means float16 with
    loss scaling; forced on a CPU it means bfloat16, which CPUs support.
    """
    has_gpu = bool(backends.gpus())
    if mode == "off" or (mode == "auto" and not has_gpu):
        return "float32"
    return "mixed_float16" if has_gpu else "mixed_bfloat16"
