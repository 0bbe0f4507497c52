"""The bundled IDFNP trainer: architecture, input pipelines, training, evaluation and prediction,
on Keras 3 with any of its backends (KERAS_BACKEND=tensorflow, the default, jax or torch).

TensorFlow is imported only inside this package, only under the TensorFlow backend and only where
it is needed, so `import model` and `python -m model --help` stay quick and the trainer runs on
machines without TensorFlow. See docs/model.md.
"""

from labeling.vocabulary import CLASSES, MOVEMENTS  # the protocol's words (a leaf module, no dependencies)

__all__ = ["CLASSES", "MOVEMENTS", "ModelError"]


class ModelError(Exception):
    """A problem with what the user gave us (export, run folder, weights, settings).

    The CLI prints its message as one line and exits non-zero; anything else is a bug.
    """
