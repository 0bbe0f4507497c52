"""The asymmetry indices on the synthetic generator's photos (issue 3's acceptance figures, and
docs/asymmetry.md §5 and §11): Spearman correlation of |RgAs| and |AnAs| with severity per
movement, the side recovered per grade, and the side dead-band table.

Every photo is SYNTHETIC (labeling/demo/synthetic.py), measured through the whole pipeline: JPEG ->
decode -> dlib -> indices. Subject k is photographed as a selfie (`mirrored`) when k is odd.

    .venv/bin/python bench/generator_indices.py [--subjects 32] [--workers 2]
"""
from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asymmetry.indices import INDEX_VERSION, side_of  # noqa: E402
from asymmetry.ranges import learn_ranges  # noqa: E402
from asymmetry.measure import measure_photo  # noqa: E402
from labeling.vocabulary import CLASSES, MOVEMENTS  # noqa: E402
from labeling.vocabulary import side_and_degree  # noqa: E402
from labeling.agreement.range_oof import out_of_fold_frame  # noqa: E402
from labeling.demo.synthetic import GENERATOR, base_face, make_image  # noqa: E402

DEADBANDS = (0.0, 0.25, 0.5, 1.0, 2.0, 3.0)


def _measure(job: tuple) -> dict:
    movement, label, subject = job
    mirrored = bool(subject % 2)
    photo = make_image("BENCH", movement, label, mirrored=mirrored, seed=1000 + subject, subject_seed=subject)
    m = measure_photo(photo.jpeg, mirrored)
    side, grade = side_and_degree(label)
    row = {"movement": movement, "label": label, "truth": side, "grade": grade, "status": m.status,
           "subject": subject}
    if m.indices is not None:
        i = m.indices
        row.update(rgas_signed=i.rgas_signed, anas_signed=i.anas_signed)
        row.update(rgas=i.rgas, anas=i.anas, side_score=i.side_score, eas=i.eas, ebas=i.ebas, nas=i.nas, mas=i.mas,
                   lid=abs(i.lid_signed))
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    base_face()  # built once here, inherited by the forked workers
    jobs = [(mv, label, s) for s in range(1, args.subjects + 1) for mv in MOVEMENTS for label in CLASSES]
    t = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        rows = pd.DataFrame(pool.map(_measure, jobs, chunksize=8))
    print(f"{len(rows):,} synthetic photos ({GENERATOR}, index version {INDEX_VERSION}), {args.subjects} subjects, "
          f"measured in {time.perf_counter() - t:.0f} s; not ok: {int((rows.status != 'ok').sum())}")
    ok = rows[rows.status == "ok"]

    table = {index: [spearmanr(g.grade, g[index].abs()).statistic for _, g in ok.groupby("movement")]
             for index in ("rgas", "anas")}
    print("\nSpearman of the absolute index with severity (N = 0, grades 1-3):")
    print("| movement | " + " | ".join(MOVEMENTS) + " |\n|---|" + "---|" * len(MOVEMENTS))
    for index, values in table.items():
        print(f"| \\|{'RgAs' if index == 'rgas' else 'AnAs'}\\| | " + " | ".join(f"{v:.2f}" for v in values) + " |")

    print("\nThe terms of RgAs (all lengths in eye-centre distances, equal weights): median by grade, all movements")
    print("| grade | EAs (of which lid) | EBAs | NAs | MAs | RgAs |\n|---|---|---|---|---|---|")
    for g, part in ok.groupby("grade"):
        print(f"| {g} | {part.eas.median():.3f} ({part.lid.median():.3f}) | {part.ebas.median():.3f} | "
              f"{part.nas.median():.3f} | {part.mas.median():.3f} | {part.rgas.median():.3f} |")

    # The range classifier with the generator's class as the consensus: in-sample (the table learned
    # from the photos it classifies, as check 2's stored table) against out-of-fold (10 subject-grouped
    # folds: ranges learned without the subject classified), with the project's default settings.
    ok = ok.reset_index(drop=True)
    ok["image_id"] = range(len(ok))
    table = learn_ranges(ok.assign(rgas_signed=ok.rgas_signed, anas_signed=ok.anas_signed))
    in_sample = [table.classify(r.movement, r.rgas_signed, r.anas_signed).range_class for r in ok.itertuples()]
    oof = out_of_fold_frame(ok[["image_id", "movement", "status"]].assign(rgas=ok.rgas_signed, anas=ok.anas_signed),
                            ok[["image_id"]].assign(subject_id=ok.subject, consensus=ok.label))
    oof_class = oof.set_index("image_id")["range_class (out-of-fold)"].reindex(ok.image_id).to_numpy()
    print("\nRange classifier (signed RgAs x AnAs boxes, 5th-95th percentiles), accuracy against the class:")
    for name, got in (("in-sample (learned on the same photos)", np.array(in_sample, dtype=object)),
                      ("out-of-fold (10 subject-grouped folds)", oof_class)):
        decided = pd.notna(got)
        print(f"  {name}: {np.mean(got == ok.label.to_numpy()):.3f} of all photos "
              f"({int(decided.sum())} of {len(ok)} in a cell of >= 5 images)")

    lr = ok[ok.truth.notna()]
    found = lr.side_score.map(side_of)
    print(f"\nside = the class's side on {int((found == lr.truth).sum()):,} of {len(lr):,} L/R photos; "
          f"|side_score| median by grade: " + ", ".join(f"{g} {lr[lr.grade == g].side_score.abs().median():.1f}"
                                                        for g in (1, 2, 3)))
    n = ok[ok.truth.isna()]
    print("\n| dead-band | L/R photos: side right | mild (1) | moderate (2) | severe (3) | N photos: side None |")
    print("|---|---|---|---|---|---|")
    for band in DEADBANDS:
        right = lr.side_score.map(lambda s: side_of(s, band)) == lr.truth
        per = [right[lr.grade == g].mean() for g in (1, 2, 3)]
        none = n.side_score.map(lambda s: side_of(s, band)).isna().mean()
        print(f"| {band:g} | {right.mean():.2f} | " + " | ".join(f"{p:.2f}" for p in per) + f" | {none:.2f} |")


if __name__ == "__main__":
    main()
