"""Patient-level prediagnosis (paper §4): one subject's per-movement labels combined into a regional
report naming the likely affected muscles. A research aid for the clinician, not a diagnosis.

The rule (docs/agreement.md, "Prediagnosis") in short: the side is the one the lateralised
movements name; each muscle of paper Table 2 takes the highest degree among the movements that
test it; the primary finding is the muscle(s) at the highest degree with the most movements at
that degree, the others are listed as secondary. MV0 (at rest, all muscles) is reported as
resting tone, not attributed to one muscle.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import pandas as pd

from labeling.vocabulary import CLASSES, MOVEMENTS, movement_phrase, side_and_degree

# Paper Table 2: the muscles each movement tests. MV0 tests all of them (resting tone).
MOVEMENT_MUSCLES = {
    "MV1": ("orbicularis oculi",),
    "MV2": ("orbicularis oculi", "frontalis"),
    "MV3": ("orbicularis oculi", "buccinator", "zygomatic"),
    "MV4": ("orbicularis oris",),
    "MV5": ("nasalis",),
    "MV6": ("orbicularis oris",),
}
MUSCLES = tuple(dict.fromkeys(m for ms in MOVEMENT_MUSCLES.values() for m in ms))
SEVERITY = {0: "normal", 1: "mild", 2: "moderate", 3: "severe"}
SIDE_NAMES = {"L": "left", "R": "right"}


@dataclass(frozen=True)
class MovementFinding:
    """The label retained for one movement, its side and degree, and how many images it rests on."""
    movement: str
    label: str
    side: str | None
    degree: int
    n_images: int = 1


@dataclass(frozen=True)
class MuscleFinding:
    """One muscle on the report's side: severity (1-3) and its word, primary or secondary, the
    evidence (movement, label) at that severity, and every testing movement that was available."""
    muscle: str
    severity: int
    severity_name: str
    role: str
    evidence: tuple[tuple[str, str], ...]
    tested_by: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Prediagnosis:
    """The regional report for one subject.

    side is 'L', 'R' or None (no dysfunction seen); muscles lists the muscles with at least mild
    dysfunction on that side, primary first; conflicts lists movements that name the other side;
    resting is the MV0 finding (global tone); missing lists movements with no usable label.
    """
    subject: str | None
    side: str | None
    overall_degree: int
    movements: tuple[MovementFinding, ...]
    muscles: tuple[MuscleFinding, ...]
    resting: MovementFinding | None
    conflicts: tuple[MovementFinding, ...]
    missing: tuple[str, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def primary(self) -> tuple[MuscleFinding, ...]:
        """Return the primary muscle findings."""
        return tuple(m for m in self.muscles if m.role == "primary")

    def headline(self) -> str:
        """Return the one-sentence prediagnosis."""
        if not self.movements:
            return "No usable per-movement label: no prediagnosis."
        if self.side is None:
            return "No dysfunction seen on any available movement (all N)."
        side = SIDE_NAMES[self.side]
        if not self.primary:
            severity = SEVERITY[self.overall_degree].capitalize()
            return f"{severity} {side} dysfunction at rest only; no muscle singled out."
        names = " and ".join(f"{side} {m.muscle}" for m in self.primary)
        sev = self.primary[0].severity_name
        text = f"{sev.capitalize()} paralysis likely in the {names} muscle{'s' if len(self.primary) > 1 else ''}."
        return text + (" Some movements name the other side: check the images." if self.conflicts else "")

    def to_markdown(self) -> str:
        """Return the report as Markdown that also reads as plain text."""
        def ev(pairs):
            return ", ".join(f"{mv} {movement_phrase(mv)}: {lab}" for mv, lab in pairs)

        # The subject code comes from a manifest: its Markdown characters are escaped, so a code
        # like ![x](https://…) shows as text instead of loading an image from elsewhere.
        subject = re.sub(r"([\\`*_{}\[\]()<>#+!|])", r"\\\1", self.subject) if self.subject else ""
        lines = [f"## Prediagnosis{' — subject ' + subject if subject else ''}", "",
                 f"**{self.headline()}**", ""]
        for m in self.muscles:
            lines.append(f"- {m.role}: {SIDE_NAMES[self.side]} {m.muscle} — {m.severity_name} "
                         f"(evidence: {ev(m.evidence)}; tested by: {ev(m.tested_by)})")
        if self.resting is not None:
            lines.append(f"- at rest (MV0, all muscles): {self.resting.label}")
        for c in self.conflicts:
            lines.append(f"- conflicting side: {c.movement} {movement_phrase(c.movement)} is {c.label}")
        if self.missing:
            lines.append(f"- not available: {', '.join(self.missing)}")
        for n in self.notes:
            lines.append(f"- note: {n}")
        lines += ["", "| movement | label |", "| --- | --- |"]
        lines += [f"| {f.movement} {movement_phrase(f.movement)} | {f.label} |" for f in self.movements]
        lines += ["", "_Research aid from per-movement labels (paper Table 2 mapping); not a diagnosis._"]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """Return the report as a JSON-ready dict (with the headline)."""
        return {**asdict(self), "headline": self.headline()}


def _per_movement(labels) -> tuple[list[MovementFinding], list[str]]:
    """Keep one label per movement: the most frequent, ties broken towards the higher degree."""
    if isinstance(labels, Mapping):
        frame = pd.DataFrame({"movement": list(labels), "label": list(labels.values())})
    else:
        frame = pd.DataFrame(labels)[["movement", "label"]]
    frame = frame[frame["label"].isin(CLASSES) & frame["movement"].isin(MOVEMENTS)]
    notes = []
    findings = []
    for mv in MOVEMENTS:
        counts = frame.loc[frame["movement"] == mv, "label"].value_counts()
        if not len(counts):
            continue
        best = max(counts.index, key=lambda lab: (counts[lab], side_and_degree(lab)[1]))
        if len(counts) > 1:
            notes.append(f"{mv} has several labels ({', '.join(f'{k} x{v}' for k, v in counts.items())}); kept {best}")
        side, degree = side_and_degree(best)
        findings.append(MovementFinding(mv, best, side, degree, int(counts.sum())))
    return findings, notes


def prediagnose(labels, subject: str | None = None) -> Prediagnosis:
    """Return the Prediagnosis of one subject from its per-movement labels: a mapping movement ->
    label, or a DataFrame with movement and label columns (final labels or model predictions;
    several rows per movement allowed, None/unknown labels ignored)."""
    findings, notes = _per_movement(labels)
    missing = tuple(mv for mv in MOVEMENTS if mv not in {f.movement for f in findings})
    votes = {s: sum(f.degree for f in findings if f.side == s) for s in ("L", "R")}
    side = None if votes["L"] == votes["R"] == 0 else max(votes, key=lambda s: (votes[s], s == "L"))
    if votes["L"] and votes["R"] and votes["L"] == votes["R"]:
        notes.append("left and right findings weigh the same; the side is undecided, left shown first")
    conflicts = tuple(f for f in findings if f.side is not None and f.side != side)
    if conflicts:
        notes.append("labels on both sides: simultaneous bilateral palsy is improbable (paper §2.3.1); "
                     "check the images")
    # Degree on the report's side; a movement naming the other side counts as no evidence here.
    degree = {f.movement: (f.degree if f.side == side else 0) for f in findings}
    label = {f.movement: f.label for f in findings}

    muscles = []
    for muscle in MUSCLES:
        tested = [mv for mv, ms in MOVEMENT_MUSCLES.items() if muscle in ms and mv in degree]
        top = max((degree[mv] for mv in tested), default=0)
        if top == 0:
            continue
        muscles.append((muscle, top, tuple((mv, label[mv]) for mv in tested if degree[mv] == top),
                        tuple((mv, label[mv]) for mv in tested)))
    best = max(((sev, len(ev)) for _, sev, ev, _ in muscles), default=None)
    ranked = sorted(muscles, key=lambda m: (-m[1], -len(m[2]), MUSCLES.index(m[0])))
    muscle_findings = tuple(
        MuscleFinding(name, sev, SEVERITY[sev], "primary" if (sev, len(ev)) == best else "secondary", ev, tested)
        for name, sev, ev, tested in ranked)
    resting = next((f for f in findings if f.movement == "MV0"), None)
    return Prediagnosis(subject, side, max(degree.values(), default=0), tuple(findings), muscle_findings,
                        resting, conflicts, missing, tuple(notes))


def prediagnose_subjects(labels: pd.DataFrame) -> list[Prediagnosis]:
    """Return one Prediagnosis per subject of a DataFrame with subject, movement and label columns."""
    return [prediagnose(group, subject=str(subject)) for subject, group in labels.groupby("subject", sort=True)]
