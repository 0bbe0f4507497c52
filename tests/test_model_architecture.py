"""IDFNP's structure (both branches, widths 2048 + 160 = 2208), the baselines' shared head,
in-model preprocessing, local weights files and the offline message for ImageNet weights."""
import keras
import numpy as np
import pytest

from model import ModelError
from model.idfnp import IDFNP, DeepID, ImageNetPreprocessing, build_model

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def width(model, layer_name):
    """Returns the last dimension of a layer's output."""
    return model.get_layer(layer_name).output.shape[-1]


@pytest.fixture(scope="module")
def idfnp_full():
    """IDFNP at the paper's full configuration (299 x 299, 7 classes), random weights."""
    return IDFNP(weights=None)


def test_idfnp_has_both_branches_and_a_2208_wide_concatenation(idfnp_full):
    model = idfnp_full
    assert model.input.shape == (None, 299, 299, 3)
    assert width(model, "inception_v3") == 2048
    assert width(model, "deepid_fc160") == 160
    concat = model.get_layer("idfnp_concat")
    assert concat.output.shape == (None, 2208)
    assert [t.shape[-1] for t in concat.input] == [2048, 160]
    assert isinstance(model.get_layer("dropout"), keras.layers.Dropout)
    assert model.output.shape == (None, 7)
    assert model.get_layer("predictions").activation.__name__ == "softmax"


def test_both_branches_read_the_same_crop_deepid_a_55x47_copy(idfnp_full):
    model = idfnp_full
    assert len(model.inputs) == 1
    # Both inputs of the concatenation are computed from the one image input.
    branches = keras.Model(model.input, model.get_layer("idfnp_concat").input)
    assert [o.shape[-1] for o in branches.outputs] == [2048, 160]
    assert model.get_layer("deepid_downscale").input is model.get_layer("preprocess").output
    assert model.get_layer("deepid_downscale").output.shape == (None, 55, 47, 3)


def test_deepid_branch_follows_sun_2014(idfnp_full):
    model = idfnp_full
    expected = {
        "deepid_conv1": (52, 44, 20), "deepid_pool1": (26, 22, 20),
        "deepid_conv2": (24, 20, 40), "deepid_pool2": (12, 10, 40),
        "deepid_conv3": (10, 8, 60), "deepid_pool3": (5, 4, 60),
        "deepid_conv4": (4, 3, 80),
    }
    for name, shape in expected.items():
        assert tuple(model.get_layer(name).output.shape[1:]) == shape, name
    # The 160-d layer is fully connected to both the third pooling and the fourth convolution.
    assert model.get_layer("deepid_fc160").kernel.shape == (5 * 4 * 60 + 4 * 3 * 80, 160)


def test_feature_extractor_without_top():
    features = IDFNP(include_top=False, weights=None, input_shape=(75, 75, 3))
    assert features.output.shape == (None, 2208)
    out = features.predict(np.zeros((2, 75, 75, 3), np.float32), verbose=0)
    assert out.shape == (2, 2208)


@pytest.mark.parametrize("arch, backbone, feature_width", [("inception_v3", "inception_v3", 2048), ("resnet50", "resnet50", 2048)])
def test_baselines_share_the_head(arch, backbone, feature_width):
    model = build_model(arch, 75, weights=None)
    assert width(model, backbone) == feature_width
    assert isinstance(model.get_layer("dropout"), keras.layers.Dropout)
    assert model.output.shape == (None, 7)


def test_deepid_alone():
    model = DeepID(input_shape=(64, 64, 3))
    assert width(model, "deepid_fc160") == 160 and model.output.shape == (None, 7)
    probabilities = model.predict(np.random.rand(3, 64, 64, 3).astype("float32") * 255, verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)


def test_preprocessing_matches_keras_applications():
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    tf_mode = ImageNetPreprocessing("tf")(pixels)
    np.testing.assert_allclose(tf_mode, keras.applications.inception_v3.preprocess_input(pixels.copy()), atol=1e-5)
    caffe = ImageNetPreprocessing("caffe")(pixels)
    np.testing.assert_allclose(caffe, keras.applications.resnet.preprocess_input(pixels.copy()), atol=1e-3)


def test_local_weights_file_is_loaded_into_the_inception_branch(tmp_path):
    source = keras.applications.InceptionV3(include_top=False, weights=None, input_shape=(75, 75, 3), pooling="avg")
    path = tmp_path / "inception_notop.weights.h5"
    source.save_weights(path)
    model = IDFNP(weights=str(path), input_shape=(75, 75, 3))
    for mine, theirs in zip(model.get_layer("inception_v3").weights[:3], source.weights[:3]):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    with pytest.raises(ModelError, match="weights file not found"):
        IDFNP(weights=str(tmp_path / "missing.h5"), input_shape=(75, 75, 3))


def offline(*args, **kwargs):
    """Stands in for keras' downloader on a machine without internet (same message as Keras)."""
    raise Exception(f"URL fetch failure on {args[1]}: None -- [Errno -3] Temporary failure in name resolution")


def test_offline_imagenet_weights_give_a_clear_message(monkeypatch, tmp_path, capsys):
    from keras.src.utils import file_utils

    from model.cli import main
    from model.demo_export import write_demo_export

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(ModelError, match="cannot download the ImageNet weights for inception_v3.*--weights PATH.*--weights none"):
        build_model("idfnp", 75, weights="imagenet")

    export = write_demo_export(tmp_path / "export", subjects_per_class=3, movements=("MV0",), folds=3, size=80)
    status = main(["train", "--export", str(export), "--out", str(tmp_path / "run"), "--image-size", "75", "--epochs", "1"])
    error = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(error) == 1 and error[0].startswith("error: cannot download the ImageNet weights")
    assert not (tmp_path / "run").exists()  # nothing left behind to block the next try


def test_batch_norm_recalibration_averages_the_batch_statistics():
    import tensorflow as tf

    from model.trainer import batch_norm_layers, recalibrate_batch_norm

    inner = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(name="bn_inner")])
    model = keras.Sequential([keras.Input((3,)), inner, keras.layers.BatchNormalization(name="bn_outer")])
    assert [layer.name for layer in batch_norm_layers(model)] == ["bn_inner", "bn_outer"]
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc, scale, (16, 3)).astype("float32") for loc, scale in [(1, 1), (3, 2), (5, 0.5)]]
    data = tf.data.Dataset.from_tensor_slices((np.concatenate(batches), np.zeros(48))).batch(16)
    assert recalibrate_batch_norm(model, data) == 3
    bn = model.get_layer(index=0).get_layer("bn_inner")
    np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean([b.mean(axis=0) for b in batches], axis=0), rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), np.mean([b.var(axis=0) for b in batches], axis=0), rtol=1e-4)
    assert bn.momentum == 0.99  # restored
