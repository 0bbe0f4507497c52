"""Trains IDFNP or a baseline on an export (paper §2.5): placement on devices, mixed precision,
XLA, RMSProp with the paper's step decay, per-epoch checkpoints and --resume, TensorBoard,
progress, and the run folder described in model/runs.py. Runs on every Keras backend
(KERAS_BACKEND=tensorflow, jax or torch); TensorFlow is imported only under its own backend.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import keras
import pandas as pd

from model import CLASSES, ModelError
from model import backend as backends
from model.config import TrainConfig, learning_rate_at
from model.data import iterate_batches, make_dataset
from model.distribute import (
    Placement,
    choose_placement,
    choose_precision,
    patch_keras_multiworker,
)
from model.evaluation import evaluate_model, save_results, summarize_cv
from model.idfnp import build_model
from model.manifest import folds_of, partition, read_manifest
from model.runs import read_run_config, write_json

CHECKPOINT = "last.weights.h5"
STATE = "state.json"


def make_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    """Returns RMSProp with the paper's settings (§2.5: lr 0.001, decay 0.9, momentum 0.9, epsilon 0.1).

    Keras adds epsilon under the square root, as TF-slim's RMSProp did. One difference remains:
    TF 1's RMSProp started its mean-square average at 1, Keras' starts it at 0, so the first steps
    here are larger than TF 1's were.
    """
    return keras.optimizers.RMSprop(
        learning_rate=config.learning_rate, rho=config.rho, momentum=config.momentum, epsilon=config.epsilon
    )


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the weights with the optimizer state, and the number of epochs done, after every epoch.

    Both files are replaced atomically, so an interrupted run resumes from its last whole epoch.
    """

    def __init__(self, directory: Path):
        super().__init__()
        self.directory = Path(directory)

    def on_epoch_end(self, epoch, logs=None):
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.directory / ("partial." + CHECKPOINT)
        self.model.save_weights(partial)
        partial.replace(self.directory / CHECKPOINT)
        write_json(self.directory / STATE, {"epochs_done": epoch + 1, "time": time.time()})


class ScheduleFromConfig(keras.callbacks.LearningRateScheduler):
    """Sets the learning rate at the start of every epoch from learning_rate_at (x0.16 every 30)."""

    def __init__(self, config: TrainConfig):
        super().__init__(lambda epoch, _lr: learning_rate_at(epoch, config))


def tensorboard_callbacks(log_dir: Path) -> list[keras.callbacks.Callback]:
    """Returns [the TensorBoard callback], or [] with a note when the tensorboard package (which
    tf.summary needs to write logs) is not installed, or the backend is not TensorFlow (Keras
    writes the logs through tf.summary, and GPU machines running JAX or torch often lack it)."""
    if backends.name() != "tensorflow":
        say(f"note: no TensorBoard logs under the {backends.name()} backend; history.csv has the curves")
        return []
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        say("note: no TensorBoard logs (the tensorboard package is not installed)")
        return []
    return [keras.callbacks.TensorBoard(log_dir=str(log_dir))]


def compiled_model(config: TrainConfig, weights: str | None) -> keras.Model:
    """Returns the run's model compiled for training (RMSProp, cross-entropy, accuracy)."""
    model = build_model(config.arch, config.image_size, weights=weights, dropout=config.dropout, deepid_size=config.deepid_size)
    model.compile(optimizer=make_optimizer(config), loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=backends.jit_compile(config.xla))
    return model


def restore_checkpoint(model: keras.Model, run_dir: Path) -> None:
    """Loads the run's last checkpoint (weights and optimizer state) into a compiled model."""
    model.optimizer.build(model.trainable_variables)
    model.load_weights(Path(run_dir) / "checkpoints" / CHECKPOINT)


def checkpoint_state(run_dir: Path) -> int:
    """Returns how many epochs the run's checkpoint holds (0 when there is none)."""
    state = run_dir / "checkpoints" / STATE
    weights = run_dir / "checkpoints" / CHECKPOINT
    if not (state.is_file() and weights.is_file()):
        return 0
    return int(json.loads(state.read_text())["epochs_done"])


def weights_argument(config: TrainConfig) -> str | None:
    """Returns the keras.applications `weights` value for the run's --weights setting."""
    if config.weights == "none" or config.arch == "deepid":
        return None
    return config.weights


def inference_copy(model: keras.Model, config: TrainConfig) -> keras.Model:
    """Returns a float32, uncompiled copy of a trained model (the model.keras users load), whose
    predict follows config.xla."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        copy = build_model(config.arch, config.image_size, weights=None, dropout=config.dropout, deepid_size=config.deepid_size)
    finally:
        keras.config.set_dtype_policy(previous)
    copy.set_weights(model.get_weights())
    backends.set_jit_compile(copy, config.xla)
    return copy


def batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Returns every BatchNormalization layer of a model, nested models included."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += batch_norm_layers(layer)
        elif isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
    return found


def recalibrate_batch_norm(model: keras.Model, data, max_batches: int = 200) -> int:
    """Re-estimates the moving mean and variance of every batch-norm layer as the plain average
    over up to `max_batches` batches of `data` (a make_dataset result), weights unchanged;
    returns the batches used.

    Keras keeps exponential averages (momentum 0.99) that lag behind weights which are still
    moving, which in short runs leaves inference-mode predictions far from training-mode ones;
    averaging with the final weights fixes that ("precise BN", Wu & Johnson 2021, "Rethinking
    'Batch' in BatchNorm", §3). It changes nothing the optimiser learned.
    """
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    used = 0
    try:
        for used, (images, *_) in enumerate(iterate_batches(data, max_batches), 1):
            for layer in layers:
                layer.momentum = (used - 1) / used  # running mean of the batch statistics
            model(images, training=True)  # eager: each batch reads the momentum just set
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return used


def write_history(run_dir: Path, epochs_before: int) -> None:
    """Keeps history.csv's first `epochs_before` rows (what the checkpoint holds) before a resume."""
    path = run_dir / "history.csv"
    if path.is_file() and path.stat().st_size:
        history = pd.read_csv(path)
        history[history["epoch"] < epochs_before].to_csv(path, index=False)


def history_json(run_dir: Path) -> None:
    """Writes history.json (column lists by metric) from history.csv."""
    history = pd.read_csv(run_dir / "history.csv")
    write_json(run_dir / "history.json", {c: history[c].tolist() for c in history.columns})


def run_header(config: TrainConfig, export: Path, parts: dict, policy: str, placement: Placement) -> dict:
    """Returns the run's config.json content: settings, export, partition sizes, environment."""
    return {
        "train": config.to_dict(),
        "export": str(Path(export).resolve()),
        "classes": list(CLASSES),
        "images": {name: len(part) for name, part in parts.items()},
        "dtype_policy": policy,
        "replicas": placement.replicas,
        "backend": backends.name(),
        "gpus": backends.gpus(),
        "versions": backends.versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def say(text: str) -> None:
    """Prints a progress line (flushed, so it shows in logs at once)."""
    print(text, flush=True)


def train_single(
    config: TrainConfig,
    export: Path,
    manifest: pd.DataFrame,
    run_dir: Path,
    placement: Placement,
    policy: str,
    resume: bool,
) -> Path:
    """Trains one model (a plain run or one fold) into run_dir and evaluates it on val and test.

    Returns run_dir. With resume, continues from the last checkpoint; a finished run is left as is.
    """
    chief = placement.chief
    parts = partition(manifest, config.fold)
    epochs_done = checkpoint_state(run_dir) if resume else 0
    if resume and epochs_done >= config.epochs and (run_dir / "model.keras").is_file():
        say(f"{run_dir}: already trained for {epochs_done} epochs")
        return run_dir
    if not len(parts["train"]):
        raise ModelError(f"no training images for {run_dir.name}")
    keras.utils.set_random_seed(config.seed + epochs_done)
    with placement.build_scope():
        # A checkpoint replaces every weight, so a resumed run does not fetch ImageNet weights again.
        model = compiled_model(config, weights=None if epochs_done else weights_argument(config))
        if epochs_done:
            restore_checkpoint(model, run_dir)
    pad = placement.pad_to
    if config.batch_size % pad or config.val_batch_size % pad:
        say(f"note: batches do not split evenly over {pad} devices; each is padded with zero-weight copies to a multiple of {pad}")
    train_data = make_dataset(parts["train"], config.image_size, config.batch_size, True, config.seed + epochs_done, config.augment, pad_to=pad)
    val_data = make_dataset(parts["val"], config.image_size, config.val_batch_size, False, pad_to=pad) if len(parts["val"]) else None

    if placement.workers > 1:
        patch_keras_multiworker(model, train_data)

    write_dir = run_dir if chief else Path(tempfile.mkdtemp(prefix="fnp-worker-"))
    write_dir.mkdir(parents=True, exist_ok=True)
    if chief and not (resume and (run_dir / "config.json").is_file()):
        write_json(run_dir / "config.json", run_header(config, export, parts, policy, placement))
    if chief:
        write_history(run_dir, epochs_done)

    callbacks = [ScheduleFromConfig(config), keras.callbacks.CSVLogger(str(write_dir / "history.csv"), append=True)]
    callbacks.append(EpochCheckpoint(write_dir / "checkpoints"))
    if chief:
        callbacks += tensorboard_callbacks(run_dir / "logs")
    fold_text = f", fold {config.fold}" if config.fold is not None else ""
    say(
        f"{config.arch}{fold_text}: {len(parts['train'])} training / {len(parts['val'])} validation images, "
        f"epochs {epochs_done + 1}-{config.epochs}, batch {config.batch_size}, {policy}, XLA {config.xla}, "
        f"{backends.name()} backend, {placement.replicas} replica(s) -> {run_dir}"
    )
    with placement.fit_scope():
        model.fit(
            train_data,
            validation_data=val_data,
            epochs=config.epochs,
            initial_epoch=epochs_done,
            callbacks=callbacks,
            verbose=1 if sys.stdout.isatty() else 2,
            shuffle=False,  # the dataset reshuffles itself every epoch
        )
    if not chief:
        shutil.rmtree(write_dir, ignore_errors=True)
        return run_dir
    final = inference_copy(model, config)
    if config.precise_bn_batches:
        plain = make_dataset(parts["train"], config.image_size, config.batch_size, True, config.seed, augmentation=False)
        used = recalibrate_batch_norm(final, plain, config.precise_bn_batches)
        if used:
            say(f"batch-norm statistics re-estimated over {used} training batches")
    final.save(run_dir / "model.keras")
    history_json(run_dir)
    predictions, metrics = evaluate_model(final, parts, config, splits=("val", "test"))
    save_results(run_dir, predictions, metrics, config)
    for split, figures in metrics.items():
        say(f"{run_dir.name} {split}: accuracy {figures['accuracy']:.3f} on {figures['images']} images")
    return run_dir


def train(config: TrainConfig, export: str | Path, out: str | Path, resume: bool = False) -> Path:
    """Trains as `config` says (one run, one fold, or every fold with config.cv) and returns the run folder.

    Raises ModelError for unusable input, an existing run folder without resume, or missing weights.
    """
    problems = config.problems()
    if problems:
        raise ModelError("; ".join(problems))
    out, export = Path(out), Path(export)
    if resume and not (out / "config.json").is_file():
        raise ModelError(f"nothing to resume in {out} (no config.json)")
    if not resume and out.exists() and any(out.iterdir()):
        raise ModelError(f"run folder {out} already exists; choose another --out or pass --resume")
    placement = choose_placement(config.distribute)
    manifest = read_manifest(export)
    fresh = not out.exists()
    try:
        return train_folds(config, export, manifest, out, placement, resume)
    except ModelError:
        if fresh and not list(out.glob("**/checkpoints/" + STATE)):
            shutil.rmtree(out, ignore_errors=True)  # a run that failed before its first epoch leaves nothing
        raise


def train_folds(
    config: TrainConfig, export: Path, manifest: pd.DataFrame, out: Path, placement: Placement, resume: bool
) -> Path:
    """Trains one run, or with config.cv every fold then the summary; returns the run folder."""
    policy = read_run_config(out).get("dtype_policy") if resume else None
    policy = policy or choose_precision(config.mixed_precision)
    if config.arch == "deepid" and config.weights != "none":
        say("deepid has no ImageNet weights: it trains from random initialisation")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        if not config.cv:
            return train_single(config, export, manifest, out, placement, policy, resume)
        folds = folds_of(manifest)
        if len(folds) < 2:
            raise ModelError(f"--cv needs at least two folds among the train/val images, found {folds}")
        out.mkdir(parents=True, exist_ok=True)
        if placement.chief and not (resume and (out / "config.json").is_file()):
            header = run_header(config, export, partition(manifest), policy, placement)
            header["folds"] = folds
            write_json(out / "config.json", header)
        for number, fold in enumerate(folds, 1):
            say(f"--- fold {fold} ({number}/{len(folds)}) ---")
            keras.backend.clear_session()
            fold_config = dataclasses.replace(config, fold=fold, cv=False)
            train_single(fold_config, export, manifest, out / f"fold-{fold}", placement, policy, resume)
        if placement.chief:
            summary = summarize_cv(out, splits=("val", "test"))
            for split, figures in summary["splits"].items():
                say(
                    f"cv {split}: accuracy {figures['mean']['accuracy']:.3f} +- {figures['std']['accuracy']:.3f} "
                    f"over {len(figures['folds'])} folds"
                )
        return out
    finally:
        keras.config.set_dtype_policy(previous)
