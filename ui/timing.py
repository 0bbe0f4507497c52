"""Server-side page-run times, for the capacity benchmark (bench/capacity.py).

Every run of a page script is timed twice: wall time, and the CPU time of the thread that ran it
(what the run itself cost, without the time it waited for a core or the interpreter lock). With
FNP_METRICS=1 the server also answers GET /metrics/runs with the times recorded since the last
reset (JSON), and POST /metrics/runs resets them. Off by default: the figures say how busy the
server is, which is nobody's business but its operator's.
"""
from __future__ import annotations

import os
import threading
from collections import deque

_runs: deque[tuple[float, float]] = deque(maxlen=100_000)
_lock = threading.Lock()


def enabled() -> bool:
    """True when the metrics route is served (FNP_METRICS=1)."""
    return os.environ.get("FNP_METRICS") == "1"


def record_run(seconds: float, cpu_seconds: float = float("nan")) -> None:
    """Record one page run's wall time and its thread's CPU time."""
    with _lock:
        _runs.append((seconds, cpu_seconds))


def runs(reset: bool = False) -> list[tuple[float, float]]:
    """Return the recorded (wall, CPU) times in seconds; clear them when `reset`."""
    with _lock:
        out = list(_runs)
        if reset:
            _runs.clear()
    return out
