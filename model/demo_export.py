"""A tiny SYNTHETIC export in the export layout (docs/export.md), for tests, the benchmark and smoke runs.

The pictures are drawn cartoons, not faces or patients: an ellipse with eyes, brows and a mouth,
where one side droops, and its cheek darkens, by the class's degree (L = the image's right half,
R = its left half, an arbitrary convention of this generator). The cues are far stronger than
real palsy so that a few epochs on a CPU learn them. Every image says SYNTHETIC in a corner and is flagged
synthetic=1 in the manifest. Nothing here is clinical data; results on it prove only that the
pipeline learns, not that it grades facial palsy. No TensorFlow here.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFilter

from model import CLASSES, MOVEMENTS
from model.manifest import REQUIRED_COLUMNS

DROOP = {0: 0.0, 1: 0.15, 2: 0.30, 3: 0.45}  # affected brow/mouth drop, in face half-widths
SHADE = {0: 0, 1: 50, 2: 100, 3: 150}  # darkening of the affected cheek: a deliberately easy cue


def draw_face(label: str, movement: str, rng: np.random.Generator, size: int = 299) -> Image.Image:
    """Returns one synthetic RGB cartoon of class `label` doing `movement`, with random jitter."""
    degree = 0 if label == "N" else int(label[1])
    droop_side = {"N": 0, "L": 1, "R": -1}[label[0]]  # +1: image right droops
    background = tuple(int(v) for v in rng.integers(150, 230, 3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    s = size / 299 * rng.uniform(0.9, 1.05)
    cx, cy = size / 2 + rng.uniform(-8, 8) * s, size / 2 + rng.uniform(-8, 8) * s
    half = 90 * s
    skin = tuple(int(v) for v in rng.integers(170, 240, 3))
    draw.ellipse([cx - half, cy - 1.3 * half, cx + half, cy + 1.3 * half], fill=skin, outline=(60, 40, 30))
    dark = (40, 30, 30)
    for side in (-1, 1):  # -1: image left, +1: image right
        drop = DROOP[degree] * half if side == droop_side else 0.0
        if drop:
            cheek = tuple(max(0, v - SHADE[degree]) for v in skin)
            kx, ky = cx + side * 0.5 * half, cy + 0.3 * half
            draw.ellipse([kx - 0.3 * half, ky - 0.3 * half, kx + 0.3 * half, ky + 0.3 * half], fill=cheek)
        ex, ey = cx + side * 0.42 * half, cy - 0.25 * half
        closed = movement == "MV1"
        opening = 0.14 * half * (1.0 - 0.3 * (drop > 0) * degree / 3)
        if closed:  # a palsied eye does not close fully
            opening = 0.02 * half + (0.12 * half * degree / 3 if drop else 0.0)
        draw.ellipse([ex - 0.2 * half, ey - opening, ex + 0.2 * half, ey + opening], fill=(250, 250, 250), outline=dark)
        draw.ellipse([ex - 0.05 * half, ey - min(opening, 0.05 * half), ex + 0.05 * half, ey + min(opening, 0.05 * half)], fill=dark)
        lift = 0.12 * half if movement == "MV2" and not drop else 0.0
        by = ey - 0.3 * half - lift + drop
        draw.line([ex - 0.25 * half, by, ex + 0.25 * half, by + side * 0.03 * half], fill=dark, width=max(2, int(5 * s)))
    width = {"MV4": 0.55, "MV6": 0.18}.get(movement, 0.4) * half
    my = cy + 0.65 * half
    left_drop = DROOP[degree] * half if droop_side == -1 else 0.0
    right_drop = DROOP[degree] * half if droop_side == 1 else 0.0
    draw.line([cx - width, my + left_drop, cx, my + 0.04 * half, cx + width, my + right_drop], fill=(120, 30, 40), width=max(2, int(6 * s)))
    nose = [cx, cy - 0.05 * half, cx - 0.1 * half, cy + 0.3 * half, cx + 0.1 * half, cy + 0.3 * half]
    draw.polygon(nose, outline=dark)
    draw.text((4, 4), "SYNTHETIC", fill=(0, 0, 0))
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, 6, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def assign_splits(subjects_per_class: int, rng: np.random.Generator) -> list[str]:
    """Returns a 7:2:1 train/val/test assignment of one class's subjects (at least one val and test)."""
    n_test = max(1, round(0.1 * subjects_per_class))
    n_val = max(1, round(0.2 * subjects_per_class))
    splits = ["test"] * n_test + ["val"] * n_val + ["train"] * (subjects_per_class - n_test - n_val)
    rng.shuffle(splits)
    return splits


def write_demo_export(
    out_dir: str | Path,
    subjects_per_class: int = 5,
    movements: tuple[str, ...] = MOVEMENTS,
    folds: int = 10,
    size: int = 299,
    blurry_fraction: float = 0.1,
    seed: int = 0,
) -> Path:
    """Writes a synthetic export to out_dir and returns out_dir.

    Each synthetic subject has one class and one image per movement. Subjects are split 7:2:1 within
    each class (grouped: a subject is in one split only) and dealt round-robin into `folds` folds.
    A few training images are blurred and flagged `blurry`, as the paper keeps those in training.
    """
    if subjects_per_class < 3:
        raise ValueError("need at least 3 subjects per class (train, val and test)")
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    rows = []
    fold_counter = 0
    for label in CLASSES:
        for subject_index, split in enumerate(assign_splits(subjects_per_class, rng)):
            subject = hashlib.sha256(f"synthetic-{label}-{subject_index}-{seed}".encode()).hexdigest()[:16]
            fold = fold_counter % folds
            fold_counter += 1
            for movement in movements:
                image = draw_face(label, movement, rng, size)
                flags = ""
                if split == "train" and rng.random() < blurry_fraction:
                    image = image.filter(ImageFilter.GaussianBlur(2.5 * size / 299))
                    flags = "blurry"
                buffer = io.BytesIO()
                image.save(buffer, format="PNG")
                data = buffer.getvalue()
                digest = hashlib.sha256(data).hexdigest()
                relative = f"{split}/{label}/{digest}.png"
                (out_dir / split / label).mkdir(parents=True, exist_ok=True)
                (out_dir / relative).write_bytes(data)
                rows.append(
                    dict(
                        image_sha256=digest, subject_hash=subject, movement=movement, label=label,
                        split=split, fold=fold, source="synthetic", flags=flags, synthetic=1,
                        path=relative,
                    )
                )
    pd.DataFrame(rows, columns=list(REQUIRED_COLUMNS)).to_csv(out_dir / "manifest.csv", index=False)
    (out_dir / "README.txt").write_text(
        "SYNTHETIC demo export written by model.demo_export: drawn cartoons, not faces or patients.\n"
        f"subjects_per_class={subjects_per_class} movements={','.join(movements)} folds={folds} "
        f"size={size} seed={seed}\n"
    )
    return out_dir
