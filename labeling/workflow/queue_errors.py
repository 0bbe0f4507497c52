"""What the read queue refuses, as exceptions, and the checks of a showing that raise them: shared
by the queue, the quality-control items it hands out and adjudication (the same minimum viewing
time), so none of them imports another."""
from __future__ import annotations

import datetime as dt

__all__ = ["NotReserved", "QueueError", "TooQuick", "check_showing", "duration_ms"]


class QueueError(ValueError):
    """A queue action cannot be done (lease lost, nothing to undo…); the message says why."""


class NotReserved(QueueError):
    """The image (or quality-control item) a reader answers is no longer held by them."""

    def __init__(self) -> None:
        super().__init__("this image is no longer reserved for you (already saved, or the reservation expired "
                         "and it went to someone else); nothing was saved")


class TooQuick(QueueError):
    """A read came before the image had been shown for the minimum viewing time."""


def check_showing(token: str | None, expected: str, shown_at: str | None, t: dt.datetime,
                  dwell: dt.timedelta) -> None:
    """Refuse a choice made for another showing than `expected` (the token the page was given), or
    before the image had been on screen for `dwell` since `shown_at`; nothing is saved then."""
    if token is not None and token != expected:
        raise QueueError("that choice was made for an earlier showing of this image; nothing was saved")
    if shown_at and t - dt.datetime.fromisoformat(shown_at) < dwell:
        raise TooQuick(f"too quick: the image had been shown for less than {dwell.total_seconds():g} s; "
                       "nothing was saved")


def duration_ms(t: dt.datetime, started_at: str | None) -> int | None:
    """Milliseconds from `started_at` (the page's ISO time; None or unreadable: unknown) to `t`."""
    if not started_at:
        return None
    try:
        return max(0, int((t - dt.datetime.fromisoformat(started_at)).total_seconds() * 1000))
    except ValueError:
        return None
