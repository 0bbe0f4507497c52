"""One-command GPU check of the IDFNP trainer, for any machine with one NVIDIA GPU and JAX, PyTorch
or TensorFlow (no TensorFlow needed):

1. speed: IDFNP and keras.applications' InceptionV3 (with the trainer's head) at 299 px, batch 60
   (the paper's), mixed precision, XLA on: the median training step, images/s of each side by
   side, their ratio (target: IDFNP within 1.05x of InceptionV3), compile time, peak GPU memory;
2. the input pipeline's images/s against what the IDFNP step consumes;
3. learning: `python -m model train` on a SYNTHETIC task it draws itself (model/demo_export.py:
   cartoons whose one side droops, not faces; no dlib needed): the loss must fall;
4. `python -m model evaluate` and `python -m model predict` on the trained run: accuracy on the
   unseen synthetic test subjects, and predict agreeing with evaluate image by image.
The whole check should take under 8 minutes; it prints a verdict per point and writes the figures
as JSON (--json, default gpu_check.json).

What the machine lacks (Keras, pandas, scikit-learn, ...: bench/gpu_check_requirements.txt) is
installed from a local folder of wheels (--wheels, default ./wheels) into a private folder
(--packages) that is appended to the import path, so the machine's own packages are never changed
or shadowed. docs/model.md ("The GPU check") says how to prepare the wheels and run it:

    python3 bench/gpu_check.py [--wheels DIR] [--backend jax|torch|tensorflow] [--json OUT]
    python3 bench/gpu_check.py --smoke      # a tiny run on the CPU: the mechanics, not the figures

Everything before `run_check` uses the standard library only, so it runs before anything is installed.
The GPU is used only by child processes, one at a time (the speed phase, then each `python -m model`
command), so no process holds GPU memory that another needs (JAX and TensorFlow reserve most of it
when they start using a GPU; PyTorch keeps what it used until it exits).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = Path(__file__).with_name("gpu_check_requirements.txt")
IMPORT_NAMES = {"pillow": "PIL", "scikit-learn": "sklearn"}  # distribution -> module, where they differ
BACKENDS = ("jax", "torch", "tensorflow")  # tried in this order when none is given
TIME_LIMIT_S = 8 * 60
STEP_RATIO_TARGET = 1.05

# (full check on a GPU, --smoke on a CPU)
SIZES = {
    False: dict(image_size=299, batch_size=60, timed_steps=30, subjects=15, movements=6, export_size=299, epochs=10),
    True: dict(image_size=75, batch_size=14, timed_steps=2, subjects=3, movements=2, export_size=80, epochs=2),
}


def parse_args(argv=None) -> argparse.Namespace:
    """Returns the command-line options."""
    parser = argparse.ArgumentParser(description="One-command GPU check of the IDFNP trainer (see docs/model.md).")
    parser.add_argument("--wheels", type=Path, default=Path("wheels"), help="folder of wheels for what is missing (default ./wheels)")
    parser.add_argument("--packages", type=Path, help="where missing packages are installed (default ~/.cache/fnp-gpu-check/pyX.Y)")
    parser.add_argument("--backend", choices=BACKENDS, help="Keras backend (default: KERAS_BACKEND, else the first of jax, torch, tensorflow that sees a GPU)")
    parser.add_argument("--xla", choices=("on", "off", "auto"), help="default on (under torch: auto, i.e. eager; on means torch.compile there)")
    parser.add_argument("--json", type=Path, default=Path("gpu_check.json"), help="where to write the figures")
    parser.add_argument("--work", type=Path, help="folder for the synthetic export and the run (default: a temporary one, removed)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, CPU allowed: checks the mechanics only")
    parser.add_argument("--install-only", action="store_true", help="install what is missing, then stop")
    parser.add_argument("--phase", choices=("speed",), help=argparse.SUPPRESS)  # run in a child process
    parser.add_argument("--export", type=Path, help=argparse.SUPPRESS)  # the speed phase's synthetic export
    return parser.parse_args(argv)


def requirements(path: Path | None = None) -> list[str]:
    """Returns the requirement lines of gpu_check_requirements.txt (or of `path`)."""
    path = path or REQUIREMENTS
    return [line.split("#")[0].strip() for line in path.read_text().splitlines() if line.split("#")[0].strip()]


def distribution_name(requirement: str) -> str:
    """Returns the distribution name of a requirement line ("keras==3.15.1" -> "keras")."""
    for mark in ("==", ">=", "<=", "~=", "!=", ">", "<", "["):
        requirement = requirement.split(mark)[0]
    return requirement.strip().lower()


def missing_requirements(lines: list[str]) -> list[str]:
    """Returns the requirement lines whose module cannot be imported here."""
    return [line for line in lines if importlib.util.find_spec(IMPORT_NAMES.get(distribution_name(line), distribution_name(line))) is None]


def default_packages() -> Path:
    """Returns the private install folder for this Python version."""
    return Path.home() / ".cache" / "fnp-gpu-check" / f"py{sys.version_info.major}.{sys.version_info.minor}"


def use_packages(folder: Path) -> None:
    """Appends the private install folder to the import path (here and for the commands started),
    after the machine's own packages, so it only fills gaps."""
    folder = str(folder)
    if folder not in sys.path:
        sys.path.append(folder)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *[p for p in paths if p not in (str(ROOT), folder)], folder])
    importlib.invalidate_caches()


def install_missing(missing: list[str], wheels: Path, packages: Path) -> None:
    """Installs the missing requirements (and what they need) from the wheel folder alone into the
    private folder; raises SystemExit with what to do when that cannot work."""
    if not wheels.is_dir():
        sys.exit(
            f"error: missing {', '.join(missing)} and no wheel folder at {wheels}. On a machine with internet and the "
            f"same Python ({platform.python_version()}) and platform, run\n"
            f"  python3 -m pip download --only-binary=:all: -d wheels -r bench/gpu_check_requirements.txt\n"
            "copy the wheels folder here and run again (or pass --wheels DIR); see docs/model.md"
        )
    packages.mkdir(parents=True, exist_ok=True)
    print(f"installing {', '.join(missing)} from {wheels} into {packages}", flush=True)
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index",
               "--find-links", str(wheels), "--target", str(packages), *missing]
    done = subprocess.run(command)
    if done.returncode:
        sys.exit(f"error: pip could not install {', '.join(missing)} from {wheels} (see above); the folder must hold "
                 "wheels for this Python and platform, and for what they depend on")


def ensure_packages(args: argparse.Namespace) -> None:
    """Makes every requirement importable: from the machine, else from the private folder, else
    installed there from the wheel folder."""
    packages = args.packages or default_packages()
    use_packages(packages)
    missing = missing_requirements(requirements())
    if missing:
        install_missing(missing, args.wheels, packages)
        use_packages(packages)
        still = missing_requirements(requirements())
        if still:
            sys.exit(f"error: still cannot import {', '.join(still)} after installing into {packages}")
    keras_version = importlib.metadata.version("keras")
    if int(keras_version.split(".")[0]) < 3:
        sys.exit(f"error: this Python has Keras {keras_version}; the trainer needs Keras 3. Run the check in a fresh "
                 "virtual environment (python3 -m venv --system-site-packages venv) so that Keras 3 comes from the wheels")


PROBE = {
    "jax": "import jax; print(any(d.platform in ('gpu', 'cuda', 'rocm') for d in jax.devices()))",
    "torch": "import torch; print(torch.cuda.is_available())",
    "tensorflow": "import tensorflow as tf; print(bool(tf.config.list_physical_devices('GPU')))",
}


def framework_sees_gpu(name: str) -> bool:
    """Returns True when the framework `name` is installed and sees a GPU (asked in a child
    process, so this one never takes GPU memory)."""
    if importlib.util.find_spec(name) is None:
        return False
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", PROBE[name]], capture_output=True, text=True, env=env, timeout=300)
    if done.returncode:
        lines = (done.stderr.strip() or "failed").splitlines()
        print(f"note: {name} is installed but cannot be used: {lines[-1][:200]}", flush=True)
        return False
    return done.stdout.strip().endswith("True")


def choose_backend(args: argparse.Namespace) -> str:
    """Returns the Keras backend to check: --backend, else KERAS_BACKEND, else the first framework
    that sees a GPU (with --smoke: the first installed one)."""
    chosen = args.backend or os.environ.get("KERAS_BACKEND")
    if chosen:
        if importlib.util.find_spec(chosen) is None:
            sys.exit(f"error: the {chosen} backend is asked for, but {chosen} is not installed")
        return chosen
    for name in BACKENDS:
        if framework_sees_gpu(name):
            return name
    installed = [name for name in BACKENDS if importlib.util.find_spec(name) is not None]
    if args.smoke and installed:
        return installed[0]
    if installed:
        sys.exit(f"error: no GPU visible to {', '.join(installed)}; check the driver (nvidia-smi) and the framework's CUDA "
                 "build, or run with --smoke to test the mechanics on the CPU")
    sys.exit("error: none of jax, torch, tensorflow is installed; install one with GPU support")


# --- From here on the packages are there and KERAS_BACKEND is set. ---------------------------------


def gpu_memory(backend: str) -> dict | None:
    """Returns {"peak": bytes, "in_use": bytes} of the first GPU as the backend counts it, or None
    (no GPU). JAX cannot reset its peak: there it is the peak since the process started."""
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        stats = device.memory_stats() if device.platform != "cpu" else None
        return {"peak": stats.get("peak_bytes_in_use"), "in_use": stats.get("bytes_in_use")} if stats else None
    if backend == "torch":
        import torch

        if not torch.cuda.is_available():
            return None
        return {"peak": torch.cuda.max_memory_allocated(), "in_use": torch.cuda.memory_allocated()}
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return None
    info = tf.config.experimental.get_memory_info("GPU:0")
    return {"peak": info["peak"], "in_use": info["current"]}


def reset_peak_memory(backend: str) -> None:
    """Resets the backend's peak-memory counter where it has one (torch, TensorFlow)."""
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
    elif backend == "tensorflow":
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            tf.config.experimental.reset_memory_stats("GPU:0")


def time_training_steps(arch: str, sizes: dict, xla: str, backend: str) -> dict:
    """Builds `arch` as the trainer does (weights none, mixed precision as set), and returns the
    seconds of its first two steps (the compile) and of `timed_steps` more, on one random batch
    already on the device, with the GPU memory it took."""
    import gc

    import keras
    import numpy as np

    from model.config import TrainConfig
    from model.trainer import compiled_model

    keras.backend.clear_session()
    gc.collect()
    reset_peak_memory(backend)
    size, batch = sizes["image_size"], sizes["batch_size"]
    config = TrainConfig(arch=arch, image_size=size, batch_size=batch, weights="none", xla=xla)
    model = compiled_model(config, weights=None)
    rng = np.random.default_rng(0)
    images = keras.ops.convert_to_tensor(rng.uniform(0, 255, (batch, size, size, 3)).astype("float32"))
    labels = keras.ops.convert_to_tensor(rng.integers(0, 7, batch).astype("int32"))
    started = time.perf_counter()
    for _ in range(2):
        model.train_on_batch(images, labels)  # returns the loss as a number: waits for the device
    compile_s = time.perf_counter() - started
    steps = []
    for _ in range(sizes["timed_steps"]):
        started = time.perf_counter()
        model.train_on_batch(images, labels)
        steps.append(time.perf_counter() - started)
    step = statistics.median(steps)
    figures = {"compile_and_first_two_steps_s": compile_s, "step_s": step, "step_s_all": steps,
               "images_per_s": batch / step, "parameters": int(model.count_params()), "memory": gpu_memory(backend)}
    del model
    return figures


def input_rate(export: Path, sizes: dict) -> dict:
    """Returns images/s of the training input pipeline on the synthetic export's training images:
    the first pass (decode) and a later one (cache)."""
    from model.data import iterate_batches, make_dataset
    from model.manifest import partition, read_manifest

    frame = partition(read_manifest(export))["train"]
    data = make_dataset(frame, sizes["image_size"], sizes["batch_size"], training=True)
    rates = []
    for _ in range(2):
        started, count = time.perf_counter(), 0
        for images, *_ in iterate_batches(data):
            count += int(images.shape[0])
        rates.append(count / (time.perf_counter() - started))
        if hasattr(data, "on_epoch_end"):
            data.on_epoch_end()
    return {"first_pass": rates[0], "cached": rates[1], "pipeline": type(data).__name__, "workers": getattr(data, "workers", None)}


def run_model_command(arguments: list[str], capture: bool = False) -> str:
    """Runs `python -m model ARGUMENTS` (the trainer's own command line) from the project folder;
    returns its output when captured. Raises RuntimeError when it fails."""
    shown = [a if len(a) < 60 else "..." + a[-40:] for a in arguments]
    print("$ python -m model " + " ".join(shown), flush=True)
    return run_child([sys.executable, "-m", "model", *arguments], f"python -m model {arguments[0]}", capture)


def run_child(command: list[str], what: str, capture: bool = False) -> str:
    """Runs a child process from the project folder; returns its output when captured. Raises
    RuntimeError when it fails."""
    done = subprocess.run(command, cwd=ROOT, env=os.environ.copy(), text=True, stdout=subprocess.PIPE if capture else None)
    if done.returncode:
        raise RuntimeError(f"{what} failed with exit status {done.returncode}")
    return done.stdout or ""


def write_export(work: Path, sizes: dict) -> Path:
    """Draws the SYNTHETIC export the check learns from (cartoons, not faces); returns its folder."""
    from model import MOVEMENTS
    from model.demo_export import write_demo_export

    return write_demo_export(work / "synthetic-export", subjects_per_class=sizes["subjects"],
                             movements=MOVEMENTS[: sizes["movements"]], size=sizes["export_size"], seed=3)


def learn_evaluate_predict(export: Path, work: Path, sizes: dict, xla: str) -> dict:
    """Trains IDFNP on the synthetic export with `python -m model train`, evaluates the test split
    and predicts test images, each command in its own process; returns the figures."""
    import numpy as np
    import pandas as pd

    from model.manifest import partition, read_manifest

    parts = partition(read_manifest(export))
    run = work / "run"
    started = time.perf_counter()
    run_model_command(["train", "--export", str(export), "--out", str(run), "--arch", "idfnp", "--image-size", str(sizes["image_size"]),
                       "--batch-size", str(sizes["batch_size"]), "--epochs", str(sizes["epochs"]), "--weights", "none",
                       "--mixed-precision", "auto", "--xla", xla])
    train_s = time.perf_counter() - started
    history = pd.read_csv(run / "history.csv")
    started = time.perf_counter()
    run_model_command(["evaluate", "--run", str(run), "--split", "test", "--xla", xla])
    evaluate_s = time.perf_counter() - started
    metrics = json.loads((run / "metrics.json").read_text())["splits"]["test"]
    evaluated = pd.read_csv(run / "predictions.csv").query("split == 'test'").set_index("image_sha256")
    test = parts["test"].head(10)
    started = time.perf_counter()
    lines = run_model_command(["predict", "--run", str(run), "--precropped", "--json", "--xla", xla, *test["path"]], capture=True)
    predict_s = time.perf_counter() - started
    predicted = [json.loads(line) for line in lines.splitlines() if line.startswith("{")]
    probability_columns = [c for c in evaluated.columns if c.startswith("prob_")]
    agree, largest_difference = 0, 0.0
    for row, result in zip(test.itertuples(), predicted):
        expected = evaluated.loc[row.image_sha256]
        agree += result["status"] == "ok" and result["predicted"] == expected["predicted"]
        mine = np.array([result["probabilities"][c[5:]] for c in probability_columns])
        largest_difference = max(largest_difference, float(np.abs(mine - expected[probability_columns].to_numpy(float)).max()))
    config = json.loads((run / "config.json").read_text())
    return {
        "synthetic_export": {"train": len(parts["train"]), "val": len(parts["val"]), "test": len(parts["test"])},
        "train": {"seconds": train_s, "epochs": len(history), "loss": history["loss"].tolist(),
                  "accuracy": history["accuracy"].tolist(), "dtype_policy": config["dtype_policy"]},
        "evaluate": {"seconds": evaluate_s, "images": metrics["images"], "accuracy": metrics["accuracy"]},
        "predict": {"seconds": predict_s, "images": len(predicted), "agree_with_evaluate": int(agree),
                    "largest_probability_difference": largest_difference,
                    "ms_per_image": statistics.median([r["seconds"] * 1000 for r in predicted if r.get("seconds")] or [float("nan")])},
    }


def gib(value) -> str:
    """Returns bytes as GiB text, or "-" when unknown."""
    return "-" if value is None else f"{value / 2**30:.2f} GiB"


def verdicts(figures: dict, smoke: bool) -> dict[str, bool | None]:
    """Returns pass/fail per point (None: not judged; the --smoke run, a few steps on a CPU, judges
    only that predict agrees with evaluate)."""
    learned = figures["learning"]
    loss = learned["train"]["loss"]
    first, last = sum(loss[:2]) / len(loss[:2]), sum(loss[-2:]) / len(loss[-2:])
    return {
        "step_ratio": None if smoke else figures["step_ratio_idfnp_over_inception_v3"] <= STEP_RATIO_TARGET,
        "loss_falls": None if smoke else last < 0.5 * first,
        "evaluate_beats_chance": None if smoke else learned["evaluate"]["accuracy"] >= 0.5,
        "predict_agrees_with_evaluate": learned["predict"]["agree_with_evaluate"] == learned["predict"]["images"] > 0
        and learned["predict"]["largest_probability_difference"] < 1e-3,
        "under_8_minutes": None if smoke else figures["total_s"] < TIME_LIMIT_S,
    }


def report(figures: dict, judged: dict) -> None:
    """Prints the figures and the verdicts."""
    s, speed = figures["settings"], figures["speed"]
    print()
    print(f"GPU check: {s['gpu'] or 'no GPU (CPU)'}; {s['backend']} {s['versions'].get(s['backend'])}, Keras {s['versions']['keras']}, "
          f"{s['dtype_policy']}, XLA {s['xla']}, {s['image_size']} px, batch {s['batch_size']}{' (SMOKE: mechanics only)' if s['smoke'] else ''}")
    print(f"{'model':<13} {'step (median)':>13} {'images/s':>9} {'compile+2 steps':>16} {'peak GPU memory':>16}")
    for name, label in (("inception_v3", "InceptionV3"), ("idfnp", "IDFNP")):
        f = speed[name]
        print(f"{label:<13} {f['step_s']:>11.4f} s {f['images_per_s']:>9.1f} {f['compile_and_first_two_steps_s']:>14.1f} s "
              f"{gib((f['memory'] or {}).get('peak')):>16}")
    mark = {True: "PASS", False: "FAIL", None: "not judged"}
    print(f"step-time ratio IDFNP / InceptionV3: {figures['step_ratio_idfnp_over_inception_v3']:.3f} "
          f"(target <= {STEP_RATIO_TARGET})  {mark[judged['step_ratio']]}")
    learned = figures["learning"]
    pipe = speed["input_pipeline_images_per_s"]
    consumes = speed["idfnp"]["images_per_s"]
    print(f"input pipeline ({pipe['pipeline']}): {pipe['first_pass']:.0f} images/s first pass, {pipe['cached']:.0f} cached = "
          f"{pipe['first_pass'] / consumes:.1f}x / {pipe['cached'] / consumes:.1f}x what the IDFNP step consumes")
    t, e, p = learned["train"], learned["evaluate"], learned["predict"]
    print(f"train (synthetic, {learned['synthetic_export']['train']} images, {t['epochs']} epochs, {t['seconds']:.0f} s): "
          f"loss {t['loss'][0]:.3f} -> {t['loss'][-1]:.3f}  {mark[judged['loss_falls']]}")
    print(f"evaluate (test, {e['images']} unseen synthetic images): accuracy {e['accuracy']:.3f} (chance 0.14)  {mark[judged['evaluate_beats_chance']]}")
    print(f"predict ({p['images']} pre-cropped test images): {p['agree_with_evaluate']} agree with evaluate, largest probability "
          f"difference {p['largest_probability_difference']:.1e}, {p['ms_per_image']:.1f} ms per image  {mark[judged['predict_agrees_with_evaluate']]}")
    print(f"total {figures['total_s'] / 60:.1f} min (target < 8)  {mark[judged['under_8_minutes']]}")


def speed_phase(args: argparse.Namespace) -> int:
    """The child process that uses the GPU for the speed part: times both networks and the input
    pipeline, and writes them with the settings to args.json."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(ROOT))
    import keras

    from model import backend as backends
    from model.distribute import choose_precision

    backend = backends.name()
    sizes = SIZES[args.smoke]
    gpus = backends.gpus()
    if not gpus and not args.smoke:
        print(f"error: the {backend} backend sees no GPU; run with --smoke to test the mechanics on the CPU", file=sys.stderr)
        return 2
    policy = choose_precision("auto")  # mixed_float16 on a GPU, float32 on a CPU
    keras.config.set_dtype_policy(policy)
    settings = {"backend": backend, "versions": backends.versions(), "gpu": gpus[0] if gpus else None, "gpus": gpus,
                "dtype_policy": policy, "xla": args.xla, "smoke": args.smoke, "cpu_threads": os.cpu_count(), **sizes}
    print(f"checking on {settings['gpu'] or 'the CPU'} with {backend}, {policy}, XLA {args.xla}", flush=True)
    speed = {}
    for arch in ("inception_v3", "idfnp"):  # InceptionV3 first: JAX's peak memory cannot be reset
        print(f"timing {arch} ...", flush=True)
        speed[arch] = time_training_steps(arch, sizes, args.xla, backend)
    speed["input_pipeline_images_per_s"] = input_rate(args.export, sizes)
    args.json.write_text(json.dumps({"settings": settings, "speed": speed}, indent=2) + "\n")
    return 0


def run_check(args: argparse.Namespace, backend: str, started: float) -> int:
    """Runs the four parts of the check, the GPU work in child processes, and returns the exit
    status (0 when everything judged passes)."""
    sys.path.insert(0, str(ROOT))
    sizes = SIZES[args.smoke]
    xla = args.xla or ("auto" if backend == "torch" else "on")
    with tempfile.TemporaryDirectory(prefix="fnp-gpu-check-") as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        export = write_export(work, sizes)
        speed_json = work / "speed.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--phase", "speed", "--json", str(speed_json),
                   "--export", str(export), "--xla", xla] + (["--smoke"] if args.smoke else [])
        try:
            run_child(command, "the speed phase")
        except RuntimeError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        figures = json.loads(speed_json.read_text())
        speed = figures["speed"]
        figures["step_ratio_idfnp_over_inception_v3"] = speed["idfnp"]["step_s"] / speed["inception_v3"]["step_s"]
        figures["learning"] = learn_evaluate_predict(export, work, sizes, xla)
    figures["total_s"] = time.perf_counter() - started
    judged = verdicts(figures, args.smoke)
    figures["verdicts"] = judged
    report(figures, judged)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures: {args.json}")
    return 0 if all(v is not False for v in judged.values()) else 1


def main(argv=None) -> int:
    """Installs what is missing, picks the backend, runs the check; returns the exit status."""
    started = time.perf_counter()
    args = parse_args(argv)
    if args.phase == "speed":  # a child: packages and KERAS_BACKEND come with its environment
        return speed_phase(args)
    ensure_packages(args)
    if args.install_only:
        print("every requirement is importable")
        return 0
    backend = choose_backend(args)
    os.environ["KERAS_BACKEND"] = backend
    return run_check(args, backend, started)


if __name__ == "__main__":
    sys.exit(main())
