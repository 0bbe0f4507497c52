"""Progress on a terminal: the callback every long command-line job takes (import, measure,
export, demo), drawn as a tqdm bar on stderr."""
from __future__ import annotations

import sys

__all__ = ["progress_bar"]


def progress_bar(desc: str):
    """Return a progress callback drawing a tqdm bar on stderr."""
    from tqdm import tqdm

    bar = {"bar": None}

    def update(done: int, total: int, what: str = "") -> None:
        if bar["bar"] is None or bar["bar"].total != total:
            if bar["bar"] is not None:
                bar["bar"].close()
            bar["bar"] = tqdm(total=total, desc=desc, unit="img", file=sys.stderr, leave=False)
        bar["bar"].n = done
        bar["bar"].refresh()
        if done >= total:
            bar["bar"].close()
            bar["bar"] = None

    return update
