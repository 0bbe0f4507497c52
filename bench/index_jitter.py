"""How much the asymmetry indices move through dlib when the same photo is resized or rotated: the
figures behind SIDE_NOISE (asymmetry/indices.py), MIN_WIDTH (asymmetry/ranges.py), the tolerances
of tests/test_indices.py and docs/asymmetry.md §6.

skimage's astronaut (a real face shipped in a package) at seven sizes from 896 to 2048 px; each
size also halved and rotated by -10, -5, +5 and +10 degrees. Flipping is not a variant: the
landmark step is exactly flip-equivariant (asymmetry/landmarks.py), so a flip changes no index.

    .venv/bin/python bench/index_jitter.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asymmetry.indices import INDEX_VERSION, SIDE_NOISE, compute_indices  # noqa: E402
from asymmetry.landmarks import ALGORITHM, detect_landmarks  # noqa: E402

SIZES = (896, 1024, 1152, 1280, 1536, 1792, 2048)
VARIANTS = ("half", "rotate-10", "rotate-5", "rotate+5", "rotate+10")
FIELDS = ("eas", "ebas", "nas", "mas", "rgas", "m_an", "n_an", "eb_an", "anas",
          "eas_signed", "ebas_signed", "nas_signed", "mas_signed", "rgas_signed",
          "m_an_signed", "n_an_signed", "eb_an_signed", "anas_signed", "side_score")


def variant(img: Image.Image, name: str) -> Image.Image:
    if name == "half":
        return img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS)
    return img.rotate(float(name.removeprefix("rotate")), resample=Image.Resampling.BICUBIC, expand=True)


def measure(img: Image.Image) -> dict:
    lm = detect_landmarks(np.asarray(img), pick_best=True)
    if not lm.ok:
        raise RuntimeError(lm.message)
    return compute_indices(lm.points, mirrored=False).to_dict()


def main() -> None:
    from skimage import data

    base = Image.fromarray(data.astronaut())
    rows = []
    for size in SIZES:
        img = base.resize((size, size), Image.Resampling.BICUBIC)
        rows.append({"size": size, "variant": "original", **measure(img)})
        rows += [{"size": size, "variant": v, **measure(variant(img, v))} for v in VARIANTS]
    df = pd.DataFrame(rows)
    ref = df[df.variant == "original"].set_index("size")
    change = df[df.variant != "original"].copy()
    for f in FIELDS:
        change[f] = (change[f] - change["size"].map(ref[f])).abs()
    print(f"landmarks {ALGORITHM}, indices {INDEX_VERSION}; astronaut at {SIZES[0]}-{SIZES[-1]} px")
    print("\nLargest absolute change against the unchanged photo:")
    print("| index | 1024 px: halved | 1024 px: rotated +-10 deg | any variant, any size |")
    print("|---|---|---|---|")
    at = change[change["size"] == 1024]
    for f in FIELDS:
        half = at[at.variant == "half"][f].max()
        rot = at[at.variant.isin(["rotate-10", "rotate+10"])][f].max()
        print(f"| {f} | {half:.3f} | {rot:.3f} | {change[f].max():.3f} |")
    # Pooled SD: the spread of each size's six photos around their own mean, pooled over sizes.
    centred = df.groupby("size")[list(FIELDS)].transform(lambda c: c - c.mean())
    dof = len(df) - len(SIZES)
    sd = np.sqrt((centred ** 2).sum() / dof)
    print("\nPooled SD (the landmark jitter of each signed component; SIDE_NOISE holds them rounded):")
    for f in list(SIDE_NOISE) + ["rgas_signed", "anas_signed", "side_score"]:
        current = f" (SIDE_NOISE {SIDE_NOISE[f]})" if f in SIDE_NOISE else ""
        print(f"  {f:14} {sd[f]:.4f}{current}")


if __name__ == "__main__":
    main()
