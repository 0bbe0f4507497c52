"""Every architecture trains, evaluates and predicts with XLA on (jit_compile=True) under the
TensorFlow backend, where the antialiased resize once made IDFNP and DeepID fail to compile
(ScaleAndTranslate has no XLA kernel). One subprocess builds each network as the trainer does and
runs one training step on a tiny batch, and evaluate and predict for the networks with layers of
our own (IDFNP, DeepID; the baselines' are keras.applications' stock layers, which the training
step already compiles forwards and backwards). XLA_FLAGS there lower the compiler's optimisation
level so the compiles fit a CPU test (the same ops are compiled).

`make test` probes IDFNP, DeepID, InceptionV3 and ResNet50 (about two minutes on 2 cores): our own
layers and one network of each keras.applications family. ResNet101/152 (ResNet50's blocks, deeper)
and InceptionResNetV2 (three more minutes) are marked `extended`: `make test-all` runs them."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from model.config import ARCHITECTURES

ROOT = Path(__file__).resolve().parents[1]
FAST_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
SIZES = {"idfnp": 75, "inception_v3": 75, "inception_resnet_v2": 75, "deepid": 32, "resnet50": 32, "resnet101": 32, "resnet152": 32}
OWN_LAYERS = ("idfnp", "deepid")  # also evaluated and predicted under XLA
EXTENDED = ("inception_resnet_v2", "resnet101", "resnet152")  # `make test-all`

PROBE = """
import json, sys
import numpy as np
from model.config import TrainConfig
from model.trainer import compiled_model
own = json.loads(sys.argv[2])
for arch, size in json.loads(sys.argv[1]).items():
    model = compiled_model(TrainConfig(arch=arch, image_size=size, weights="none", xla="on"), weights=None)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (2, size, size, 3)).astype("float32")
    labels = np.array([0, 4])
    before = [w.copy() for w in model.get_weights()[:2]]
    logs = model.train_on_batch(images, labels, return_dict=True)
    moved = any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()[:2]))
    figures = {"arch": arch, "jit_compile": model.jit_compile, "loss": float(logs["loss"]), "weights_moved": moved}
    if arch in own:
        figures["evaluate_loss"] = float(model.evaluate(images, labels, verbose=0, return_dict=True)["loss"])
        figures["sums"] = model.predict(images, verbose=0).sum(axis=1).tolist()
    print("RESULT " + json.dumps(figures), flush=True)
"""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def probe(archs: list[str]) -> dict:
    """{arch: figures} from one XLA training step (and evaluate and predict of our own networks)."""
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "XLA_FLAGS": FAST_XLA_FLAGS, "TF_CPP_MIN_LOG_LEVEL": "2"}
    sizes = {arch: SIZES[arch] for arch in archs}
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(sizes), json.dumps(OWN_LAYERS)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1700)
    results = {}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            figures = json.loads(line[7:])
            results[figures["arch"]] = figures
    assert done.returncode == 0, done.stderr[-3000:]
    return results


@pytest.fixture(scope="module")
def core_results() -> dict:
    return probe([arch for arch in ARCHITECTURES if arch not in EXTENDED])


@pytest.fixture(scope="module")
def extended_results() -> dict:
    return probe(list(EXTENDED))


def test_every_architecture_is_probed():
    assert set(SIZES) == set(ARCHITECTURES) and set(EXTENDED) < set(ARCHITECTURES)


@pytest.mark.parametrize("arch", [pytest.param(arch, marks=pytest.mark.extended) if arch in EXTENDED else arch
                                  for arch in ARCHITECTURES])
def test_architecture_trains_evaluates_and_predicts_under_xla(request, arch):
    figures = request.getfixturevalue("extended_results" if arch in EXTENDED else "core_results")[arch]
    assert figures["jit_compile"] is True
    assert figures["weights_moved"]  # the step really trained
    assert figures["loss"] > 0
    if arch in OWN_LAYERS:
        assert figures["evaluate_loss"] > 0
        assert figures["sums"] == pytest.approx([1.0, 1.0], abs=1e-4)
