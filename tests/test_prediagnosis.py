"""Patient-level prediagnosis: the paper's §4 example and the rule's edge cases."""
from __future__ import annotations

import json

import pandas as pd

from labeling.agreement.prediagnosis import MOVEMENT_MUSCLES, prediagnose, prediagnose_subjects

# Paper §4: L3 on MV1, MV2 and MV4, N or L1 elsewhere -> severe, left orbicularis oculi.
PAPER = {"MV0": "L1", "MV1": "L3", "MV2": "L3", "MV3": "N", "MV4": "L3", "MV5": "L1", "MV6": "N"}


def test_paper_example_names_the_left_orbicularis_oculi():
    p = prediagnose(PAPER, subject="S1")
    assert p.side == "L" and p.overall_degree == 3 and not p.conflicts and not p.missing
    (primary,) = p.primary
    assert (primary.muscle, primary.severity, primary.severity_name) == ("orbicularis oculi", 3, "severe")
    assert primary.evidence == (("MV1", "L3"), ("MV2", "L3"))
    assert p.headline() == "Severe paralysis likely in the left orbicularis oculi muscle."
    # MV4 (grinning) tests the orbicularis oris (Table 2): kept as a secondary finding, not hidden.
    secondary = {m.muscle: m for m in p.muscles if m.role == "secondary"}
    assert secondary["orbicularis oris"].severity == 3 and secondary["frontalis"].severity == 3
    assert secondary["nasalis"].severity_name == "mild"
    assert "buccinator" not in secondary  # MV3 is N
    assert p.resting.label == "L1"
    md = p.to_markdown()
    assert "left orbicularis oculi" in md and "not a diagnosis" in md and "| MV4 grinning | L3 |" in md
    json.dumps(p.to_dict())


def test_table2_mapping():
    assert MOVEMENT_MUSCLES["MV2"] == ("orbicularis oculi", "frontalis")
    assert MOVEMENT_MUSCLES["MV3"] == ("orbicularis oculi", "buccinator", "zygomatic")
    assert MOVEMENT_MUSCLES["MV4"] == MOVEMENT_MUSCLES["MV6"] == ("orbicularis oris",)
    assert "MV0" not in MOVEMENT_MUSCLES  # at rest: all muscles, reported as resting tone


def test_right_mouth_from_model_predictions_with_several_images():
    preds = pd.DataFrame({"movement": ["MV4", "MV4", "MV4", "MV6", "MV1", "MV0"],
                          "label": ["R2", "R2", "R1", "R2", "N", "R1"]})
    p = prediagnose(preds)
    assert p.side == "R"
    (primary,) = p.primary
    assert primary.muscle == "orbicularis oris" and primary.severity_name == "moderate"
    assert primary.evidence == (("MV4", "R2"), ("MV6", "R2"))
    assert any("MV4 has several labels" in n for n in p.notes)
    assert set(p.missing) == {"MV2", "MV3", "MV5"}


def test_tie_in_support_makes_every_tied_muscle_primary():
    p = prediagnose({"MV3": "L2"})
    assert {m.muscle for m in p.primary} == {"orbicularis oculi", "buccinator", "zygomatic"}
    assert "muscles" in p.headline()


def test_all_normal_and_empty():
    p = prediagnose({mv: "N" for mv in PAPER})
    assert p.side is None and not p.muscles and "No dysfunction" in p.headline()
    e = prediagnose({})
    assert e.side is None and len(e.missing) == 7 and "no prediagnosis" in e.headline()
    assert prediagnose({"MV1": None, "MV2": "??"}).movements == ()


def test_conflicting_sides_are_flagged():
    p = prediagnose({"MV1": "L3", "MV2": "L2", "MV4": "R1"})
    assert p.side == "L" and [c.movement for c in p.conflicts] == ["MV4"]
    assert "other side" in p.headline() and any("bilateral" in n for n in p.notes)
    assert "orbicularis oris" not in {m.muscle for m in p.muscles}  # R1 is not evidence on the left


def test_resting_only():
    p = prediagnose({"MV0": "R2", "MV1": "N"})
    assert p.side == "R" and not p.muscles and "at rest only" in p.headline()


def test_per_subject():
    df = pd.DataFrame({"subject": ["a"] * 2 + ["b"], "movement": ["MV1", "MV2", "MV5"], "label": ["L3", "L3", "R1"]})
    out = prediagnose_subjects(df)
    assert [p.subject for p in out] == ["a", "b"] and out[1].primary[0].muscle == "nasalis"
