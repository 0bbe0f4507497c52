"""Image display helpers for pages: cached decoding of stored originals (no domain logic)."""
from __future__ import annotations

import numpy as np
import streamlit as st

from asymmetry.imaging import decode_image
from ui.common import project



@st.cache_data(max_entries=64, show_spinner=False)
def stored_rgb(stored_path: str, max_side: int = 1400) -> np.ndarray | None:
    """Return the stored original as RGB (EXIF honoured), at most `max_side` pixels; None if unreadable."""
    d = decode_image(project().store / stored_path, max_side=max_side)
    return d.rgb if d.ok else None


def orientation_hint(mirrored: bool) -> str:
    """Tell the reader where the patient's left is in this photo."""
    return ("Mirrored photo (front camera): the patient's **left** is on the image's **left**." if mirrored else
            "Normal camera: the patient's **left** is on the image's **right**.")


@st.cache_data(max_entries=64, show_spinner=False)
def stored_data_url(stored_path: str, max_side: int = 1100, flipped: bool = False) -> str | None:
    """Return the stored original (flipped left to right when asked) as a JPEG data: URL for the
    decision surface; None if unreadable."""
    from ui.keys import jpeg_data_url

    rgb = stored_rgb(stored_path)
    if rgb is None:
        return None
    return jpeg_data_url(np.ascontiguousarray(rgb[:, ::-1]) if flipped else rgb, max_side)


@st.cache_data(max_entries=512, show_spinner=False)
def stored_thumb(stored_path: str, side: int = 160) -> np.ndarray | None:
    """Return a small RGB copy of the stored original (decoded small: JPEG draft mode); None if unreadable."""
    d = decode_image(project().store / stored_path, max_side=side)
    return d.rgb if d.ok else None
