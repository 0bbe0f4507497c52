"""Command line: `python -m model train | evaluate | predict` (a thin layer over trainer,
evaluation and predict). Input is checked before Keras and its backend are imported, and problems
are reported as one `error:` line with exit status 2. The backend is Keras' KERAS_BACKEND
(tensorflow by default, jax or torch).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from model import CLASSES, MOVEMENTS, ModelError
from model.config import ARCHITECTURES, DISTRIBUTE, MIXED_PRECISION, XLA, TrainConfig
from labeling.vocabulary import SOURCES

XLA_HELP = "XLA-compile the steps: auto (default: Keras' choice, on for one GPU), on, off"


def parser(prog: str = "python -m model") -> argparse.ArgumentParser:
    """Returns the argument parser of `python -m model` (`prog`: how usage lines name the command)."""
    main = argparse.ArgumentParser(prog=prog, description="IDFNP trainer (Song et al. 2018). See docs/model.md.")
    commands = main.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model on an export folder")
    train.add_argument("--export", type=Path, help="export folder with manifest.csv (not needed with --resume)")
    train.add_argument("--out", type=Path, required=True, help="run folder to create (or to resume)")
    train.add_argument("--arch", choices=ARCHITECTURES, help="architecture (default idfnp)")
    train.add_argument("--epochs", type=int, help="epochs in total (default 90; with --resume, a new total)")
    train.add_argument("--image-size", type=int, help="input side in pixels (default 299)")
    train.add_argument("--weights", help="imagenet (default), none, or the path of Keras' no-top .h5 file")
    folds = train.add_mutually_exclusive_group()
    folds.add_argument("--fold", type=int, help="validate on fold K of train+val, train on the others")
    folds.add_argument("--cv", action="store_true", help="train every fold in turn and report mean/std")
    train.add_argument("--batch-size", type=int, help="global training batch (default 60)")
    train.add_argument("--mixed-precision", choices=MIXED_PRECISION, help="default auto: on when a GPU is present")
    train.add_argument("--distribute", choices=DISTRIBUTE,
                       help="none (default), mirrored (GPUs of one machine; tensorflow or jax), multiworker (TF_CONFIG; tensorflow)")
    train.add_argument("--xla", choices=XLA, help=XLA_HELP)
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    train.add_argument("--seed", type=int, help="random seed (default 0)")

    evaluate = commands.add_parser("evaluate", help="write metrics.json and predictions.csv for a split")
    evaluate.add_argument("--run", type=Path, required=True)
    evaluate.add_argument("--split", choices=("train", "val", "test"), default="test")
    evaluate.add_argument("--xla", choices=XLA, default="auto", help=XLA_HELP)

    predict = commands.add_parser("predict", help="predict the class of photos")
    predict.add_argument("--run", type=Path, required=True)
    predict.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    predict.add_argument("--precropped", action="store_true", help="images are already cropped like the export: only resize")
    predict.add_argument("--movement", choices=MOVEMENTS, help="movement shown, so the crop keeps its muscles")
    flip = predict.add_mutually_exclusive_group()
    flip.add_argument("--mirrored", action="store_true", default=None,
                      help="mirrored (front-camera) photos: flipped like the export so the patient's left is on the image's right")
    flip.add_argument("--not-mirrored", dest="mirrored", action="store_false", help="photos as a normal camera sees the patient")
    predict.add_argument("--source", choices=SOURCES,
                         help="where the photos come from, as in the import manifest: mobile means mirrored unless --not-mirrored")
    predict.add_argument("--xla", choices=XLA, default="auto", help=XLA_HELP)
    predict.add_argument("--json", action="store_true", help="print one JSON object per image")
    return main


SETTING_OPTIONS = {
    "arch": "arch",
    "epochs": "epochs",
    "image_size": "image_size",
    "weights": "weights",
    "fold": "fold",
    "batch_size": "batch_size",
    "mixed_precision": "mixed_precision",
    "distribute": "distribute",
    "xla": "xla",
    "seed": "seed",
}
CHANGEABLE_ON_RESUME = ("epochs", "xla")  # how long, and how the steps are compiled; nothing the model is


def train_settings(args: argparse.Namespace) -> tuple[TrainConfig, Path]:
    """Returns (settings, export folder) for `train`: the given options over the paper's defaults,
    or over the stored settings with --resume (where only --epochs may change)."""
    given = {field: getattr(args, option) for option, field in SETTING_OPTIONS.items() if getattr(args, option) is not None}
    if args.cv:
        given["cv"] = True
    if not args.resume:
        if args.export is None:
            raise ModelError("--export is required (except with --resume)")
        return TrainConfig(**given), args.export
    from model.runs import read_run_config

    header = read_run_config(args.out)
    stored = TrainConfig.from_dict(header["train"])
    ignored = sorted(k for k, v in given.items() if k not in CHANGEABLE_ON_RESUME and getattr(stored, k) != v)
    if ignored:
        print(f"note: --resume keeps the run's settings; ignoring {', '.join(ignored)}", file=sys.stderr)
    stored = dataclasses.replace(stored, **{k: v for k, v in given.items() if k in CHANGEABLE_ON_RESUME})
    return stored, Path(header["export"])


def check_weights(config: TrainConfig) -> None:
    """Raises ModelError when --weights names a file that does not exist."""
    if config.weights not in ("imagenet", "none") and not Path(config.weights).is_file():
        raise ModelError(f"--weights: no such file {config.weights} (use imagenet, none or a .h5 path)")


def run_train(args: argparse.Namespace) -> int:
    """Trains; returns the exit status."""
    from model.manifest import read_manifest

    config, export = train_settings(args)
    problems = config.problems()
    if problems:
        raise ModelError("; ".join(problems))
    check_weights(config)
    read_manifest(export)  # reject a bad export before the slow TensorFlow import
    from model.trainer import train

    run = train(config, export, args.out, resume=args.resume)
    print(f"run folder: {run}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluates a run on a split and prints the main figures; returns the exit status."""
    from model.runs import read_run_config

    read_run_config(args.run)
    from model.evaluation import evaluate_run

    metrics = evaluate_run(args.run, args.split, xla=args.xla)
    if "mean" in metrics:
        print(f"{args.split}: accuracy {metrics['mean']['accuracy']:.3f} +- {metrics['std']['accuracy']:.3f} over {len(metrics['folds'])} folds")
    figures = metrics.get("ensemble") or metrics.get("pooled") or (None if "mean" in metrics else metrics)
    if figures is None:
        return 0
    kind = {"ensemble": " (mean of the fold models)", "pooled": " (out-of-fold)"}
    print(f"{args.split}: {figures['images']} images, accuracy {figures['accuracy']:.3f}" + next((kind[k] for k in kind if k in metrics), ""))
    print("class  precision  sensitivity  images")
    for name in CLASSES:
        p, s = figures["precision"][name], figures["sensitivity"][name]
        print(f"{name:<5}  {'-' if p is None else f'{p:.3f}':>9}  {'-' if s is None else f'{s:.3f}':>11}  {figures['support'][name]:>6}")
    print(f"written: {args.run / 'metrics.json'}, {args.run / 'predictions.csv'}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    """Predicts photos and prints one line (or JSON object) per image; returns the exit status
    (1 when some image could not be predicted)."""
    from model.runs import trained_model_paths

    trained_model_paths(args.run)
    from model.predict import predict_images

    if args.precropped and (args.mirrored is not None or args.source):
        print("note: --mirrored, --not-mirrored and --source apply to raw photos; pre-cropped images are used as they are",
              file=sys.stderr)
    results = predict_images(args.run, args.images, precropped=args.precropped, movement=args.movement,
                             mirrored=args.mirrored, source=args.source, xla=args.xla)
    for result in results:
        if result.warning:
            print(f"warning: {result.image}: {result.warning}", file=sys.stderr)
    if not args.json:
        print("image\tstatus\tpredicted\t" + "\t".join(CLASSES) + "\tms")
    for result in results:
        if args.json:
            print(json.dumps(dataclasses.asdict(result)))
        elif result.status != "ok":
            print(f"{result.image}\t{result.status}")
        else:
            probabilities = "\t".join(f"{result.probabilities[c]:.3f}" for c in CLASSES)
            print(f"{result.image}\tok\t{result.predicted}\t{probabilities}\t{result.seconds * 1000:.1f}")
    return 0 if all(r.status == "ok" for r in results) else 1


def main(argv: list[str] | None = None, prog: str = "python -m model") -> int:
    """Runs `python -m model`; returns the exit status (2 for unusable input, one line on stderr)."""
    args = parser(prog).parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    commands = {"train": run_train, "evaluate": run_evaluate, "predict": run_predict}
    try:
        return commands[args.command](args)
    except ModelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; a training run continues with --resume", file=sys.stderr)
        return 130
