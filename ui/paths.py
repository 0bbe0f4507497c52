"""The app's own URL paths, and which of them a sign-in may send someone on to. Plain Python: the
pages (ui/common.py) and the web routes (ui/web.py) both use it."""
from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["EXPORT_DOWNLOAD", "SETUP", "SIGNIN", "safe_next"]

SIGNIN, SETUP = "/signin", "/setup"
EXPORT_DOWNLOAD = "/download/export/"  # + NAME.zip: a finished export as one zip


def safe_next(target: str | None) -> str:
    """Return `target` when it is a path of this app (never another site, never these routes), else "/"."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(parts.path.startswith(p) for p in (SIGNIN, SETUP)):
        return "/"
    return target
