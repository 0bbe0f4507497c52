"""What an export or a crop correction refuses."""
from __future__ import annotations

__all__ = ["ExportError"]


class ExportError(ValueError):
    """An export or a crop correction is refused; the message says why and what to do."""
