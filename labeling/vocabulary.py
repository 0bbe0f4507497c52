"""The protocol's words, defined once: the seven classes, the seven movements, the photo sources,
and the limits on free text. Every package takes them from here (the labeling workflow, the
asymmetry ranges, the trainer, the pages); this module imports nothing from the project.

The database migrations spell the same values out literally in their CHECK constraints, because a
shipped migration never changes; `tests/test_vocabulary.py` checks that they agree.
"""
from __future__ import annotations

__all__ = ["CLASSES", "CLASS_WORDS", "MAX_REASON", "MOVEMENTS", "MOVEMENT_NAMES", "ORDINAL_ORDER", "SOURCES",
           "movement_phrase", "side_and_degree"]

CLASSES = ("N", "L1", "L2", "L3", "R1", "R2", "R3")
"""The seven classes (paper Table 3): normal, or the palsied side (the patient's left or right) and
its degree 1 mild, 2 moderate, 3 severe. Every output lists them in this order."""

ORDINAL_ORDER = ("L3", "L2", "L1", "N", "R1", "R2", "R3")
"""The classes on the one ordinal scale they make: left severe to right severe, N in the middle."""

CLASS_WORDS = {"N": "normal", "L1": "left mild", "L2": "left moderate", "L3": "left severe",
               "R1": "right mild", "R2": "right moderate", "R3": "right severe"}
"""Each class in words (the patient's side)."""

MOVEMENTS = ("MV0", "MV1", "MV2", "MV3", "MV4", "MV5", "MV6")
"""The seven movements photographed per subject (paper Table 2)."""

MOVEMENT_NAMES = {"MV0": "At rest", "MV1": "Eyes closed", "MV2": "Eyebrows raised", "MV3": "Cheeks puffed",
                  "MV4": "Grinning", "MV5": "Nose wrinkled", "MV6": "Whistling"}
"""Each movement's name, as a heading; `movement_phrase` gives it inside a sentence."""

SOURCES = ("hospital", "mobile")
"""Where a photo was taken: a hospital camera, or a phone (whose front camera mirrors)."""

MAX_REASON = 500
"""The longest reason (cannot-grade, exclusion, correction, undo) a user may type, in characters."""


def movement_phrase(movement: str) -> str:
    """Return the movement's name inside a sentence: "MV1" -> "eyes closed"."""
    return MOVEMENT_NAMES[movement].lower()


def side_and_degree(label: str) -> tuple[str | None, int]:
    """Return ('L' | 'R' | None, degree 0-3) of a class name: "N" -> (None, 0), "L2" -> ("L", 2)."""
    return (None, 0) if label == "N" else (label[0], int(label[1]))
