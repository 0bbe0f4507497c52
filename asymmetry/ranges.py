"""Range table and range classifier of check 2 (docs/asymmetry.md).

From the check-1 consensus images, learn for every movement x class a box: an interval of signed
RgAs and one of signed AnAs (robust percentiles, default 5th-95th). An image's range class is the
class whose box holds its point; several boxes: the nearest centre in standardised units; none: the
nearest box, flagged out of range. Cells with too few images are kept and say so, but never vote.
A table is immutable and versioned; `to_json`/`from_json` store it.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from labeling.vocabulary import CLASSES

# Distances are measured in box widths; a box narrower than this on an axis is measured in this
# instead, so a tight cell cannot make landmark jitter look like a big distance. The values are
# the landmark jitter of the signed sums (pooled SD of RgAs_signed 0.015, AnAs_signed 1.07 degrees
# when the same photo is resized or rotated, rounded up; bench/index_jitter.py, docs/asymmetry.md).
# Index versions before asym-2.0 had 0.04 and 1.0.
MIN_WIDTH = {"rgas": 0.015, "anas": 1.1}
REQUIRED_KEYS = ("movement", "label", "rgas_signed", "anas_signed")


def _class_key(cls: str) -> tuple[int, str]:
    return (CLASSES.index(cls) if cls in CLASSES else len(CLASSES), cls)


@dataclass(frozen=True)
class RangeCell:
    """One movement x class box: percentiles `rgas_lo..rgas_hi`, `anas_lo..anas_hi` of `n`
    consensus images, their medians, and whether `n` reached the minimum count (`enough`).
    `message` says why a cell may not be used."""

    movement: str
    cls: str
    n: int
    rgas_lo: float
    rgas_hi: float
    anas_lo: float
    anas_hi: float
    rgas_median: float
    anas_median: float
    enough: bool
    message: str = ""

    @property
    def centre(self) -> np.ndarray:
        """Return the box centre (rgas, anas)."""
        return np.array([(self.rgas_lo + self.rgas_hi) / 2, (self.anas_lo + self.anas_hi) / 2])

    @property
    def widths(self) -> np.ndarray:
        """Return the box widths (rgas, anas) used as units of distance, floored by MIN_WIDTH."""
        return np.array([max(self.rgas_hi - self.rgas_lo, MIN_WIDTH["rgas"]),
                         max(self.anas_hi - self.anas_lo, MIN_WIDTH["anas"])])

    def contains(self, point: np.ndarray) -> bool:
        """Return True when `point` (rgas, anas) lies in the box, edges included."""
        return bool(self.rgas_lo <= point[0] <= self.rgas_hi and self.anas_lo <= point[1] <= self.anas_hi)

    def centre_distance(self, point: np.ndarray) -> float:
        """Return the distance from `point` to the box centre, in box widths."""
        return float(np.hypot(*((point - self.centre) / self.widths)))

    def gap(self, point: np.ndarray) -> float:
        """Return the distance from `point` to the box (0 inside), in box widths."""
        lo = np.array([self.rgas_lo, self.anas_lo])
        hi = np.array([self.rgas_hi, self.anas_hi])
        outside = np.maximum(lo - point, 0.0) + np.maximum(point - hi, 0.0)
        return float(np.hypot(*(outside / self.widths)))


@dataclass(frozen=True)
class RangeResult:
    """The range class of one image.

    `range_class`: the class, or None when the movement has no usable cell (or the indices are
    missing); `distance`: from the point to that class's box in box widths (0 inside, NaN when no
    class); `out_of_range`: the point lies in no box and the nearest one was taken; `candidates`:
    the classes whose boxes hold the point, nearest centre first; `message`: what a reader should
    know (overlaps, out of range, missing cells).
    """

    range_class: str | None
    distance: float
    out_of_range: bool
    candidates: tuple[str, ...] = ()
    message: str = ""


def _rows_as_dicts(rows: Any) -> list[dict]:
    """Return `rows` (iterable of dicts, or a pandas DataFrame) as a list of dicts."""
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):
        return rows.to_dict("records")
    return [dict(r) for r in rows]


def _is_missing(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _clean_frame(df) -> tuple[dict[tuple[str, str], np.ndarray], int, list[str]]:
    """`_clean_rows` for a pandas DataFrame, by column instead of by row (the same groups, counts
    and messages; the out-of-fold audit learns ten tables from 100,000 rows)."""
    import pandas as pd

    n = len(df)

    def missing(col: str) -> np.ndarray:
        if col not in df:
            return np.ones(n, bool)
        values = df[col].astype(object)
        return (values.isna() | (values == "")).to_numpy(bool)

    def number(col: str) -> np.ndarray:
        return pd.to_numeric(df[col], errors="coerce").to_numpy(float) if col in df else np.full(n, np.nan)

    no_mv, no_label = missing("movement"), missing("label")
    skipped: Counter[str] = Counter()
    for mask, why in ((no_mv & no_label, "no movement or label"), (no_mv & ~no_label, "no movement"),
                      (~no_mv & no_label, "no label")):
        if mask.any():
            skipped[why] += int(mask.sum())
    points = np.column_stack([number("rgas_signed"), number("anas_signed")])
    labelled = ~(no_mv | no_label)
    bad = labelled & ~np.isfinite(points).all(axis=1)
    if bad.any():
        skipped["missing or NaN indices (no face, degenerate landmarks)"] += int(bad.sum())
    good = np.flatnonzero(labelled & ~bad)
    keys = pd.DataFrame({"m": df["movement"].to_numpy(object)[good], "c": df["label"].to_numpy(object)[good]})
    groups: dict[tuple[str, str], np.ndarray] = {}
    for (m, c), idx in keys.groupby(["m", "c"], sort=False).indices.items():
        key = (str(m), str(c))  # as the row-wise path names them (a 1 and a "1" are one group there too)
        groups[key] = np.vstack([groups[key], points[good[idx]]]) if key in groups else points[good[idx]]
    messages = [f"{k} row(s) skipped: {why}" for why, k in sorted(skipped.items())]
    return groups, sum(skipped.values()), messages


def _clean_rows(rows: Any) -> tuple[dict[tuple[str, str], list[tuple[float, float]]], int, list[str]]:
    """Group usable rows by (movement, label); return (groups, rows skipped, messages)."""
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):
        return _clean_frame(rows)
    groups: dict[tuple[str, str], list[tuple[float, float]]] = {}
    skipped: Counter[str] = Counter()
    for row in _rows_as_dicts(rows):
        missing = [k for k in REQUIRED_KEYS[:2] if _is_missing(row.get(k))]
        if missing:
            skipped[f"no {' or '.join(missing)}"] += 1
            continue
        try:
            point = (float(row.get("rgas_signed")), float(row.get("anas_signed")))
        except (TypeError, ValueError):
            point = (math.nan, math.nan)
        if not (math.isfinite(point[0]) and math.isfinite(point[1])):
            skipped["missing or NaN indices (no face, degenerate landmarks)"] += 1
            continue
        groups.setdefault((str(row["movement"]), str(row["label"])), []).append(point)
    messages = [f"{n} row(s) skipped: {why}" for why, n in sorted(skipped.items())]
    return groups, sum(skipped.values()), messages


def _learn_cell(movement: str, cls: str, points: list[tuple[float, float]], lo: float, hi: float,
                min_count: int) -> RangeCell:
    """Return the box of one movement x class from its consensus points."""
    arr = np.asarray(points, dtype=np.float64)
    (r_lo, r_hi), (a_lo, a_hi) = np.percentile(arr, [lo, hi], axis=0).T
    r_med, a_med = np.median(arr, axis=0)
    enough = len(arr) >= min_count
    message = "" if enough else (f"{movement} {cls}: only {len(arr)} consensus image(s), at least "
                                 f"{min_count} needed; not used to classify")
    return RangeCell(movement, cls, len(arr), float(r_lo), float(r_hi), float(a_lo), float(a_hi),
                     float(r_med), float(a_med), enough, message)


def learn_ranges(rows: Any, lo: float = 5.0, hi: float = 95.0, min_count: int = 5,
                 version: str | None = None) -> "RangeTable":
    """Learn a `RangeTable` from check-1 consensus rows.

    `rows`: dicts (or a DataFrame) with `movement`, `label`, `rgas_signed`, `anas_signed`; rows
    with missing or NaN values are skipped and counted in `messages`. `lo`, `hi`: the percentiles
    that bound each box. Cells with fewer than `min_count` images are kept with enough=False.
    `version`: a name for the table; by default a hash of its content, so learning the same rows
    twice gives the same version.
    """
    if not 0.0 <= lo < hi <= 100.0:
        raise ValueError(f"need 0 <= lo < hi <= 100, got lo={lo}, hi={hi}")
    groups, n_skipped, messages = _clean_rows(rows)
    return learn_ranges_grouped(groups, lo, hi, min_count, version, n_skipped=n_skipped, messages=messages)


def learn_ranges_grouped(groups: dict[tuple[str, str], Any], lo: float = 5.0, hi: float = 95.0, min_count: int = 5,
                         version: str | None = None, *, n_skipped: int = 0, messages=()) -> "RangeTable":
    """Learn a `RangeTable` from points already grouped: {(movement, class): (n, 2) signed RgAs,
    AnAs}, all finite (what `learn_ranges` does after cleaning its rows). The out-of-fold audit
    groups 100,000 rows once and learns ten tables from subsets of the groups."""
    if not 0.0 <= lo < hi <= 100.0:
        raise ValueError(f"need 0 <= lo < hi <= 100, got lo={lo}, hi={hi}")
    cells = tuple(sorted((_learn_cell(m, c, pts, lo, hi, min_count) for (m, c), pts in groups.items() if len(pts)),
                         key=lambda c: (c.movement, _class_key(c.cls))))
    n_rows = sum(len(p) for p in groups.values()) + n_skipped
    table = RangeTable(cells=cells, lo=float(lo), hi=float(hi), min_count=int(min_count), version="",
                       n_rows=n_rows, n_skipped=n_skipped, messages=tuple(messages))
    return table.with_version(version or table.content_hash())


@dataclass(frozen=True)
class RangeTable:
    """The learned boxes of every movement x class, with the parameters that made them.

    `cells`: one `RangeCell` per movement x class seen; `lo`, `hi`: percentiles; `min_count`;
    `version`; `n_rows` rows offered, `n_skipped` of them unusable; `messages` about skipped rows.
    """

    cells: tuple[RangeCell, ...]
    lo: float
    hi: float
    min_count: int
    version: str
    n_rows: int = 0
    n_skipped: int = 0
    messages: tuple[str, ...] = field(default_factory=tuple)

    @property
    def movements(self) -> list[str]:
        """Return the movements that have at least one cell, sorted."""
        return sorted({c.movement for c in self.cells})

    def cells_for(self, movement: str) -> list[RangeCell]:
        """Return the cells of `movement` (usable or not), in class order."""
        return [c for c in self.cells if c.movement == movement]

    def cell(self, movement: str, cls: str) -> RangeCell | None:
        """Return the cell of `movement` x `cls`, or None."""
        return next((c for c in self.cells if c.movement == movement and c.cls == cls), None)

    def classify(self, movement: str, rgas_signed: float, anas_signed: float) -> RangeResult:
        """Return the `RangeResult` of one image's point (signed RgAs, signed AnAs) for `movement`."""
        cells = self.cells_for(movement)
        usable = [c for c in cells if c.enough]
        if not usable:
            why = (f"no range learned for {movement}" if not cells else
                   f"no class of {movement} has {self.min_count} consensus images yet "
                   f"({', '.join(f'{c.cls}: {c.n}' for c in cells)})")
            return RangeResult(None, math.nan, False, (), why)
        try:
            point = np.array([float(rgas_signed), float(anas_signed)])
        except (TypeError, ValueError):
            point = np.array([math.nan, math.nan])
        if not np.isfinite(point).all():
            return RangeResult(None, math.nan, False, (), "indices missing (no face or degenerate landmarks)")
        skipped = [c for c in cells if not c.enough]
        note = (f"; too few images to use: {', '.join(f'{c.cls} ({c.n})' for c in skipped)}" if skipped else "")
        inside = sorted((c for c in usable if c.contains(point)), key=lambda c: c.centre_distance(point))
        if inside:
            names = tuple(c.cls for c in inside)
            message = "" if len(inside) == 1 else f"in the boxes of {', '.join(names)}; nearest centre: {names[0]}"
            return RangeResult(names[0], 0.0, False, names, (message + note).lstrip("; "))
        nearest = min(usable, key=lambda c: (c.gap(point), c.centre_distance(point)))
        distance = nearest.gap(point)
        message = f"outside every box of {movement}; nearest: {nearest.cls}, {distance:.2f} box widths away"
        return RangeResult(nearest.cls, distance, True, (), message + note)

    def boxes_frame(self, movement: str):
        """Return a pandas DataFrame of `movement`'s boxes for plots: cls, rgas_lo, rgas_hi,
        anas_lo, anas_hi, n, enough (one row per class, in class order)."""
        import pandas as pd

        columns = ["cls", "rgas_lo", "rgas_hi", "anas_lo", "anas_hi", "n", "enough"]
        return pd.DataFrame([{k: getattr(c, k) for k in columns} for c in self.cells_for(movement)],
                            columns=columns)

    def content_hash(self) -> str:
        """Return "ranges-" + 12 hex digits of a hash of the cells and parameters (not the version)."""
        payload = self._payload()
        payload.pop("version")
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        return f"ranges-{digest[:12]}"

    def with_version(self, version: str) -> "RangeTable":
        """Return a copy of this table named `version`."""
        return RangeTable(self.cells, self.lo, self.hi, self.min_count, version, self.n_rows,
                          self.n_skipped, self.messages)

    def _payload(self) -> dict:
        return {"version": self.version, "lo": self.lo, "hi": self.hi, "min_count": self.min_count,
                "n_rows": self.n_rows, "n_skipped": self.n_skipped, "messages": list(self.messages),
                "cells": [asdict(c) for c in self.cells]}

    def to_json(self) -> str:
        """Return the table as a JSON string (strict JSON: no NaN), for storing a version."""
        return json.dumps(self._payload(), sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> "RangeTable":
        """Return the table stored by `to_json`."""
        data = json.loads(text)
        cells = tuple(RangeCell(**c) for c in data["cells"])
        return cls(cells=cells, lo=float(data["lo"]), hi=float(data["hi"]), min_count=int(data["min_count"]),
                   version=data["version"], n_rows=int(data.get("n_rows", 0)),
                   n_skipped=int(data.get("n_skipped", 0)), messages=tuple(data.get("messages", ())))


def classify_points(points: pd.DataFrame, table: RangeTable | None,
                    axes: tuple[str, ...] = ("rgas", "anas")) -> pd.DataFrame:
    """Return range_class and out_of_range for every row of `points` (movement, rgas, anas).

    The same rule as RangeTable.classify (tests check they agree), on all images at once: the
    class whose box holds the point (several: nearest centre in box widths; none: the nearest box,
    out_of_range). `axes=("rgas",)` or `("anas",)` classifies on one index alone, with the boxes'
    intervals on that axis (paper Table 7 reports the two indices separately). None where the
    movement has no usable box or the point is missing.
    """
    n = len(points)
    out_class = np.full(n, None, dtype=object)
    out_range = np.zeros(n, bool)
    if table is None or n == 0:
        return pd.DataFrame({"range_class": out_class, "out_of_range": out_range}, index=points.index)
    movement = points["movement"].to_numpy(dtype=object)
    xy = np.column_stack([pd.to_numeric(points[a], errors="coerce").to_numpy(float) for a in axes])
    for mv in table.movements:
        cells = [c for c in table.cells_for(mv) if c.enough]
        rows = np.flatnonzero((movement == mv) & np.isfinite(xy).all(1))
        if not cells or not len(rows):
            continue
        lo = np.array([[getattr(c, f"{a}_lo") for a in axes] for c in cells])
        hi = np.array([[getattr(c, f"{a}_hi") for a in axes] for c in cells])
        width = np.maximum(hi - lo, np.array([MIN_WIDTH[a] for a in axes]))
        p = xy[rows][:, None, :]
        inside = ((lo <= p) & (p <= hi)).all(2)
        norm = (lambda d: np.hypot(d[..., 0], d[..., 1])) if len(axes) == 2 else (lambda d: np.abs(d[..., 0]))
        centre_distance = norm((p - (lo + hi) / 2) / width)
        gap = norm((np.maximum(lo - p, 0.0) + np.maximum(p - hi, 0.0)) / width)
        any_inside = inside.any(1)
        best_inside = np.argmin(np.where(inside, centre_distance, np.inf), axis=1)
        nearest_gap = gap == gap.min(1, keepdims=True)
        best_outside = np.argmin(np.where(nearest_gap, centre_distance, np.inf), axis=1)
        names = np.array([c.cls for c in cells], dtype=object)
        out_class[rows] = names[np.where(any_inside, best_inside, best_outside)]
        out_range[rows] = ~any_inside
    return pd.DataFrame({"range_class": out_class, "out_of_range": out_range}, index=points.index)
