"""Measure photos: landmarks, asymmetry indices and quality flags, one result per image.

`measure_photo` is the whole per-image pipeline (used by the CLI, the project's measuring job and
the benchmark). Pure imaging and geometry: storing the results in a project is the workflow's job
(`labeling.workflow.measuring`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from asymmetry.imaging import decode_image
from asymmetry.indices import INDEX_VERSION, Indices, compute_indices
from asymmetry.landmarks import ALGORITHM, PREDICT_SIDE, Landmarks, landmarks_from_decoded
from asymmetry.quality import quality_flags

# The landmark step's version (model, mirror averaging, sizes): measurements of another version are
# measured again. asym-1.x stored "dlib-68-ibug300w@1280" (one pass, no mirror).
LANDMARK_VERSION = ALGORITHM


@dataclass
class Measurement:
    """Everything measured on one photo; `indices` is None unless the face was found."""

    status: str
    message: str
    landmarks: Landmarks
    indices: Indices | None = None
    quality: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Return a JSON-ready dict (what `python -m asymmetry measure --json` prints)."""
        lm = self.landmarks
        return {"status": self.status, "message": self.message,
                "indices": None if self.indices is None else finite_values(self.indices.to_dict()),
                "face_box": None if lm.box is None else [round(v, 1) for v in lm.box],
                "faces": lm.n_faces, "other_faces": [[round(v, 1) for v in b] for b in lm.others],
                "image_size": list(lm.size),
                "quality": finite_values({k: v for k, v in self.quality.items() if k != "message"}),
                "landmark_version": LANDMARK_VERSION, "index_version": INDEX_VERSION}


def finite_values(d: dict) -> dict:
    """Return `d` with every non-finite float (NaN, inf) replaced by None (JSON has no NaN)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def measure_photo(src: str | Path | bytes, mirrored: bool, pick_best: bool = False) -> Measurement:
    """Decode, find landmarks, compute indices and quality flags for one photo; never raises."""
    decoded = decode_image(src, max_side=PREDICT_SIDE, draft_only=True)
    lm = landmarks_from_decoded(decoded, pick_best=pick_best)
    if not lm.ok:
        return Measurement(lm.status, lm.message, lm)
    idx = compute_indices(lm.points, mirrored)
    quality = quality_flags(decoded, lm)
    status = "ok" if idx.ok else "degenerate"
    return Measurement(status, lm.message or idx.message, lm, idx, quality)


def measure_job(args: tuple[int, str, bool, bool]) -> tuple[int, Measurement]:
    """(image id, path, mirrored, pick best) -> (image id, Measurement): one job of a process pool."""
    image_id, path, mirrored, pick_best = args
    return image_id, measure_photo(path, mirrored, pick_best)
