"""The XLA-safe resize: model/resize.py computes TensorFlow's bilinear resize (antialiased or not)
without TensorFlow, SeparableResize gives the DeepID branch the same 55x47 copy as Keras'
antialiased Resizing did, XLA compiles it where it could not compile Resizing, and runs saved
with the old layer still load, now XLA-safe, with the same predictions."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from model.idfnp import SeparableResize, build_model, load_trained
from model.resize import resize, resize_weights

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def photo(astronaut) -> np.ndarray:
    """A 299x299 crop of scikit-image's astronaut (a real face)."""
    return astronaut[40:339, 120:419].astype(np.float32)


@pytest.mark.parametrize("size, antialias", [((55, 47), True), ((75, 75), True), ((96, 96), True), ((39, 31), True),
                                             ((299, 299), False), ((400, 350), False), ((400, 350), True)])
def test_numpy_resize_matches_tensorflow(photo, size, antialias):
    expected = tf.image.resize(photo, size, "bilinear", antialias=antialias).numpy()
    np.testing.assert_allclose(resize(photo, size, antialias=antialias), expected, atol=2e-3)


def test_upscaling_a_zoomed_square_matches_tensorflow(photo):
    square = photo[7:280, 11:284]  # the augmentation's random square, resized back
    expected = tf.image.resize(square, (299, 299), "bilinear").numpy()
    np.testing.assert_allclose(resize(square, (299, 299), antialias=False), expected, atol=1e-2)


def test_resize_matrix_rows_are_weighted_averages():
    matrix = resize_weights(299, 55)
    assert matrix.shape == (55, 299)
    np.testing.assert_allclose(matrix.sum(axis=1), 1, atol=1e-6)
    assert (matrix >= 0).all()
    # Antialiased: each output pixel averages about 299 / 55 = 5.4 input pixels on each side.
    assert 9 <= (matrix[27] > 0).sum() <= 11
    np.testing.assert_array_equal(resize_weights(80, 80, antialias=False), np.eye(80, dtype=np.float32))


def test_separable_resize_gives_the_copy_keras_resizing_gave(photo):
    batch = np.stack([photo, photo[:, ::-1]]) / 127.5 - 1
    ours = SeparableResize(55, 47)(batch)
    keras_resizing = keras.layers.Resizing(55, 47, interpolation="bilinear", antialias=True)(batch)
    assert tuple(ours.shape) == (2, 55, 47, 3)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(keras_resizing), atol=1e-5)


def test_xla_compiles_separable_resize_but_not_the_antialiased_resizing(photo):
    batch = tf.constant(photo[None] / 127.5 - 1)
    old = keras.layers.Resizing(55, 47, interpolation="bilinear", antialias=True)
    with pytest.raises(Exception, match="ScaleAndTranslate"):
        tf.function(lambda x: old(x), jit_compile=True)(batch)
    new = SeparableResize(55, 47)
    compiled = tf.function(lambda x: new(x), jit_compile=True)(batch)
    np.testing.assert_allclose(compiled.numpy(), np.asarray(old(batch)), atol=1e-5)


def test_separable_resize_under_mixed_precision_stays_close(photo):
    layer = SeparableResize(55, 47, dtype="mixed_float16")
    out = layer(photo[None] / 127.5 - 1)
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    reference = tf.image.resize(photo / 127.5 - 1, (55, 47), "bilinear", antialias=True).numpy()
    np.testing.assert_allclose(np.asarray(out, np.float32)[0], reference, atol=1e-2)


def old_deepid(size: int) -> keras.Model:
    """DeepID as runs saved it before SeparableResize: Keras' antialiased Resizing for the copy."""
    from model.idfnp import ImageNetPreprocessing, classifier_head, deepid_features

    images = keras.Input((size, size, 3), name="image")
    x = ImageNetPreprocessing("tf", name="preprocess")(images)
    small = keras.layers.Resizing(55, 47, interpolation="bilinear", antialias=True, name="deepid_downscale")(x)
    return keras.Model(images, classifier_head(deepid_features(small), 7, 0.2, "softmax"), name="deepid")


def test_runs_saved_with_the_old_resize_load_xla_safe_with_the_same_predictions(tmp_path, photo):
    keras.utils.set_random_seed(1)
    old = old_deepid(96)
    path = tmp_path / "model.keras"
    old.save(path)
    images = np.stack([tf.image.resize(photo, (96, 96), antialias=True).numpy(), np.full((96, 96, 3), 90.0, np.float32)])
    loaded = load_trained(path, "deepid", 96)
    assert isinstance(loaded.get_layer("deepid_downscale"), SeparableResize)
    loaded.jit_compile = True
    np.testing.assert_allclose(loaded.predict(images, verbose=0), old.predict(images, verbose=0), atol=1e-5)
    current = build_model("deepid", 96)
    current.save(tmp_path / "current.keras")
    assert isinstance(load_trained(tmp_path / "current.keras", "deepid", 96).get_layer("deepid_downscale"), SeparableResize)
