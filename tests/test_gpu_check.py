"""bench/gpu_check.py: installs what a GPU machine lacks from a local wheel folder only, into a
private folder that never shadows the machine's packages; and its --smoke run (tiny sizes, on the
CPU) goes through every part of the check under JAX without TensorFlow and under TensorFlow,
XLA on: timing IDFNP against InceptionV3, `python -m model train`, `evaluate` and `predict`."""
import base64
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.py"
FAST_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


def load_check():
    """Imports bench/gpu_check.py as a module."""
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_wheel(folder: Path, name: str = "fnpprobe", version: str = "1.0") -> Path:
    """Writes a minimal pure-Python wheel of a module `name` (value = 42) into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": "VALUE = 42\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join(record + [f"{info}/RECORD,,"]) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


@pytest.fixture
def check(monkeypatch, tmp_path):
    """gpu_check with its requirements replaced by one missing package, fnpprobe==1.0."""
    module = load_check()
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# test\nfnpprobe==1.0\n")
    monkeypatch.setattr(module, "REQUIREMENTS", requirements)
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    monkeypatch.setattr(sys, "path", list(sys.path))
    return module


def test_missing_packages_are_installed_from_the_wheel_folder_into_a_private_folder(check, tmp_path):
    write_wheel(tmp_path / "wheels")
    packages = tmp_path / "packages"
    assert check.missing_requirements(check.requirements()) == ["fnpprobe==1.0"]
    check.ensure_packages(check.parse_args(["--wheels", str(tmp_path / "wheels"), "--packages", str(packages)]))
    assert (packages / "fnpprobe.py").is_file()
    assert check.missing_requirements(check.requirements()) == []
    assert sys.path[-1] == str(packages)  # appended: the machine's own packages come first
    assert os.environ["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)
    import fnpprobe

    assert fnpprobe.VALUE == 42
    fresh = subprocess.run([sys.executable, "-c", "import importlib.util; print(importlib.util.find_spec('fnpprobe'))"],
                           capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert fresh.stdout.strip() == "None"  # the environment itself is unchanged
    sys.modules.pop("fnpprobe", None)


def test_without_a_wheel_folder_it_says_how_to_prepare_one(check, tmp_path):
    with pytest.raises(SystemExit) as stopped:
        check.ensure_packages(check.parse_args(["--wheels", str(tmp_path / "absent"), "--packages", str(tmp_path / "p")]))
    message = str(stopped.value)
    assert "missing fnpprobe==1.0" in message and "pip download --only-binary=:all: -d wheels -r bench/gpu_check_requirements.txt" in message


def test_requirement_names():
    check = load_check()
    assert [check.distribution_name(r) for r in check.requirements()] == ["keras", "numpy", "pandas", "pillow", "scikit-learn", "scipy", "h5py"]
    assert check.missing_requirements(check.requirements()) == []  # everything is installed here


def smoke(backend: str, tmp_path: Path, extra_path: str = "") -> dict:
    """Runs `gpu_check.py --smoke` under `backend`; returns its JSON figures."""
    out = tmp_path / f"{backend}.json"
    env = {**os.environ, "KERAS_BACKEND": backend, "XLA_FLAGS": FAST_XLA_FLAGS, "PYTHONPATH": extra_path}
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--json", str(out), "--packages", str(tmp_path / "none"),
                           "--work", str(tmp_path / "work")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "step-time ratio IDFNP / InceptionV3" in done.stdout and "agree with evaluate" in done.stdout
    return json.loads(out.read_text())


def check_smoke_figures(figures: dict, backend: str) -> None:
    """The smoke run measured both networks, trained, evaluated and predicted, and predict agreed."""
    assert figures["settings"]["backend"] == backend and figures["settings"]["xla"] == "on" and figures["settings"]["smoke"]
    for arch in ("idfnp", "inception_v3"):
        speed = figures["speed"][arch]
        assert len(speed["step_s_all"]) == 2 and speed["step_s"] > 0 and speed["images_per_s"] == pytest.approx(14 / speed["step_s"])
    assert figures["speed"]["idfnp"]["parameters"] > figures["speed"]["inception_v3"]["parameters"]
    assert figures["step_ratio_idfnp_over_inception_v3"] == pytest.approx(figures["speed"]["idfnp"]["step_s"] / figures["speed"]["inception_v3"]["step_s"])
    learned = figures["learning"]
    assert learned["train"]["epochs"] == 2 and len(learned["train"]["loss"]) == 2
    assert learned["evaluate"]["images"] == learned["synthetic_export"]["test"] == 14
    assert learned["predict"]["images"] == 10 and learned["predict"]["agree_with_evaluate"] == 10
    assert figures["speed"]["input_pipeline_images_per_s"]["first_pass"] > 0
    assert figures["verdicts"]["predict_agrees_with_evaluate"] is True
    assert figures["verdicts"]["step_ratio"] is None  # a CPU does not judge GPU speed


@pytest.mark.slow
def test_smoke_under_jax_without_tensorflow(tmp_path):
    blocker = tmp_path / "no-tensorflow" / "tensorflow"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text('raise ImportError("TensorFlow is not installed on this machine (test)")\n')
    figures = smoke("jax", tmp_path, str(blocker.parent))
    check_smoke_figures(figures, "jax")
    assert figures["speed"]["input_pipeline_images_per_s"]["pipeline"] == "ImageBatches"
    assert "tensorflow" not in figures["settings"]["versions"]


@pytest.mark.slow
@pytest.mark.extended  # three minutes; `make test` trains, evaluates and predicts under TensorFlow with XLA in test_model_training
def test_smoke_under_tensorflow_with_xla(tmp_path):
    figures = smoke("tensorflow", tmp_path)
    check_smoke_figures(figures, "tensorflow")
    assert figures["speed"]["input_pipeline_images_per_s"]["pipeline"] != "ImageBatches"  # tf.data
