"""Decode face photos one way everywhere: EXIF orientation, colour modes, size limits.

Every caller (import, landmarks, overlays, export crops) decodes through `decode_image`, so an
image looks the same at every step of the workflow. Bad files give a status, never an exception.
"""
from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# A 12-megapixel phone photo is 12e6 pixels; 100 MP is a generous ceiling for a face photo.
# Anything larger is refused before its pixels are decoded (decompression bombs).
MAX_PIXELS = 100_000_000
# Smaller than this on the short side cannot hold a gradable face.
MIN_SIDE = 64

Image.MAX_IMAGE_PIXELS = MAX_PIXELS


@dataclass
class Decoded:
    """The outcome of decoding one image.

    `status` is "ok", "unreadable", "bomb" or "too_small"; `rgb` is an HxWx3 uint8 array when ok.
    `size` is the full-resolution (width, height) after EXIF orientation; `scale` is how much
    smaller `rgb` is than that (1.0 = full size), so coordinates map back as x / scale.
    """

    status: str
    message: str = ""
    rgb: np.ndarray | None = None
    size: tuple[int, int] = (0, 0)
    scale: float = 1.0
    format: str = ""
    mode: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _to_rgb(img: Image.Image, notes: list[str]) -> Image.Image:
    """Return an 8-bit RGB copy of `img`, noting any conversion a coordinator should know of."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = float(arr.max()) if arr.size else 0.0
        arr8 = (arr / hi * 255.0) if hi > 0 else arr
        notes.append(f"{mode} (16/32-bit grayscale) scaled to 8-bit RGB")
        return Image.fromarray(np.clip(arr8, 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        notes.append(f"{mode} with transparency composited on white")
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode == "CMYK":
        notes.append("CMYK converted to RGB")
    elif mode == "P":
        notes.append("palette image converted to RGB")
    elif mode in ("L", "1"):
        notes.append("grayscale image converted to RGB")
    else:
        notes.append(f"{mode} converted to RGB")
    return img.convert("RGB")


def _in_words(exc: BaseException) -> str:
    """What a decoding error means for the person holding the file (Pillow's own words name its
    internals: stream offsets, byte counts, Python objects)."""
    msg = str(exc)
    if "cannot identify image file" in msg or isinstance(exc, Image.UnidentifiedImageError):
        return "not an image file, or a format this software cannot read"
    if "truncated" in msg.lower() or isinstance(exc, EOFError):
        return "the file ends early (truncated), as if a copy or upload was cut short"
    return "the image data is damaged" + (f" ({msg})" if msg and "<" not in msg and "\\x" not in msg else "")


def probe(src: str | Path | bytes) -> Decoded:
    """Check that `src` is a complete, decodable, face-sized image; return its status and size.

    Decodes the full image once (that is the only way to catch a truncated file) but keeps no
    pixels. Used by import.
    """
    return decode_image(src, keep_pixels=False)


def decode_image(src: str | Path | bytes, max_side: int | None = None, keep_pixels: bool = True,
                 draft_only: bool = False) -> Decoded:
    """Decode `src` to RGB with EXIF orientation applied; return a `Decoded` (never raises).

    `max_side` asks for a copy whose longer side is about that many pixels: JPEGs are then
    decoded in draft mode (DCT scaling, much faster on 12 MP photos), then resized exactly.
    `draft_only`: keep what draft mode gives without the exact resize (which costs more than the
    draft decode itself on a 12 MP photo) unless its longer side is still over twice `max_side`.
    """
    name = "the image" if isinstance(src, bytes) else Path(src).name
    notes: list[str] = []
    try:
        fp = io.BytesIO(src) if isinstance(src, bytes) else open(src, "rb")
    except OSError as exc:
        return Decoded("unreadable", f"cannot open {name}: {exc.strerror or exc}")
    with fp:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(fp)
                fmt = img.format or ""
                w, h = img.size
                if w * h > MAX_PIXELS:
                    return Decoded("bomb", f"{w}x{h} pixels is over the {MAX_PIXELS // 1_000_000} MP limit "
                                           "(decompression bomb?); not decoded", size=(w, h), format=fmt)
                orientation = img.getexif().get(0x0112, 1) if hasattr(img, "getexif") else 1
                if max_side and fmt == "JPEG" and max(w, h) > max_side:
                    img.draft("RGB", (max_side, max_side))
                img.load()
                mode = img.mode
                img = ImageOps.exif_transpose(img) or img
                if orientation not in (1, None):
                    notes.append(f"EXIF orientation {orientation} applied")
                full = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
                if min(full) < MIN_SIDE:
                    return Decoded("too_small", f"{full[0]}x{full[1]} pixels is too small to hold a face "
                                                f"(need at least {MIN_SIDE} px on the short side)",
                                   size=full, format=fmt, mode=mode)
                img = _to_rgb(img, notes)
                if not keep_pixels:
                    return Decoded("ok", "", None, full, 1.0, fmt, mode, notes)
                if max_side and max(img.size) > (2 * max_side if draft_only else max_side):
                    ratio = max_side / max(img.size)
                    img = img.resize((max(1, round(img.size[0] * ratio)), max(1, round(img.size[1] * ratio))),
                                     Image.Resampling.BILINEAR, reducing_gap=2.0)
                scale = img.size[0] / full[0]
                return Decoded("ok", "", np.asarray(img), full, scale, fmt, mode, notes)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            claimed = re.search(r"\((\d+) pixels\)", str(exc))
            size = f"{int(claimed[1]) / 1e6:,.0f} MP" if claimed else "more pixels than allowed"
            return Decoded("bomb", f"refused as a decompression bomb: the image claims {size}, over the "
                                   f"{MAX_PIXELS // 1_000_000} MP limit")
        except (OSError, SyntaxError, ValueError, EOFError, Image.UnidentifiedImageError) as exc:
            return Decoded("unreadable", f"cannot decode {name}: {_in_words(exc)}")
        except MemoryError:
            return Decoded("bomb", f"{name} needs more memory to decode than allowed")
