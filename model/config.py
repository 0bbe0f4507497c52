"""Training settings with the paper's defaults and their sources, and the architectures the
trainer knows. Plain Python, no TensorFlow, so the CLI can check its input before the slow import."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

ARCHITECTURES = (
    "idfnp",
    "inception_v3",
    "inception_resnet_v2",
    "resnet50",
    "resnet101",
    "resnet152",
    "deepid",
)

# keras.applications refuses smaller inputs; DeepID reads its own downscaled copy of the crop.
MIN_IMAGE_SIZE = {
    "idfnp": 75,
    "inception_v3": 75,
    "inception_resnet_v2": 75,
    "resnet50": 32,
    "resnet101": 32,
    "resnet152": 32,
    "deepid": 16,
}

MIXED_PRECISION = ("auto", "on", "off")
DISTRIBUTE = ("none", "mirrored", "multiworker")
XLA = ("auto", "on", "off")


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored as the run folder's config.json."""

    arch: str = "idfnp"
    epochs: int = 90  # paper silent on the total; 90 = three learning-rate steps
    image_size: int = 299  # paper §2.3.4: crops resized to 299x299x3
    weights: str = "imagenet"  # paper §2.5: ImageNet pre-training; "imagenet" | "none" | .h5 path
    fold: int | None = None  # --fold K: validate on fold K of train+val
    cv: bool = False  # --cv: every fold in turn (paper §2.3.4: k = 10)
    batch_size: int = 60  # paper §2.3.4 "training set batch size was 60"
    val_batch_size: int = 100  # paper §2.3.4 "the cross-validated batch size was 100"
    learning_rate: float = 0.001  # paper §2.5
    rho: float = 0.9  # paper §2.5: RMSProp "decay of 0.9"
    momentum: float = 0.9  # paper §2.5
    epsilon: float = 0.1  # paper §2.5
    lr_decay_factor: float = 0.16  # paper §2.5 "decay factor of 16": TF-slim's Inception recipe, x0.16
    lr_decay_epochs: int = 30  # paper §2.5 "every 30 epochs"
    dropout: float = 0.2  # paper silent; TF-slim Inception-v3 keeps 0.8 before the logits
    deepid_size: tuple[int, int] = (55, 47)  # DeepID branch input (height, width): DeepID2's; DeepID's was 39x31
    augment: bool = True  # light augmentation of training images, see model/data.py
    precise_bn_batches: int = 200  # batch-norm statistics re-estimated at the end (0: off); see trainer
    mixed_precision: str = "auto"  # auto = on when a GPU is present
    distribute: str = "none"  # none | mirrored (several GPUs) | multiworker (TF_CONFIG)
    xla: str = "auto"  # auto (Keras' choice) | on | off: XLA-compile the training, evaluation and prediction steps
    seed: int = 0

    def problems(self) -> list[str]:
        """Returns what is wrong with these settings, as sentences; empty when they are usable."""
        found = []
        if self.arch not in ARCHITECTURES:
            found.append(f"unknown architecture {self.arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        elif self.image_size < MIN_IMAGE_SIZE[self.arch]:
            found.append(
                f"--image-size {self.image_size} is too small for {self.arch} "
                f"(at least {MIN_IMAGE_SIZE[self.arch]} px)"
            )
        if self.epochs < 1:
            found.append("--epochs must be at least 1")
        if self.batch_size < 1 or self.val_batch_size < 1:
            found.append("batch sizes must be at least 1")
        if self.fold is not None and self.cv:
            found.append("--fold and --cv exclude each other")
        if self.mixed_precision not in MIXED_PRECISION:
            found.append(f"--mixed-precision must be one of {', '.join(MIXED_PRECISION)}")
        if self.distribute not in DISTRIBUTE:
            found.append(f"--distribute must be one of {', '.join(DISTRIBUTE)}")
        if self.xla not in XLA:
            found.append(f"--xla must be one of {', '.join(XLA)}")
        if self.precise_bn_batches < 0:
            found.append("precise_bn_batches must be 0 (off) or more")
        if not 0 <= self.dropout < 1:
            found.append("dropout must be in [0, 1)")
        return found

    def to_dict(self) -> dict:
        """Returns the settings as JSON-ready values."""
        values = dataclasses.asdict(self)
        values["deepid_size"] = list(self.deepid_size)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Returns the settings stored by to_dict (unknown keys ignored, missing ones defaulted)."""
        known = {f.name for f in dataclasses.fields(cls)}
        kept = {k: v for k, v in values.items() if k in known}
        if "deepid_size" in kept:
            kept["deepid_size"] = tuple(kept["deepid_size"])
        return cls(**kept)


def learning_rate_at(epoch: int, config: TrainConfig | None = None) -> float:
    """Returns the learning rate for a 0-based epoch: the base rate times 0.16 for every 30 epochs done.

    Paper §2.5 ("a global learning rate of 0.001 and a decay factor of 16 every 30 epochs"), read as
    TF-slim's Inception fine-tuning recipe (learning_rate_decay_factor 0.16, 30 epochs per decay).
    """
    config = config or TrainConfig()
    return config.learning_rate * config.lr_decay_factor ** (epoch // config.lr_decay_epochs)
