"""Evaluation figures agree with scikit-learn; fold summaries and combined CV predictions."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix, precision_recall_fscore_support

from model import CLASSES, MOVEMENTS
from model.evaluation import classification_metrics, combine_fold_predictions, summarize_folds


def same(value, expected):
    """True when a metrics value equals sklearn's, None standing for NaN."""
    if value is None:
        return np.isnan(expected)
    return value == pytest.approx(expected)


@pytest.fixture
def predictions():
    rng = np.random.default_rng(3)
    labels = rng.choice(CLASSES[:-1], 200)  # R3 never occurs: its sensitivity is undefined
    right = (rng.random(200) < 0.7) & (labels != "N")
    predicted = np.where(right, labels, rng.choice(CLASSES[1:], 200))  # N is never predicted
    return pd.DataFrame({"label": labels, "predicted": predicted, "movement": rng.choice(MOVEMENTS, 200)})


def test_metrics_match_sklearn(predictions):
    y, p = predictions["label"], predictions["predicted"]
    metrics = classification_metrics(y, p, predictions["movement"])
    classes = list(CLASSES)
    assert metrics["images"] == 200
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert metrics["confusion_matrix"] == confusion_matrix(y, p, labels=classes).tolist()
    np.testing.assert_allclose(metrics["confusion_matrix_normalized"], confusion_matrix(y, p, labels=classes, normalize="true"))
    precision, recall, _, support = precision_recall_fscore_support(y, p, labels=classes, zero_division=np.nan)
    for i, name in enumerate(classes):
        assert same(metrics["precision"][name], precision[i]), name
        assert same(metrics["sensitivity"][name], recall[i]), name
        assert metrics["support"][name] == support[i]
    assert metrics["precision"]["N"] is None and metrics["sensitivity"]["R3"] is None
    assert metrics["kappa"] == pytest.approx(cohen_kappa_score(y, p, labels=classes))
    for movement, group in predictions.groupby("movement"):
        assert metrics["per_movement"][movement]["images"] == len(group)
        assert metrics["per_movement"][movement]["accuracy"] == pytest.approx(accuracy_score(group["label"], group["predicted"]))


def test_side_and_degree_are_scored_separately():
    metrics = classification_metrics(["L1", "L3", "R2", "N"], ["L2", "R3", "R2", "N"], ["MV0"] * 4)
    assert metrics["accuracy"] == pytest.approx(0.5)
    assert metrics["side_accuracy"] == pytest.approx(0.75)  # L3 -> R3 is the only side error
    assert metrics["degree_accuracy"] == pytest.approx(0.75)  # L1 -> L2 is the only degree error


def test_fold_summary_is_mean_and_sample_std(predictions):
    folds = [classification_metrics(g["label"], g["predicted"], g["movement"]) for _, g in predictions.groupby(np.arange(200) % 4)]
    summary = summarize_folds(folds)
    accuracies = [f["accuracy"] for f in folds]
    assert summary["mean"]["accuracy"] == pytest.approx(np.mean(accuracies))
    assert summary["std"]["accuracy"] == pytest.approx(np.std(accuracies, ddof=1))
    assert summary["mean"]["precision"]["N"] is None  # never defined in any fold
    mv = [f["per_movement"]["MV3"]["accuracy"] for f in folds]
    assert summary["mean"]["per_movement"]["MV3"] == pytest.approx(np.mean(mv))


def test_test_split_predictions_of_folds_are_averaged():
    def table(probabilities):
        row = {"image_sha256": "a", "split": "test", "fold": 1, "movement": "MV0", "label": "L1", "predicted": "?"}
        row.update({f"prob_{c}": p for c, p in zip(CLASSES, probabilities)})
        return pd.DataFrame([row])

    one = table([0.6, 0.4, 0, 0, 0, 0, 0])
    two = table([0.0, 0.8, 0.2, 0, 0, 0, 0])
    combined = combine_fold_predictions([one, two], "test")
    assert len(combined) == 1
    assert combined.loc[0, "prob_L1"] == pytest.approx(0.6)
    assert combined.loc[0, "predicted"] == "L1"
    assert len(combine_fold_predictions([one, two], "val")) == 2  # out-of-fold rows are stacked


def test_prediction_rows_carry_the_hashed_subject_and_the_source():
    # The agreement audit resamples a run's test images by subject: predictions.csv names each
    # image's subject_hash and source, as the export's manifest gives them, and keeps them when
    # the folds' test predictions are averaged.
    from model.evaluation import predictions_table
    from model.runs import PREDICTION_COLUMNS

    manifest = pd.DataFrame({"image_sha256": ["a" * 64, "b" * 64], "subject_hash": ["00ff00ff00ff00ff"] * 2,
                             "source": ["hospital", "mobile"], "fold": [1, 2], "movement": ["MV0", "MV1"],
                             "label": ["N", "L2"]})
    probabilities = np.eye(7)[[0, 2]]
    table = predictions_table(manifest, probabilities, "test")
    assert list(table.columns) == list(PREDICTION_COLUMNS)
    assert table["subject_hash"].tolist() == ["00ff00ff00ff00ff"] * 2 and table["source"].tolist() == ["hospital", "mobile"]
    combined = combine_fold_predictions([table, table], "test")
    assert combined[["subject_hash", "source", "predicted"]].values.tolist() == [
        ["00ff00ff00ff00ff", "hospital", "N"], ["00ff00ff00ff00ff", "mobile", "L2"]]
