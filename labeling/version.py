"""The software's version: the one place it is written (pyproject.toml reads it from here)."""
from __future__ import annotations

import subprocess
from pathlib import Path

__version__ = "0.1.0"


def software_version() -> str:
    """Return this software's version, with `git describe` of the checkout when it runs from one
    (a source checkout or an editable install; an installed copy has no .git beside it)."""
    root = Path(__file__).resolve().parents[1]
    if (root / ".git").exists():
        try:
            out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=root,
                                 capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                return f"{__version__} (git {out.stdout.strip()})"
        except (OSError, subprocess.SubprocessError):
            pass
    return __version__
