"""Training end to end on a tiny synthetic export, on the CPU: the loss falls, the saved model
reloads with the same predictions, evaluate agrees with scikit-learn, predict resizes like the
pipeline, resume continues from the checkpoint, --cv reports mean and std, and the distribution
strategies run (MirroredStrategy; MultiWorkerMirroredStrategy with two local workers)."""
import dataclasses
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from model import CLASSES, ModelError
from model.cli import main
from model.config import TrainConfig
from model.demo_export import write_demo_export
from model.manifest import partition, read_manifest
from model.runs import PREDICTION_COLUMNS

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]
ROOT = Path(__file__).resolve().parents[1]
PROBABILITIES = [f"prob_{c}" for c in CLASSES]
SMALL = dict(arch="deepid", image_size=64, batch_size=14, weights="none")  # quick runs for the mechanics


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    """Synthetic export (clearly not faces): 7 classes x 5 subjects x 2 movements at 299 px, 3 folds."""
    return write_demo_export(tmp_path_factory.mktemp("export") / "demo", subjects_per_class=5, movements=("MV0", "MV4"), folds=3)


@pytest.fixture(scope="module")
def idfnp_run(export, tmp_path_factory) -> Path:
    """IDFNP trained through the CLI with the paper's optimiser settings: 75 px, 6 epochs, batch 14,
    compiled with XLA as on a GPU (Keras' "auto" turns it on there, off on a CPU)."""
    run = tmp_path_factory.mktemp("runs") / "idfnp"
    args = ["train", "--export", str(export), "--out", str(run), "--image-size", "75", "--epochs", "6", "--xla", "on"]
    assert main(args + ["--batch-size", "14", "--weights", "none"]) == 0
    return run


def test_loss_falls(idfnp_run):
    history = pd.read_csv(idfnp_run / "history.csv")
    assert history["epoch"].tolist() == list(range(6))
    loss = history["loss"].to_numpy()
    assert loss[-1] < loss[0]
    assert loss[-2:].mean() < 0.9 * loss[:2].mean()
    assert history["learning_rate"].to_numpy() == pytest.approx(0.001)
    assert json.loads((idfnp_run / "history.json").read_text())["loss"] == pytest.approx(loss.tolist())


def test_run_folder_holds_config_model_history_metrics_predictions(idfnp_run, export):
    config = json.loads((idfnp_run / "config.json").read_text())
    assert config["train"]["arch"] == "idfnp" and config["train"]["image_size"] == 75
    assert config["export"] == str(export.resolve()) and config["classes"] == list(CLASSES)
    assert config["dtype_policy"] == "float32"  # auto: no GPU here
    assert config["train"]["xla"] == "on"  # the run compiled with XLA as a GPU would
    assert (idfnp_run / "model.keras").is_file() and (idfnp_run / "checkpoints" / "last.weights.h5").is_file()
    predictions = pd.read_csv(idfnp_run / "predictions.csv")
    assert list(predictions.columns) == list(PREDICTION_COLUMNS)
    assert predictions.groupby("split").size().to_dict() == {"test": 14, "val": 14}
    np.testing.assert_allclose(predictions[PROBABILITIES].sum(axis=1), 1, atol=1e-4)
    metrics = json.loads((idfnp_run / "metrics.json").read_text())
    assert set(metrics["splits"]) == {"val", "test"}


def test_saved_model_reloads_and_gives_the_same_predictions(idfnp_run, export):
    import keras

    import model.idfnp  # noqa: F401
    from model.evaluation import predict_probabilities

    network = keras.saving.load_model(idfnp_run / "model.keras", compile=False)
    test = partition(read_manifest(export))["test"]
    reloaded = predict_probabilities(network, test, 75, 100)
    written = pd.read_csv(idfnp_run / "predictions.csv").query("split == 'test'")
    assert written["image_sha256"].tolist() == test["image_sha256"].tolist()
    # The run's predictions were computed with XLA on, the reload predicts without: float rounding
    # differs by up to ~2e-5 in a probability.
    np.testing.assert_allclose(reloaded, written[PROBABILITIES].to_numpy(), atol=1e-4)


def test_evaluate_numbers_match_sklearn(idfnp_run, capsys):
    assert main(["evaluate", "--run", str(idfnp_run), "--split", "test", "--xla", "on"]) == 0
    assert "accuracy" in capsys.readouterr().out
    predictions = pd.read_csv(idfnp_run / "predictions.csv")
    assert set(predictions["split"]) == {"val", "test"}  # the val rows are kept
    rows = predictions[predictions["split"] == "test"]
    y, p = rows["label"], rows["predicted"]
    assert (p == [CLASSES[i] for i in rows[PROBABILITIES].to_numpy().argmax(axis=1)]).all()
    metrics = json.loads((idfnp_run / "metrics.json").read_text())["splits"]["test"]
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert metrics["confusion_matrix"] == confusion_matrix(y, p, labels=list(CLASSES)).tolist()
    np.testing.assert_allclose(metrics["confusion_matrix_normalized"], confusion_matrix(y, p, labels=list(CLASSES), normalize="true"))
    precision, recall, _, _ = precision_recall_fscore_support(y, p, labels=list(CLASSES), zero_division=np.nan)
    for name, expected in zip(CLASSES, precision):
        assert (metrics["precision"][name] is None) if np.isnan(expected) else metrics["precision"][name] == pytest.approx(expected)
    for name, expected in zip(CLASSES, recall):
        assert metrics["sensitivity"][name] == pytest.approx(expected)
    for movement, group in rows.groupby("movement"):
        assert metrics["per_movement"][movement]["accuracy"] == pytest.approx(accuracy_score(group["label"], group["predicted"]))


def test_predict_precropped_resizes_like_the_pipeline(idfnp_run, export, capsys):
    from model.predict import predict_images

    test = partition(read_manifest(export))["test"].head(3)
    results = predict_images(idfnp_run, [*test["path"], export / "missing.png"], precropped=True)
    written = pd.read_csv(idfnp_run / "predictions.csv").query("split == 'test'").set_index("image_sha256")
    for result, sha in zip(results, test["image_sha256"]):
        assert result.status == "ok" and result.seconds > 0
        assert result.predicted == written.loc[sha, "predicted"]
        np.testing.assert_allclose([result.probabilities[c] for c in CLASSES], written.loc[sha, PROBABILITIES].to_numpy(float), atol=1e-4)
    assert results[-1].status == "not_found"

    assert main(["predict", "--run", str(idfnp_run), "--precropped", "--json", test["path"].iloc[0]]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["status"] == "ok" and set(line["probabilities"]) == set(CLASSES)


def test_predict_crops_raw_photos_and_reports_failures(idfnp_run, export, monkeypatch):
    import model.predict as predict

    calls = []

    def fake_crop(path, movement=None, size=299, mirrored=False):
        calls.append((Path(path).name, movement, size))
        if "bad" in path:
            return None, "no_face"
        return np.full((size, size, 3), 128, np.uint8), "ok"

    monkeypatch.setattr(predict, "load_cropper", lambda: fake_crop)
    good = next(iter((export / "test" / "N").glob("*.png")))
    bad = export / "bad.png"
    bad.write_bytes(good.read_bytes())
    results = predict.predict_images(idfnp_run, [good, bad], movement="MV4")
    assert [r.status for r in results] == ["ok", "no_face"]
    assert calls == [(good.name, "MV4", 299), ("bad.png", "MV4", 299)]


def test_resume_continues_from_the_checkpoint(export, tmp_path):
    from model.trainer import compiled_model, restore_checkpoint, train

    run = tmp_path / "resume"
    config = TrainConfig(epochs=2, **SMALL)
    train(config, export, run)
    steps = math.ceil(len(partition(read_manifest(export))["train"]) / config.batch_size)
    before = pd.read_csv(run / "history.csv")
    assert json.loads((run / "checkpoints" / "state.json").read_text())["epochs_done"] == 2

    with pytest.raises(ModelError, match="already exists"):
        train(config, export, run)
    train(dataclasses.replace(config, epochs=3), export, run, resume=True)

    after = pd.read_csv(run / "history.csv")
    assert after["epoch"].tolist() == [0, 1, 2]
    pd.testing.assert_frame_equal(after.head(2), before)  # the first two epochs are not redone
    assert json.loads((run / "checkpoints" / "state.json").read_text())["epochs_done"] == 3
    restored = compiled_model(config, weights=None)
    restore_checkpoint(restored, run)
    # The optimizer kept counting from the checkpoint: 3 epochs of steps, not 1.
    assert int(restored.optimizer.iterations) == 3 * steps
    final = json.loads((run / "history.json").read_text())
    assert final["epoch"] == [0, 1, 2]


def test_cross_validation_reports_mean_and_std(export, tmp_path):
    from model.evaluation import evaluate_run
    from model.trainer import train

    run = train(TrainConfig(cv=True, epochs=1, **SMALL), export, tmp_path / "cv")
    assert [p.name for p in sorted(run.glob("fold-*"))] == ["fold-0", "fold-1", "fold-2"]
    metrics = json.loads((run / "metrics.json").read_text())
    manifest = read_manifest(export)
    for split in ("val", "test"):
        entry = metrics["splits"][split]
        accuracies = [fold["accuracy"] for fold in entry["folds"]]
        assert [fold["fold"] for fold in entry["folds"]] == [0, 1, 2]
        assert entry["mean"]["accuracy"] == pytest.approx(np.mean(accuracies))
        assert entry["std"]["accuracy"] == pytest.approx(np.std(accuracies, ddof=1))
    predictions = pd.read_csv(run / "predictions.csv")
    out_of_fold = predictions[predictions["split"] == "val"]
    expected = pd.concat([partition(manifest, k)["val"] for k in (0, 1, 2)])
    assert sorted(out_of_fold["image_sha256"]) == sorted(expected["image_sha256"])  # each image once
    assert (predictions["split"] == "test").sum() == (manifest["split"] == "test").sum()  # fold ensemble
    assert metrics["splits"]["val"]["pooled"]["images"] == len(expected)

    again = evaluate_run(run, "test")
    assert len(again["folds"]) == 3 and "ensemble" in again


def test_mirrored_strategy_trains(export, tmp_path):
    from model.trainer import train

    run = train(TrainConfig(epochs=1, distribute="mirrored", **SMALL), export, tmp_path / "mirrored")
    assert json.loads((run / "config.json").read_text())["replicas"] >= 1
    assert (run / "model.keras").is_file()
    with pytest.raises(ModelError, match="TF_CONFIG"):
        train(TrainConfig(epochs=1, distribute="multiworker", **SMALL), export, tmp_path / "multi")


def free_port() -> int:
    """Returns a TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def test_multiworker_strategy_with_two_local_workers(export, tmp_path):
    cluster = {"worker": [f"localhost:{free_port()}", f"localhost:{free_port()}"]}
    workers = []
    for index in (0, 1):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        args = ["train", "--export", str(export), "--out", str(tmp_path / f"worker{index}"), "--arch", "deepid",
                "--epochs", "2", "--image-size", "64", "--batch-size", "14", "--weights", "none", "--distribute", "multiworker"]
        workers.append(subprocess.Popen([sys.executable, "-m", "model", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    chief = tmp_path / "worker0"
    assert json.loads((chief / "config.json").read_text())["replicas"] == 2
    assert pd.read_csv(chief / "history.csv")["epoch"].tolist() == [0, 1]
    assert (chief / "model.keras").is_file()
    assert not (tmp_path / "worker1").exists()  # only the chief writes the run folder


def test_predict_takes_mirrored_from_the_source_and_warns_for_an_unflagged_selfie(idfnp_run, astronaut, tmp_path, monkeypatch, capsys):
    from PIL import Image

    import model.predict as predict
    from asymmetry.crop import crop_for_model

    flags = []

    def watched_crop(path, movement=None, size=299, mirrored=False):
        flags.append(mirrored)
        return crop_for_model(path, movement=movement, size=size, mirrored=mirrored)

    monkeypatch.setattr(predict, "load_cropper", lambda: watched_crop)
    exif = Image.Exif()
    exif.get_ifd(predict.EXIF_IFD)[predict.LENS_MODEL] = "iPhone 12 front camera 2.71mm f/2.2"
    selfie, plain = tmp_path / "selfie.jpg", tmp_path / "plain.jpg"
    Image.fromarray(astronaut).save(selfie, exif=exif)
    Image.fromarray(astronaut).save(plain)

    unflagged = predict.predict_images(idfnp_run, [selfie, plain], movement="MV0")
    assert [r.status for r in unflagged] == ["ok", "ok"] and [r.mirrored for r in unflagged] == [False, False]
    assert "front camera" in unflagged[0].warning and "--mirrored" in unflagged[0].warning
    assert unflagged[1].warning is None  # a photo that does not say it is a selfie

    mobile = predict.predict_images(idfnp_run, [selfie], movement="MV0", source="mobile")
    assert mobile[0].mirrored is True and mobile[0].warning is None  # the importer's rule: mobile photos are mirrored
    assert mobile[0].probabilities != unflagged[0].probabilities  # the model saw the flipped crop
    stated = predict.predict_images(idfnp_run, [selfie], movement="MV0", source="mobile", mirrored=False)
    assert stated[0].mirrored is False and stated[0].warning is None
    assert stated[0].probabilities == pytest.approx(unflagged[0].probabilities)
    assert flags == [False, False, True, False]

    assert main(["predict", "--run", str(idfnp_run), "--movement", "MV0", "--json", str(selfie)]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith(f"warning: {selfie}: the EXIF says a front camera")
    line = json.loads(captured.out.strip().splitlines()[-1])
    assert line["mirrored"] is False and "front camera" in line["warning"]
    assert main(["predict", "--run", str(idfnp_run), "--movement", "MV0", "--mirrored", "--json", str(selfie)]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err and json.loads(captured.out.strip().splitlines()[-1])["mirrored"] is True
