"""What the read queue refuses, as exceptions: shared by the queue, the quality-control items it
hands out and adjudication (the same minimum viewing time), so none of them imports another."""
from __future__ import annotations

__all__ = ["QueueError", "TooQuick"]


class QueueError(ValueError):
    """A queue action cannot be done (lease lost, nothing to undo…); the message says why."""


class TooQuick(QueueError):
    """A read came before the image had been shown for the minimum viewing time."""
