"""The seven classes of the protocol: N, L1-L3, R1-R3, as side and degree."""
from __future__ import annotations

from db.migrations import CLASSES

__all__ = ["CLASSES", "side_and_degree"]


def side_and_degree(label: str) -> tuple[str | None, int]:
    """Return ('L' | 'R' | None, degree 0-3) of a class name: "N" -> (None, 0), "L2" -> ("L", 2)."""
    return (None, 0) if label == "N" else (label[0], int(label[1]))
