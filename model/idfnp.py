"""IDFNP (Inception-DeepID-FNP) and the paper's baselines, built the keras.applications way.

Reference:
  Song A., Wu Z., Ding X., Hu Q., Di X. "Neurologist Standard Classification of Facial Nerve
  Paralysis with Deep Neural Networks". Future Internet 2018, 10(11):111. §2.4 (IDFNP),
  §2.5 (training), §3.4 / Table 9 (baselines).
  Sun Y., Wang X., Tang X. "Deep Learning Face Representation from Predicting 10,000 Classes".
  CVPR 2014 (DeepID).
The paper's Figure 3 is not public; this is the reconstruction documented in docs/model.md:
Inception-v3 (global average pooling, 2048-d) and a DeepID branch (160-d) on a downscaled copy of
the same crop, concatenated (2208-d), dropout, 7-way softmax.

Every layer here runs on the TensorFlow, JAX and torch backends and compiles with XLA: the DeepID
copy is downscaled by `SeparableResize` (two matrix products), not by TensorFlow's antialiased
resize op, which XLA cannot compile.
"""
from __future__ import annotations

from pathlib import Path

import keras
from keras import layers, ops

from model import CLASSES, ModelError
from model.resize import resize_weights

INCEPTION_WIDTH = 2048
DEEPID_WIDTH = 160
DEEPID_SIZE = (55, 47)
WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"

# name: (keras.applications builder, ImageNet preprocessing mode, no-top weights file under WEIGHTS_URL)
BACKBONES = {
    "inception_v3": (
        keras.applications.InceptionV3,
        "tf",
        "inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ),
    "inception_resnet_v2": (
        keras.applications.InceptionResNetV2,
        "tf",
        "inception_resnet_v2/inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ),
    "resnet50": (keras.applications.ResNet50, "caffe", "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "resnet101": (keras.applications.ResNet101, "caffe", "resnet/resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "resnet152": (keras.applications.ResNet152, "caffe", "resnet/resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5"),
}


@keras.saving.register_keras_serializable(package="fnp_model")
class ImageNetPreprocessing(layers.Layer):
    """Maps RGB pixels in [0, 255] to what an ImageNet backbone expects.

    mode "tf" (Inception): [-1, 1]; mode "caffe" (ResNet): BGR minus the ImageNet channel means.
    Same arithmetic as keras.applications' preprocess_input, kept inside the model.
    """

    def __init__(self, mode: str = "tf", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("tf", "caffe"):
            raise ValueError(f"unknown preprocessing mode {mode!r}")
        self.mode = mode

    def call(self, images):
        images = ops.cast(images, self.compute_dtype)
        if self.mode == "tf":
            return images / 127.5 - 1.0
        mean = ops.convert_to_tensor([103.939, 116.779, 123.68], dtype=self.compute_dtype)
        return ops.flip(images, axis=-1) - mean

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="fnp_model")
class SeparableResize(layers.Layer):
    """Resizes NHWC images to (height, width) as TensorFlow's bilinear resize does, antialiased by
    default, with two matrix products (height, then width; see model/resize.py).

    The same values as `layers.Resizing(height, width, "bilinear", antialias=True)` (to float
    rounding), but made of einsums that XLA compiles on every backend, where the antialiased
    resize is TensorFlow's ScaleAndTranslate op, which XLA cannot compile. No weights: the
    matrices are constants fixed by the input and output sizes.
    """

    def __init__(self, height: int, width: int, antialias: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.height, self.width, self.antialias = int(height), int(width), bool(antialias)

    def build(self, input_shape):
        if input_shape[1] is None or input_shape[2] is None:
            raise ValueError("SeparableResize needs a fixed input height and width")
        self.rows = resize_weights(int(input_shape[1]), self.height, self.antialias)
        self.columns = resize_weights(int(input_shape[2]), self.width, self.antialias)

    def call(self, images):
        images = ops.cast(images, self.compute_dtype)
        rows = ops.convert_to_tensor(self.rows, dtype=self.compute_dtype)
        columns = ops.convert_to_tensor(self.columns, dtype=self.compute_dtype)
        tall = ops.einsum("oh,bhwc->bowc", rows, images)
        return ops.einsum("pw,bowc->bopc", columns, tall)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width, "antialias": self.antialias}


def imagenet_backbone(name: str, weights: str | None, input_shape: tuple[int, int, int]) -> keras.Model:
    """Returns the keras.applications model `name` without its top, global-average pooled.

    weights: "imagenet" (Keras download, cached in ~/.keras/models), None, or the path of the
    no-top .h5 file. Raises ModelError with what to do when the ImageNet file cannot be fetched.
    """
    builder, _, weights_file = BACKBONES[name]
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise ModelError(f"weights file not found: {weights}")
    try:
        return builder(include_top=False, weights=weights, input_shape=input_shape, pooling="avg")
    except Exception as error:  # keras.utils.get_file raises a bare Exception on download failure
        if weights == "imagenet" and "URL fetch failure" in str(error):
            raise ModelError(
                f"cannot download the ImageNet weights for {name} (offline?). On a machine that is "
                f"online, fetch {WEIGHTS_URL}{weights_file} and pass it with --weights PATH (or copy it "
                "to ~/.keras/models/), or train from scratch with --weights none"
            ) from None
        if weights not in (None, "imagenet") and isinstance(error, (ValueError, OSError)):
            raise ModelError(f"cannot load {weights} into {name}: it must be Keras' no-top file {Path(weights_file).name}") from None
        raise


def deepid_features(images, name: str = "deepid"):
    """Returns the 160-d DeepID feature (Sun et al. 2014, Fig. 2) of an image batch tensor.

    conv 4x4x20, max-pool; conv 3x3x40, max-pool; conv 3x3x60, max-pool; conv 2x2x80; one 160-d
    ReLU layer fully connected to both the third pooling and the fourth convolution (DeepID's
    multi-scale feature). DeepID's locally shared weights in its upper layers are ordinary
    convolutions here.
    """
    x = layers.Conv2D(20, 4, activation="relu", name=f"{name}_conv1")(images)
    x = layers.MaxPooling2D(2, name=f"{name}_pool1")(x)
    x = layers.Conv2D(40, 3, activation="relu", name=f"{name}_conv2")(x)
    x = layers.MaxPooling2D(2, name=f"{name}_pool2")(x)
    x = layers.Conv2D(60, 3, activation="relu", name=f"{name}_conv3")(x)
    pool3 = layers.MaxPooling2D(2, name=f"{name}_pool3")(x)
    conv4 = layers.Conv2D(80, 2, activation="relu", name=f"{name}_conv4")(pool3)
    both = layers.Concatenate(name=f"{name}_pool3_conv4")(
        [layers.Flatten(name=f"{name}_pool3_flat")(pool3), layers.Flatten(name=f"{name}_conv4_flat")(conv4)]
    )
    return layers.Dense(DEEPID_WIDTH, activation="relu", name=f"{name}_fc160")(both)


def classifier_head(features, classes: int, dropout: float, classifier_activation: str | None):
    """Returns dropout then the class layer on `features` (float32 even under mixed precision)."""
    x = layers.Dropout(dropout, name="dropout")(features)
    return layers.Dense(classes, activation=classifier_activation, dtype="float32", name="predictions")(x)


def IDFNP(
    include_top: bool = True,
    weights: str | None = "imagenet",
    input_shape: tuple[int, int, int] | None = None,
    classes: int = len(CLASSES),
    dropout: float = 0.2,
    deepid_size: tuple[int, int] = DEEPID_SIZE,
    classifier_activation: str | None = "softmax",
    name: str = "idfnp",
) -> keras.Model:
    """Instantiates the Inception-DeepID-FNP network (Song et al. 2018, §2.4).

    Reference: Song et al., "Neurologist Standard Classification of Facial Nerve Paralysis with
    Deep Neural Networks", Future Internet 2018, 10(11):111.

    Args:
        include_top: whether to end with dropout and the `classes`-way classifier; if False the
            output is the 2208-d concatenation.
        weights: weights of the Inception-v3 branch: "imagenet", None (random), or the path of
            Keras' no-top Inception-v3 .h5 file. The DeepID branch always starts random.
        input_shape: (size, size, 3), RGB in [0, 255]; default (299, 299, 3), at least 75.
        classes: number of classes (7: N, L1, L2, L3, R1, R2, R3).
        dropout: dropout rate before the classifier.
        deepid_size: (height, width) of the downscaled copy the DeepID branch reads.
        classifier_activation: activation of the top layer.
        name: model name.

    Returns:
        A keras.Model from images to class probabilities (or to features if not include_top).
    """
    input_shape = tuple(input_shape or (299, 299, 3))
    images = keras.Input(input_shape, name="image")
    x = ImageNetPreprocessing("tf", name="preprocess")(images)
    inception = imagenet_backbone("inception_v3", weights, input_shape)(x)
    small = SeparableResize(*deepid_size, name="deepid_downscale")(x)
    deepid = deepid_features(small)
    features = layers.Concatenate(name="idfnp_concat")([inception, deepid])
    if not include_top:
        return keras.Model(images, features, name=name)
    return keras.Model(images, classifier_head(features, classes, dropout, classifier_activation), name=name)


def DeepID(
    include_top: bool = True,
    input_shape: tuple[int, int, int] | None = None,
    classes: int = len(CLASSES),
    dropout: float = 0.2,
    deepid_size: tuple[int, int] = DEEPID_SIZE,
    classifier_activation: str | None = "softmax",
    name: str = "deepid",
) -> keras.Model:
    """Instantiates DeepID alone (Sun et al. 2014) on a downscaled copy of the crop: the paper's
    Table 9 baseline. Always randomly initialised (there are no ImageNet DeepID weights).

    Returns:
        A keras.Model from images (RGB in [0, 255]) to class probabilities (or 160-d features).
    """
    images = keras.Input(tuple(input_shape or (299, 299, 3)), name="image")
    x = ImageNetPreprocessing("tf", name="preprocess")(images)
    small = SeparableResize(*deepid_size, name="deepid_downscale")(x)
    features = deepid_features(small)
    if not include_top:
        return keras.Model(images, features, name=name)
    return keras.Model(images, classifier_head(features, classes, dropout, classifier_activation), name=name)


def Baseline(
    backbone: str,
    weights: str | None = "imagenet",
    input_shape: tuple[int, int, int] | None = None,
    classes: int = len(CLASSES),
    dropout: float = 0.2,
    classifier_activation: str | None = "softmax",
) -> keras.Model:
    """Instantiates a keras.applications backbone with IDFNP's head (the paper's Table 9:
    Inception-v3, Inception-ResNet-v2, ResNet-50/101/152), global-average pooled, fine-tuned whole.

    Returns:
        A keras.Model from images (RGB in [0, 255]) to class probabilities.
    """
    _, mode, _ = BACKBONES[backbone]
    input_shape = tuple(input_shape or (299, 299, 3))
    images = keras.Input(input_shape, name="image")
    x = ImageNetPreprocessing(mode, name="preprocess")(images)
    features = imagenet_backbone(backbone, weights, input_shape)(x)
    return keras.Model(images, classifier_head(features, classes, dropout, classifier_activation), name=backbone)


def build_model(
    arch: str,
    image_size: int = 299,
    weights: str | None = "imagenet",
    dropout: float = 0.2,
    deepid_size: tuple[int, int] = DEEPID_SIZE,
) -> keras.Model:
    """Returns the 7-class model named by `arch` (see model.config.ARCHITECTURES), uncompiled."""
    shape = (image_size, image_size, 3)
    if arch == "idfnp":
        return IDFNP(weights=weights, input_shape=shape, dropout=dropout, deepid_size=deepid_size)
    if arch == "deepid":
        return DeepID(input_shape=shape, dropout=dropout, deepid_size=deepid_size)
    if arch in BACKBONES:
        return Baseline(arch, weights=weights, input_shape=shape, dropout=dropout)
    raise ModelError(f"unknown architecture {arch!r}")


def load_trained(path, arch: str, image_size: int, dropout: float = 0.2, deepid_size: tuple[int, int] = DEEPID_SIZE) -> keras.Model:
    """Returns a run's saved model (model.keras), uncompiled, ready to predict.

    Runs saved before the DeepID downscale became `SeparableResize` hold Keras' antialiased
    `Resizing` there, which XLA cannot compile: such a model is rebuilt with `SeparableResize`
    and given the saved weights (the same function; the resize has no weights).
    """
    network = keras.saving.load_model(path, compile=False)
    if any(isinstance(layer, layers.Resizing) for layer in network.layers):
        rebuilt = build_model(arch, image_size, weights=None, dropout=dropout, deepid_size=deepid_size)
        rebuilt.set_weights(network.get_weights())
        network = rebuilt
    return network
