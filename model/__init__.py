"""The bundled IDFNP trainer: architecture, input pipelines, training, evaluation and prediction,
on Keras 3 with any of its backends (KERAS_BACKEND=tensorflow, the default, jax or torch).

TensorFlow is imported only inside this package, only under the TensorFlow backend and only where
it is needed, so `import model` and `python -m model --help` stay quick and the trainer runs on
machines without TensorFlow. See docs/model.md.
"""

CLASSES = ("N", "L1", "L2", "L3", "R1", "R2", "R3")
"""The seven classes of the paper's Table 3, in the order used by every output of this package."""

MOVEMENTS = ("MV0", "MV1", "MV2", "MV3", "MV4", "MV5", "MV6")
"""The seven movements of the paper's Table 2."""


class ModelError(Exception):
    """A problem with what the user gave us (export, run folder, weights, settings).

    The CLI prints its message as one line and exits non-zero; anything else is a bug.
    """
