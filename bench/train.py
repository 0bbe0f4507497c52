"""Benchmark of the IDFNP trainer, side by side on the same input:

1. training step time of IDFNP against a plain keras.applications.InceptionV3 (same batch, same
   RMSProp settings): the ratio is what the DeepID branch and the concatenation cost (target <= 1.15);
2. input throughput (decode, cache, augment, batch: tf.data under TensorFlow, the NumPy
   PyDataset under JAX or torch) against the rate at which the IDFNP step consumes images, so the
   input pipeline is never the bottleneck (target >= 3x);
3. CPU inference, images/s (batch) and ms per image (batch 1).

The input is a SYNTHETIC demo export (model/demo_export.py: drawn cartoons, not faces) unless
--export names one. Small defaults finish in a few minutes on a 2-core CPU; KERAS_BACKEND picks
the backend (tensorflow by default). The GPU check is bench/gpu_check.py.

    .venv/bin/python bench/train.py [--image-size 299] [--batch-size 8] [--steps 5] [--xla auto|on|off] [--export DIR] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from model import backend as backends  # noqa: E402
from model.config import XLA, TrainConfig  # noqa: E402
from model.data import iterate_batches, make_dataset  # noqa: E402
from model.demo_export import write_demo_export  # noqa: E402
from model.idfnp import build_model  # noqa: E402
from model.manifest import partition, read_manifest  # noqa: E402
from model.trainer import make_optimizer  # noqa: E402


def plain_inception_v3(image_size: int) -> keras.Model:
    """Returns keras.applications.InceptionV3 with its own 7-way top, as Keras ships it."""
    return keras.applications.InceptionV3(weights=None, input_shape=(image_size, image_size, 3), classes=7)


def step_seconds(models: dict[str, keras.Model], images: np.ndarray, labels: np.ndarray, steps: int,
                 xla: str = "auto") -> dict[str, tuple[float, float]]:
    """Returns {name: (first-step seconds, median seconds of `steps` further training steps)} on one batch.

    The timed steps alternate between the models, so load from elsewhere on the machine falls on both.
    """
    first, times = {}, {name: [] for name in models}
    for name, model in models.items():
        model.compile(optimizer=make_optimizer(TrainConfig()), loss="sparse_categorical_crossentropy",
                      jit_compile=backends.jit_compile(xla))
        started = time.perf_counter()
        model.train_on_batch(images, labels)  # builds and compiles the graph
        model.train_on_batch(images, labels)
        first[name] = time.perf_counter() - started
    for _ in range(steps):
        for name, model in models.items():
            started = time.perf_counter()
            model.train_on_batch(images, labels)
            times[name].append(time.perf_counter() - started)
    return {name: (first[name], statistics.median(times[name])) for name in models}


def input_throughput(frame, image_size: int, batch_size: int, epochs: int = 3) -> tuple[float, float]:
    """Returns images/s of the training pipeline: (first pass, which decodes; later passes, from the cache)."""
    data = make_dataset(frame, image_size, batch_size, training=True)
    rates = []
    for _ in range(epochs):
        started, count = time.perf_counter(), 0
        for images, *_ in iterate_batches(data):
            count += int(images.shape[0])
        rates.append(count / (time.perf_counter() - started))
        if hasattr(data, "on_epoch_end"):
            data.on_epoch_end()  # the NumPy pipeline's next epoch: a new shuffle
    return rates[0], statistics.median(rates[1:])


def inference_rate(model: keras.Model, image_size: int, batch_size: int, repeats: int) -> tuple[float, float]:
    """Returns (images/s at `batch_size`, ms per image at batch 1) of model.predict_on_batch."""
    batch = np.random.default_rng(0).uniform(0, 255, (batch_size, image_size, image_size, 3)).astype("float32")
    model.predict_on_batch(batch)
    model.predict_on_batch(batch[:1])
    started = time.perf_counter()
    for _ in range(repeats):
        model.predict_on_batch(batch)
    per_batch = (time.perf_counter() - started) / repeats
    singles = []
    for _ in range(repeats * 2):
        started = time.perf_counter()
        model.predict_on_batch(batch[:1])
        singles.append(time.perf_counter() - started)
    return batch_size / per_batch, 1000 * statistics.median(singles)


def main() -> int:
    """Runs the three measurements and prints them; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=299)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per model")
    parser.add_argument("--infer-batch", type=int, default=16)
    parser.add_argument("--xla", choices=XLA, default="auto", help="XLA for the training steps (auto: Keras' choice)")
    parser.add_argument("--export", type=Path, help="an export folder (default: a synthetic demo export)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        export = args.export or write_demo_export(Path(scratch) / "demo", subjects_per_class=4, seed=1)
        frame = partition(read_manifest(export))["train"]
        rng = np.random.default_rng(0)
        images = rng.uniform(0, 255, (args.batch_size, args.image_size, args.image_size, 3)).astype("float32")
        labels = rng.integers(0, 7, args.batch_size)

        keras.utils.set_random_seed(0)
        idfnp = build_model("idfnp", args.image_size, weights=None)
        timed = step_seconds({"idfnp": idfnp, "inception_v3": plain_inception_v3(args.image_size)}, images, labels, args.steps, args.xla)
        (idfnp_first, idfnp_step), (inception_first, inception_step) = timed["idfnp"], timed["inception_v3"]
        decode_rate, cached_rate = input_throughput(frame, args.image_size, args.batch_size)
        consumption = args.batch_size / idfnp_step
        inference, latency_ms = inference_rate(idfnp, args.image_size, args.infer_batch, repeats=3)

    figures = {
        "settings": {
            "image_size": args.image_size, "batch_size": args.batch_size, "steps": args.steps,
            "export": str(args.export) if args.export else "synthetic demo export (model.demo_export)",
            "training_images": len(frame), "cpu_threads": os.cpu_count(),
            "gpus": backends.gpus(), "xla": args.xla, **backends.versions(),
        },
        "step_seconds": {"idfnp": idfnp_step, "inception_v3": inception_step},
        "first_two_steps_seconds": {"idfnp": idfnp_first, "inception_v3": inception_first},
        "step_ratio_idfnp_over_inception_v3": idfnp_step / inception_step,
        "input_images_per_s": {"first_pass_decoding": decode_rate, "cached": cached_rate},
        "model_consumes_images_per_s": consumption,
        "input_over_consumption": {"first_pass": decode_rate / consumption, "cached": cached_rate / consumption},
        "inference": {"images_per_s": inference, "batch": args.infer_batch, "ms_per_image_batch_1": latency_ms},
    }
    s = figures
    versions = backends.versions()
    print(f"settings: {args.image_size} px, batch {args.batch_size}, median of {args.steps} steps, {os.cpu_count()} CPU threads, "
          f"{versions['backend']} {versions[versions['backend']]}, Keras {versions['keras']}, XLA {args.xla}")
    print(f"training step  IDFNP {s['step_seconds']['idfnp']:.3f} s   InceptionV3 {s['step_seconds']['inception_v3']:.3f} s   "
          f"ratio {s['step_ratio_idfnp_over_inception_v3']:.3f} (target <= 1.15)")
    print(f"input pipeline ({'tf.data' if backends.name() == 'tensorflow' else 'PyDataset'}) {decode_rate:.0f} images/s first pass (decode), {cached_rate:.0f} images/s cached; "
          f"IDFNP consumes {consumption:.1f} images/s -> {decode_rate / consumption:.1f}x / {cached_rate / consumption:.1f}x (target >= 3x)")
    print(f"CPU inference  {inference:.1f} images/s at batch {args.infer_batch}; {latency_ms:.0f} ms per image at batch 1")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
