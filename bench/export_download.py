"""Streaming an export as a zip download: time and Python memory, against two baselines side by side.

    .venv/bin/python bench/export_download.py [--files 2000] [--kib 100] [--rounds 3]

Builds a folder shaped like an export (FILES crops of KIB KiB of random bytes, which no
compression shrinks, like PNG crops, plus a manifest) in a temporary folder, then, interleaved,
best of ROUNDS:
  ours      labeling.export.download.export_zip(folder).chunks(), every byte consumed
  read      reading every file in 1 MiB pieces (the floor: the bytes must be read once)
  in-memory the standard library's zipfile writing the same zip into a BytesIO, as handing the
            zip to st.download_button would (it keeps the whole file in memory)
and, in a second pass each, the peak Python memory (tracemalloc) of ours and of in-memory.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labeling.export.download import export_zip  # noqa: E402


def make_folder(root: Path, files: int, kib: int) -> Path:
    folder = root / "bench-export"
    (folder / "train" / "N").mkdir(parents=True)
    (folder / "val" / "N").mkdir(parents=True)
    for k in range(files):
        (folder / "train" / "N" / f"{k:06d}.png").write_bytes(os.urandom(kib * 1024))
    (folder / "manifest.csv").write_text("image_sha256,split\n" * 10)
    return folder


def ours(folder: Path) -> int:
    return sum(len(c) for c in export_zip(folder).chunks())


def read_all(folder: Path) -> int:
    n = 0
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            with open(p, "rb") as fh:
                while chunk := fh.read(2**20):
                    n += len(chunk)
    return n


def in_memory(folder: Path) -> int:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for p in sorted(folder.rglob("*")):
            zf.write(p, f"{folder.name}/{p.relative_to(folder)}")
    return len(buf.getvalue())


def peak(fn, folder: Path) -> float:
    tracemalloc.start()
    fn(folder)
    _, top = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return top / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--kib", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_folder(Path(tmp), args.files, args.kib)
        best = {"ours": float("inf"), "read": float("inf"), "in-memory": float("inf")}
        size = 0
        for _ in range(args.rounds):
            for name, fn in (("read", read_all), ("ours", ours), ("in-memory", in_memory)):
                t = time.perf_counter()
                n = fn(folder)
                best[name] = min(best[name], time.perf_counter() - t)
                size = n if name == "ours" else size
        mib = size / 2**20
        print(f"{args.files:,} files of {args.kib} KiB: a zip of {mib:,.0f} MiB; best of {args.rounds}")
        for name, t in best.items():
            print(f"  {name:10s} {t:6.2f} s  ({mib / t:,.0f} MiB/s)  ratio to read {t / best['read']:.2f}")
        print(f"  peak Python memory: ours {peak(ours, folder):.1f} MiB, in-memory {peak(in_memory, folder):.1f} MiB")


if __name__ == "__main__":
    main()
