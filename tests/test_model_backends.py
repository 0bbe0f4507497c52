"""The trainer on the JAX backend with TensorFlow absent, as on a GPU machine that has only JAX or
PyTorch: model/ imports without it, `python -m model train | evaluate | predict` run, learn,
resume and agree with each other, and data parallelism spreads a run over two devices.

Each test runs Python in a subprocess (Keras fixes its backend per process) with KERAS_BACKEND=jax
and a `tensorflow` package on the path whose import fails, so any use of TensorFlow would break it.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model import CLASSES
from model.demo_export import write_demo_export
from model.manifest import partition, read_manifest

ROOT = Path(__file__).resolve().parents[1]
FAST_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
PROBABILITIES = [f"prob_{c}" for c in CLASSES]


def without_tensorflow(folder: Path) -> Path:
    """Writes a `tensorflow` package into folder whose import fails like a missing one; returns folder."""
    package = folder / "tensorflow"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text('raise ImportError("TensorFlow is not installed on this machine (test)")\n')
    return folder


@pytest.fixture(scope="module")
def jax_env(tmp_path_factory) -> dict:
    """Environment of a JAX-backend subprocess on a machine without TensorFlow."""
    blocker = without_tensorflow(tmp_path_factory.mktemp("no-tensorflow"))
    return {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": f"{blocker}{os.pathsep}{ROOT}", "XLA_FLAGS": FAST_XLA_FLAGS}


def run(env: dict, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Runs `python ARGS` from the project folder; returns the finished process."""
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    """Runs `python -m model ARGS` and asserts it succeeded."""
    done = run(env, "-m", "model", *args)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def test_model_package_works_without_tensorflow_under_jax(jax_env, tmp_path):
    code = """
import sys
import model.backend, model.cli, model.config, model.data, model.distribute, model.evaluation, model.idfnp
import model.manifest, model.predict, model.resize, model.runs, model.trainer, model.demo_export
from model.data import ImageBatches, make_dataset
from model.demo_export import write_demo_export
from model.manifest import read_manifest
from model.idfnp import build_model
export = write_demo_export(sys.argv[1], subjects_per_class=3, movements=("MV0",), folds=3, size=80)
data = make_dataset(read_manifest(export), 75, 4, training=True)
images, labels = data[0]
network = build_model("idfnp", 75, weights=None)
print(type(data).__name__, images.shape, network(images).shape, model.backend.name(), "model.data_tf" in sys.modules)
try:
    import tensorflow
except ImportError:
    print("no tensorflow")
"""
    done = run(jax_env, "-c", code, str(tmp_path / "export"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == ["ImageBatches (4, 75, 75, 3) (4, 7) jax False", "no tensorflow"]
    assert run(jax_env, "-m", "model", "--help").returncode == 0


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    """Synthetic export (drawn cartoons, not faces): 7 classes x 5 subjects x 2 movements, 3 folds."""
    return write_demo_export(tmp_path_factory.mktemp("export") / "demo", subjects_per_class=5, movements=("MV0", "MV4"), folds=3, size=128)


@pytest.mark.slow
def test_jax_trains_learns_resumes_evaluates_and_predicts(jax_env, export, tmp_path):
    run_dir = tmp_path / "run"
    base = ["--export", str(export), "--out", str(run_dir), "--arch", "deepid", "--image-size", "64", "--batch-size", "7",
            "--weights", "none", "--xla", "on"]
    trained = cli(jax_env, "train", *base, "--epochs", "12")
    assert "jax backend" in trained.stdout and "XLA on" in trained.stdout
    history = pd.read_csv(run_dir / "history.csv")
    loss = history["loss"].to_numpy()
    assert history["epoch"].tolist() == list(range(12))
    assert loss[-2:].mean() < 0.85 * loss[:2].mean()  # it learns
    config = json.loads((run_dir / "config.json").read_text())
    assert config["backend"] == "jax" and "jax" in config["versions"] and "tensorflow" not in config["versions"]

    cli(jax_env, "train", *base, "--epochs", "13", "--resume")
    resumed = pd.read_csv(run_dir / "history.csv")
    assert resumed["epoch"].tolist() == list(range(13))
    pd.testing.assert_frame_equal(resumed.head(12), history)  # the first epochs are not redone

    cli(jax_env, "evaluate", "--run", str(run_dir), "--split", "test", "--xla", "on")
    predictions = pd.read_csv(run_dir / "predictions.csv").query("split == 'test'").set_index("image_sha256")
    metrics = json.loads((run_dir / "metrics.json").read_text())["splits"]["test"]
    assert metrics["accuracy"] == pytest.approx((predictions["label"] == predictions["predicted"]).mean())

    test = partition(read_manifest(export))["test"].head(4)
    done = cli(jax_env, "predict", "--run", str(run_dir), "--precropped", "--json", "--xla", "on", *test["path"])
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 4
    for line, sha in zip(lines, test["image_sha256"]):
        assert line["status"] == "ok" and line["predicted"] == predictions.loc[sha, "predicted"]
        mine = [line["probabilities"][c] for c in CLASSES]
        np.testing.assert_allclose(mine, predictions.loc[sha, PROBABILITIES].to_numpy(float), atol=1e-4)


@pytest.mark.slow
def test_jax_data_parallel_over_two_devices(jax_env, export, tmp_path):
    env = {**jax_env, "XLA_FLAGS": f"{FAST_XLA_FLAGS} --xla_force_host_platform_device_count=2"}
    args = ["train", "--export", str(export), "--arch", "deepid", "--image-size", "64", "--epochs", "1", "--weights", "none"]
    done = cli(env, *args, "--out", str(tmp_path / "dp"), "--batch-size", "9", "--distribute", "mirrored")
    assert "2 replica(s)" in done.stdout and "padded with zero-weight copies" in done.stdout
    config = json.loads((tmp_path / "dp" / "config.json").read_text())
    assert config["replicas"] == 2 and (tmp_path / "dp" / "model.keras").is_file()
    assert np.isfinite(pd.read_csv(tmp_path / "dp" / "history.csv")["loss"]).all()

    refused = run(env, "-m", "model", *args, "--out", str(tmp_path / "mw"), "--distribute", "multiworker")
    assert refused.returncode == 2 and refused.stderr.strip().startswith("error: --distribute multiworker needs the TensorFlow backend")
