"""Server-side page-run times, for the capacity benchmark (bench/capacity.py).

Every run of a page script is timed; with FNP_METRICS=1 the server also answers GET /metrics/runs
with the times recorded since the last reset (JSON), and POST /metrics/runs resets them. Off by
default: the figures say how busy the server is, which is nobody's business but its operator's.
"""
from __future__ import annotations

import os
import threading
from collections import deque

_runs: deque[float] = deque(maxlen=100_000)
_lock = threading.Lock()


def enabled() -> bool:
    """True when the metrics route is served (FNP_METRICS=1)."""
    return os.environ.get("FNP_METRICS") == "1"


def record_run(seconds: float) -> None:
    """Record one page run's duration."""
    with _lock:
        _runs.append(seconds)


def runs(reset: bool = False) -> list[float]:
    """Return the recorded durations (seconds); clear them when `reset`."""
    with _lock:
        out = list(_runs)
        if reset:
            _runs.clear()
    return out
