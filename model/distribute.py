"""Where training runs: one device, the GPUs of one machine (MirroredStrategy) or several machines
(MultiWorkerMirroredStrategy through TF_CONFIG), which worker writes the run folder, and mixed
precision. See docs/model.md, "Training on GPU machines".
"""
from __future__ import annotations

import os

import keras
import tensorflow as tf

from model import ModelError


def choose_strategy(distribute: str) -> tf.distribute.Strategy:
    """Returns the tf.distribute strategy for --distribute none | mirrored | multiworker.

    multiworker reads the cluster from TF_CONFIG (one JSON per machine; see docs/model.md).
    """
    if distribute == "none":
        return tf.distribute.get_strategy()
    if distribute == "mirrored":
        return tf.distribute.MirroredStrategy()
    if distribute == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise ModelError("--distribute multiworker needs the TF_CONFIG environment variable on every machine (see docs/model.md)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ModelError(f"unknown --distribute {distribute!r}")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Returns True on the worker that writes the run folder (always True without multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (not has_chief and resolver.task_type == "worker" and resolver.task_id == 0)


def worker_count(strategy: tf.distribute.Strategy) -> int:
    """Returns the number of machines taking part (1 without multi-worker training)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return sum(len(spec.get(job, [])) for job in ("chief", "worker"))


def patch_keras_multiworker(model: keras.Model, data: tf.data.Dataset) -> None:
    """Lets model.fit run across several machines under MultiWorkerMirroredStrategy.

    Keras 3.15 (keras-team/keras#20585) reduces values across workers in two ways that fail
    there: the whole first batch before it builds the metrics, and every scalar metric with
    strategy.reduce(axis=0). So the model is built from the dataset's element spec instead, and
    the steps return their metrics as 1-element vectors (which that reduce can average).
    """
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

    auto is on when a GPU is present. On a GPU mixed precision means float16 with loss scaling;
    forced on a CPU it means bfloat16, which CPUs support.
    """
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    if mode == "off" or (mode == "auto" and not has_gpu):
        return "float32"
    return "mixed_float16" if has_gpu else "mixed_bfloat16"
