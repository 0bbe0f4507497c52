"""The two input pipelines serve the same batches: the NumPy PyDataset (used where TensorFlow is
absent: JAX, torch) against tf.data, image for image where they keep the order, and with the same
augmentation arithmetic; its epochs, shuffles, padding and errors."""
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from model import CLASSES, ModelError, data_tf
from model.data import (
    ImageBatches,
    UnreadableImage,
    apply_augmentation,
    augmentation_parameters,
    iterate_batches,
    label_indices,
    load_image,
    make_dataset,
)
from model.demo_export import write_demo_export
from model.manifest import partition, read_manifest

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    """The training images of a small SYNTHETIC export (drawn cartoons, 299 px)."""
    export = write_demo_export(tmp_path_factory.mktemp("pipes") / "demo", subjects_per_class=3, movements=("MV0", "MV4"), folds=3)
    return partition(read_manifest(export))["train"]


def numpy_batches(frame, size, batch, training, **kwargs):
    """An ImageBatches over `frame`'s rows, built directly (the TensorFlow backend runs these tests)."""
    return ImageBatches(frame["path"].tolist(), label_indices(frame["label"]), size, batch, training, **kwargs)


@pytest.mark.parametrize("size", [299, 96])
def test_evaluation_batches_are_the_same_in_both_pipelines(frame, size):
    ours = list(iterate_batches(numpy_batches(frame, size, 4, training=False)))
    theirs = list(iterate_batches(data_tf.make_dataset(frame, size, 4, training=False)))
    assert len(ours) == len(theirs) == -(-len(frame) // 4)
    for (mine, my_labels), (tf_images, tf_labels) in zip(ours, theirs):
        assert mine.dtype == tf_images.dtype == np.float32 and mine.shape == tf_images.shape
        np.testing.assert_array_equal(my_labels, tf_labels)
        difference = np.abs(mine - tf_images)
        assert difference.max() <= 1  # rounding of the same resize to uint8
        assert (difference > 0).mean() < 0.001
    if size == 299:  # no resize at the export's size: identical pixels
        assert all(np.array_equal(a[0], b[0]) for a, b in zip(ours, theirs))


def test_augmentation_is_the_same_arithmetic(frame):
    image = np.asarray(data_tf.load_image(frame["path"].iloc[0], 96))
    rng = np.random.default_rng(0)
    for _ in range(20):
        parameters = augmentation_parameters(rng, 96)
        ours = apply_augmentation(image, 96, *parameters)
        theirs = data_tf.apply_augmentation(image, 96, *parameters).numpy()
        np.testing.assert_allclose(ours, theirs, atol=0.02)


def test_augmentation_parameters_follow_the_documented_ranges():
    rng = np.random.default_rng(1)
    drawn = np.array([augmentation_parameters(rng, 100) for _ in range(2000)])
    side, top, left, brightness, contrast, saturation = drawn.T
    assert side.min() == 90 and side.max() == 100
    assert (top + side <= 100).all() and (left + side <= 100).all() and top.min() == 0
    assert -25.5 <= brightness.min() < -24 and 24 < brightness.max() <= 25.5
    assert 0.9 <= contrast.min() < 0.91 and 1.09 < contrast.max() <= 1.1
    assert 0.9 <= saturation.min() < 0.91 and 1.09 < saturation.max() <= 1.1


def test_training_epochs_cover_every_image_once_reshuffled_and_reproducibly(frame):
    def epoch_labels(data):
        labels = np.concatenate([labels for _, labels in iterate_batches(data)])
        data.on_epoch_end()
        return labels

    data = numpy_batches(frame, 80, 5, training=True, seed=3)
    orders = [data.order.copy()]
    first = epoch_labels(data)
    orders.append(data.order.copy())
    second = epoch_labels(data)
    expected = sorted(label_indices(frame["label"]))
    assert sorted(first) == sorted(second) == expected
    assert sorted(orders[0]) == sorted(orders[1]) == list(range(len(frame)))
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[0], np.arange(len(frame)))
    again = numpy_batches(frame, 80, 5, training=True, seed=3)
    np.testing.assert_array_equal(epoch_labels(again), first)
    a, b = numpy_batches(frame, 80, 5, True, seed=3)[0][0], numpy_batches(frame, 80, 5, True, seed=3)[0][0]
    np.testing.assert_array_equal(a, b)  # the same augmentation whichever thread serves the batch
    plain = numpy_batches(frame, 80, 5, True, seed=3, augmentation=False)[0][0]
    assert not np.array_equal(a, plain) and a.min() >= 0 and a.max() <= 255


def test_images_are_decoded_once_and_cached(frame, monkeypatch):
    import model.data as data_module

    calls = []
    real = data_module.decode_file
    monkeypatch.setattr(data_module, "decode_file", lambda path: calls.append(path) or real(path))
    data = numpy_batches(frame, 64, 4, training=True)
    for _ in range(2):
        list(iterate_batches(data))
        data.on_epoch_end()
    assert sorted(calls) == sorted(frame["path"])


def test_padding_for_data_parallel_devices_carries_zero_weights(frame):
    data = numpy_batches(frame, 64, 5, training=False, pad_to=4)
    batches = list(iterate_batches(data))
    for images, labels, weights in batches:
        assert len(images) % 4 == 0 and len(images) == len(labels) == len(weights)
    real = np.concatenate([labels[weights == 1] for _, labels, weights in batches])
    np.testing.assert_array_equal(real, label_indices(frame["label"]))
    assert sum(int((w == 0).sum()) for *_, w in batches) == sum(-len(y[w == 1]) % 4 for _, y, w in batches)


def test_make_dataset_follows_the_backend(frame):
    assert isinstance(make_dataset(frame, 64, 4, training=False), tf.data.Dataset)  # these tests run under TensorFlow


def test_unreadable_image_names_the_file(tmp_path, frame):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    data = ImageBatches([broken], [0], 64, 1, training=False)
    with pytest.raises(UnreadableImage, match="broken.png") as raised:
        data[0]
    assert isinstance(raised.value, ModelError)
    with pytest.raises(UnreadableImage, match="broken.png"):
        load_image(broken, 64)  # the TensorFlow pipeline's decode, same error


def test_grey_and_transparent_images_become_rgb_as_in_tensorflow(tmp_path):
    grey, rgba = tmp_path / "grey.png", tmp_path / "rgba.png"
    Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64).astype(np.uint8)).save(grey)
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 4)).astype(np.uint8)
    Image.fromarray(pixels, "RGBA").save(rgba)
    for path in (grey, rgba):
        mine = numpy_batches_of_paths([path])
        np.testing.assert_array_equal(mine, np.asarray(data_tf.load_image(str(path), 64), np.float32))


def numpy_batches_of_paths(paths):
    """The first image of a one-image ImageBatches at 64 px."""
    return ImageBatches(paths, [0] * len(paths), 64, 1, training=False)[0][0][0]


def test_label_indices_follow_classes():
    np.testing.assert_array_equal(label_indices(["N", "R3", "L1"]), [0, CLASSES.index("R3"), 1])
