"""Range learning and the range classifier of check 2."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from asymmetry.ranges import RangeTable, learn_ranges


def box_rows(movement: str, label: str, rgas: tuple[float, float], anas: tuple[float, float], n: int = 6):
    """Return `n` rows whose min/max span exactly the box rgas x anas (for lo=0, hi=100)."""
    r = np.linspace(*rgas, n)
    a = np.linspace(*anas, n)[::-1]
    return [{"movement": movement, "label": label, "rgas_signed": float(x), "anas_signed": float(y)}
            for x, y in zip(r, a)]


def full_range(rows, **kw) -> RangeTable:
    """Learn with lo=0, hi=100, so every box is exactly the min..max of its rows."""
    return learn_ranges(rows, lo=0.0, hi=100.0, **kw)


# --- learning -----------------------------------------------------------------------------------

def test_boxes_are_the_requested_percentiles_per_movement_and_class():
    rng = np.random.default_rng(3)
    rows = []
    for movement, label, shift in [("MV0", "N", 0.0), ("MV0", "L2", 0.3), ("MV4", "N", -0.1)]:
        rg = rng.normal(shift, 0.05, 40)
        an = rng.normal(10 * shift, 1.0, 40)
        rows += [{"movement": movement, "label": label, "rgas_signed": x, "anas_signed": y} for x, y in zip(rg, an)]
    table = learn_ranges(rows)
    assert [(c.movement, c.cls) for c in table.cells] == [("MV0", "N"), ("MV0", "L2"), ("MV4", "N")]
    cell = table.cell("MV0", "L2")
    rg = np.array([r["rgas_signed"] for r in rows if r["label"] == "L2"])
    an = np.array([r["anas_signed"] for r in rows if r["label"] == "L2"])
    assert (cell.rgas_lo, cell.rgas_hi) == pytest.approx(tuple(np.percentile(rg, [5, 95])))
    assert (cell.anas_lo, cell.anas_hi) == pytest.approx(tuple(np.percentile(an, [5, 95])))
    assert cell.rgas_median == pytest.approx(np.median(rg))
    assert cell.n == 40 and cell.enough and not cell.message


def test_percentiles_are_robust_to_a_few_outliers():
    rows = [{"movement": "MV0", "label": "N", "rgas_signed": x / 100, "anas_signed": 0.0} for x in range(100)]
    rows += [{"movement": "MV0", "label": "N", "rgas_signed": 50.0, "anas_signed": 0.0}]  # one wild read
    cell = learn_ranges(rows).cell("MV0", "N")
    assert cell.rgas_hi < 1.0


def test_small_cells_are_kept_flagged_and_never_used():
    rows = box_rows("MV2", "N", (-0.1, 0.1), (-2, 2), n=10) + box_rows("MV2", "L3", (0.5, 0.9), (10, 20), n=3)
    table = full_range(rows, min_count=5)
    small = table.cell("MV2", "L3")
    assert small.n == 3 and not small.enough and "only 3" in small.message
    # Right in the middle of the L3 box, yet L3 may not be chosen: N is the only usable box.
    result = table.classify("MV2", 0.7, 15.0)
    assert result.range_class == "N" and result.out_of_range
    assert "L3 (3)" in result.message


def test_unusable_rows_are_skipped_and_counted():
    rows = box_rows("MV1", "R1", (-0.3, -0.1), (-5, -1))
    rows += [{"movement": "MV1", "label": "R1", "rgas_signed": math.nan, "anas_signed": 1.0},
             {"movement": "MV1", "label": None, "rgas_signed": 0.1, "anas_signed": 1.0},
             {"movement": "MV1", "label": "R1", "rgas_signed": "oops", "anas_signed": 1.0},
             {"movement": "MV1", "label": "R1"}]
    table = full_range(rows)
    assert table.cell("MV1", "R1").n == 6
    assert table.n_rows == 10 and table.n_skipped == 4
    assert any("3 row(s) skipped" in m for m in table.messages)
    assert any("no label" in m for m in table.messages)


def test_a_dataframe_learns_the_same_table_as_dicts():
    rows = box_rows("MV0", "N", (-0.1, 0.1), (-2, 2)) + box_rows("MV0", "R2", (-0.5, -0.3), (-9, -5))
    assert learn_ranges(pd.DataFrame(rows)) == learn_ranges(rows)


def test_version_is_a_content_hash_unless_named():
    rows = box_rows("MV0", "N", (-0.1, 0.1), (-2, 2))
    a, b = learn_ranges(rows), learn_ranges(list(rows))
    assert a.version == b.version and a.version.startswith("ranges-")
    assert learn_ranges(rows[:-1]).version != a.version
    assert learn_ranges(rows, hi=90.0).version != a.version
    assert learn_ranges(rows, version="2024-06 consensus").version == "2024-06 consensus"


def test_bad_percentiles_are_a_bug():
    with pytest.raises(ValueError):
        learn_ranges([], lo=95.0, hi=5.0)


# --- classifying --------------------------------------------------------------------------------

@pytest.fixture
def table() -> RangeTable:
    rows = (box_rows("MV4", "N", (-0.1, 0.1), (-2, 2)) + box_rows("MV4", "L1", (0.2, 0.4), (2, 6))
            + box_rows("MV4", "R1", (-0.4, -0.2), (-6, -2)))
    return full_range(rows)


def test_a_point_inside_one_box_gets_that_class(table):
    result = table.classify("MV4", 0.3, 4.0)
    assert result.range_class == "L1" and not result.out_of_range
    assert result.distance == 0.0 and result.candidates == ("L1",) and result.message == ""
    assert table.classify("MV4", -0.1, -2.0).range_class == "N"  # edges belong to the box


def test_overlapping_boxes_pick_the_nearest_centre_in_standardised_units():
    # A is wide in AnAs, B narrow. The point is nearer B's centre in raw units (0.90 vs 0.91) but
    # nearer A's in box widths: A (0.15/0.4, 0.9/20) -> 0.378; B (0.05/0.2, 0.9/2) -> 0.515.
    rows = box_rows("MV5", "L1", (0.0, 0.4), (-10, 10)) + box_rows("MV5", "L2", (0.3, 0.5), (-1, 1))
    table = full_range(rows)
    result = table.classify("MV5", 0.35, 0.9)
    assert result.range_class == "L1" and not result.out_of_range
    assert result.candidates == ("L1", "L2") and "L1, L2" in result.message


def test_a_point_outside_every_box_gets_the_nearest_box_flagged(table):
    # Gap to L1: rgas 0.6 - 0.4 = 0.2 = 1 box width, anas inside -> 1.0. N is 2.5 widths away.
    result = table.classify("MV4", 0.6, 4.0)
    assert result.range_class == "L1" and result.out_of_range
    assert result.distance == pytest.approx(1.0)
    assert result.candidates == () and "outside" in result.message


def test_no_usable_cells_give_no_class_and_say_why(table):
    empty = learn_ranges([])
    result = empty.classify("MV0", 0.0, 0.0)
    assert result.range_class is None and math.isnan(result.distance) and "no range" in result.message
    assert table.classify("MV6", 0.0, 0.0).range_class is None
    few = learn_ranges(box_rows("MV3", "N", (-0.1, 0.1), (-2, 2), n=2))
    result = few.classify("MV3", 0.0, 0.0)
    assert result.range_class is None and "N: 2" in result.message


def test_missing_indices_give_no_class(table):
    result = table.classify("MV4", math.nan, 1.0)
    assert result.range_class is None and "missing" in result.message


# --- storing and plotting -----------------------------------------------------------------------

def test_json_round_trip_keeps_table_and_answers(table):
    text = table.to_json()
    json.loads(text)  # strict JSON
    back = RangeTable.from_json(text)
    assert back == table and back.version == table.version
    for point in [(0.3, 4.0), (0.6, 4.0), (0.0, 0.0), (-0.35, -3.0)]:
        assert back.classify("MV4", *point) == table.classify("MV4", *point)


def test_boxes_frame_lists_the_boxes_of_one_movement(table):
    frame = table.boxes_frame("MV4")
    assert list(frame.columns) == ["cls", "rgas_lo", "rgas_hi", "anas_lo", "anas_hi", "n", "enough"]
    assert list(frame["cls"]) == ["N", "L1", "R1"]
    assert frame.loc[frame.cls == "L1", "rgas_hi"].item() == pytest.approx(0.4)
    assert table.boxes_frame("MV9").empty
