"""The agreement audit's database side: loaders on a hand-made project whose every read, check and
decision is known, the vectorised range classifier against RangeTable.classify, imported trainer
predictions (idempotent, bad input refused) and the command line."""
from __future__ import annotations

import csv
import hashlib
import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from asymmetry.indices import INDEX_VERSION
from asymmetry.measure import LANDMARK_VERSION
from asymmetry.ranges import RangeCell, RangeTable
from db.access import fetch_columns, transaction
from labeling.vocabulary import CLASSES
from labeling.agreement import data as ad
from labeling.cli import main
from tests.conftest import SHELL


PROBS = [f"prob_{c}" for c in CLASSES]


def sha(i: int) -> str:
    return hashlib.sha256(f"image {i}".encode()).hexdigest()


def cell(mv, cls, r, a, n=5):
    """A box rgas r[0]..r[1], anas a[0]..a[1] of n images (5 = enough with min_count 5)."""
    return RangeCell(mv, cls, n, r[0], r[1], a[0], a[1], sum(r) / 2, sum(a) / 2, n >= 5)


TABLE = RangeTable(cells=(cell("MV1", "L2", (0.05, 0.15), (1.0, 3.0)), cell("MV1", "L3", (0.2, 0.3), (3.0, 6.0)),
                          cell("MV1", "R1", (-0.2, -0.1), (-2.0, -1.0), n=2)),
                   lo=5.0, hi=95.0, min_count=5, version="ranges-hand")


def build_project(db) -> dict:
    """Five images, two readers (ann, bob), one adjudicator, every case of the loaders:

    img1 MV1 hospital: ann L2, bob L2 -> consensus; check 2 accepted -> final L2 (accepted)
    img2 MV1 mobile:   ann L1, bob L3 -> check 1 disagrees -> adjudicated final L3
    img3 MV4 synthetic: ann N, bob R1 then undone, bob N -> consensus N, no check 2 yet
    img4 MV4: ann L1 only -> still awaiting its second read
    img5 MV4: ann cannot grade, bob N -> disagreement -> excluded
    """
    with transaction(db) as c:
        for uid, name, roles in ((1, "ann", "reader"), (2, "bob", "reader"), (3, "jud", "adjudicator")):
            c.execute("INSERT INTO users (id, name, password_hash, roles, created_at) VALUES (?,?,?,?,?)",
                      (uid, name, "x", roles, "2026-01-01"))
        c.execute("INSERT INTO subjects (id, code, synthetic, created_at) VALUES (1, 'S1', 0, 'x'), (2, 'S2', 1, 'x')")
        for i, (mv, src, subj, syn) in enumerate([("MV1", "hospital", 1, 0), ("MV1", "mobile", 1, 0),
                                                  ("MV4", "hospital", 2, 1), ("MV4", "hospital", 2, 1),
                                                  ("MV4", "mobile", 2, 1)], start=1):
            c.execute("INSERT INTO images (id, sha256, subject_id, movement, source, mirrored, width, height, format, "
                      "mode, bytes, stored_path, synthetic, imported_at) "
                      "VALUES (?,?,?,?,?,0,1,1,'JPEG','RGB',1,'x',?,'x')",
                      (i, sha(i), subj, mv, src, syn))
        reads = [(1, 1, 1, "L2", None, "2026-01-05T09:00:00.000+00:00", 3000),
                 (2, 1, 2, "L2", None, "2026-01-05T10:00:00.000+00:00", 4000),
                 (3, 2, 1, "L1", None, "2026-01-05T09:01:00.000+00:00", 5000),
                 (4, 2, 2, "L3", None, "2026-01-05T10:01:00.000+00:00", 6000),
                 (5, 3, 1, "N", None, "2026-01-06T09:00:00.000+00:00", 2000),
                 (6, 3, 2, "R1", None, "2026-01-06T10:00:00.000+00:00", 1000),
                 (8, 3, 2, "N", None, "2026-01-06T10:05:00.000+00:00", 1500),
                 (9, 4, 1, "L1", None, "2026-01-06T09:02:00.000+00:00", 2500),
                 (10, 5, 1, None, "eyes shut in a blurry photo", "2026-01-06T09:03:00.000+00:00", 9000),
                 (11, 5, 2, "N", None, "2026-01-06T10:03:00.000+00:00", 2000)]
        c.executemany("INSERT INTO reads (id, image_id, reader_id, label, cannot_grade, submitted_at, duration_ms) "
                      "VALUES (?,?,?,?,?,?,?)", reads)
        c.execute("INSERT INTO reads (id, image_id, reader_id, kind, supersedes, submitted_at) "
                  "VALUES (7, 3, 2, 'undo', 6, '2026-01-06T10:01:00.000+00:00')")
        c.execute("INSERT INTO range_tables (version, created_at, actor, params, table_json) VALUES (?,?,?,?,?)",
                  (TABLE.version, "2026-01-07", "coo",
                   json.dumps({"landmark_version": LANDMARK_VERSION, "index_version": INDEX_VERSION}), TABLE.to_json()))
        c.execute("INSERT INTO check2_results (image_id, range_version, consensus, range_class, outcome, at) "
                  "VALUES (1, 'ranges-hand', 'L2', 'L2', 'accepted', '2026-01-07')")
        c.execute("INSERT INTO adjudications (image_id, adjudicator_id, decision, label, at) "
                  "VALUES (2, 3, 'final', 'L3', '2026-01-08')")
        c.execute("INSERT INTO adjudications (image_id, adjudicator_id, decision, reason, at) "
                  "VALUES (5, 3, 'exclude', 'not a face', '2026-01-08')")
        for image_id, status, rgas, anas in ((1, "ok", 0.1, 2.0), (2, "ok", 0.12, 5.0), (3, "no_face", None, None)):
            c.execute("INSERT INTO measurements (image_id, landmark_version, index_version, status, rgas_signed, "
                      "anas_signed, measured_at) VALUES (?,?,?,?,?,?,'x')",
                      (image_id, LANDMARK_VERSION, INDEX_VERSION, status, rgas, anas))
    return {"table": TABLE}


def plain(values) -> list:
    """Missing values as None (pandas may hold them as None or NaN)."""
    return [None if pd.isna(v) else v for v in values]


def write_run(folder, rows, config=None, columns=None):
    """A trainer run folder with predictions.csv (rows: dicts) and optionally config.json."""
    folder.mkdir(parents=True, exist_ok=True)
    columns = columns or list(ad.PREDICTION_COLUMNS)
    with open(folder / "predictions.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    return folder


def prediction(i, label, predicted, split="test", movement="MV1", fold=3):
    probs = {p: 0.0 for p in PROBS}
    probs[f"prob_{predicted}"] = 1.0
    return {"image_sha256": sha(i), "split": split, "fold": fold, "movement": movement, "label": label,
            "predicted": predicted, **probs}


RUN_ROWS = [prediction(1, "L2", "L2"), prediction(2, "L3", "L2"), prediction(2, "L3", "L3", split="val"),
            prediction(99, "N", "N", movement="MV0")]


# ---- loaders -----------------------------------------------------------------------------------


def test_loaders_return_what_the_core_expects(db):
    build_project(db)
    reads = ad.load_reads(db)
    assert {"image_id", "reader", "label", "submitted_at", "duration_ms", "movement", "source", "synthetic"} <= set(reads)
    # 10 read rows, one of them undone (and the undo row itself is not a read): 9 effective reads.
    assert len(reads) == 9
    assert not ((reads["image_id"] == 3) & (reads["label"] == "R1")).any()
    assert reads.groupby("reader").size().to_dict() == {"ann": 5, "bob": 4}
    cannot = reads[reads["image_id"] == 5].set_index("reader")["label"]
    assert pd.isna(cannot["ann"]) and cannot["bob"] == "N"  # cannot grade: no label
    row = reads[(reads["image_id"] == 2) & (reads["reader"] == "bob")].iloc[0]
    assert (row["movement"], row["source"], row["synthetic"], row["duration_ms"]) == ("MV1", "mobile", 0, 6000)

    data = ad.load_audit_data(db)
    assert data.finals.set_index("image_id")["final_label"].to_dict() == {1: "L2", 2: "L3"}
    checks = data.checks.set_index("image_id")
    assert plain(checks.loc[[1, 2, 3, 4, 5], "check1"]) == ["agree", "disagree", "agree", None, "disagree"]
    assert plain(checks.loc[[1, 2, 3, 4, 5], "check2"]) == ["accepted", None, None, None, None]
    # The stored table classifies img1 (0.1, 2.0) into MV1's L2 box. img2 (0.12, 5.0) lies in no box
    # (L2's AnAs stops at 3, L3's RgAs starts at 0.2): nearest box L3 (0.08 / 0.1 = 0.8 widths away,
    # L2 is 2 / 2 = 1); on RgAs alone 0.12 is inside L2's interval, on AnAs alone 5.0 inside L3's.
    # img3 has no face.
    stored = ad.ranges_frame(ad.load_measurements(db), TABLE).set_index("image_id")
    assert list(stored.index) == [1, 2]
    assert stored.loc[1, ["range_class", "range_class_rgas", "range_class_anas"]].tolist() == ["L2", "L2", "L2"]
    assert stored.loc[2, ["range_class", "range_class_rgas", "range_class_anas"]].tolist() == ["L3", "L2", "L3"]
    # The audit's range classes are out-of-fold (labeling/agreement/range_oof.py): img1 and img2 (subject S1)
    # by ranges learned from S2's consensus images alone, and S2's one consensus image has no face.
    ranges = data.ranges.set_index("image_id")
    assert list(ranges.index) == [1, 2]
    assert ranges.filter(like="(out-of-fold)").isna().all().all() and ranges.shape[1] == 5
    assert data.range_version == "ranges-hand"
    assert data.points.set_index("image_id")["label"].to_dict() == {1: "L2", 2: "L3"}
    assert set(data.boxes["cls"]) == {"L2", "L3", "R1"} and not data.boxes.set_index("cls").loc["R1", "enough"]
    assert data.predictions.empty


def test_load_reads_equals_the_plain_sql_join(db):
    # load_reads fetches each column as one JSON array, has SQLite read the submission times and
    # joins names and image attributes in numpy; the same rows by plain SQL joins through
    # read_sql_query, their times read by pandas, are the reference.
    build_project(db)
    with transaction(db) as c:  # no duration (the column becomes float, as read_sql has it), other time zones
        c.executemany("INSERT INTO reads (id, image_id, reader_id, label, submitted_at) VALUES (?, 4, 2, 'L1', ?)",
                      [(12, "2026-01-09T10:00:00.123+02:00"), (13, "2026-01-09T07:59:59.999Z"), (14, "x")])
    expected = pd.read_sql_query(
        "SELECT r.image_id, u.name AS reader, r.label, r.submitted_at, r.duration_ms, i.movement, i.source, "
        "i.synthetic, i.subject_id AS subject, r.simulated FROM reads r JOIN users u ON u.id = r.reader_id "
        "JOIN images i ON i.id = r.image_id "
        "WHERE r.kind = 'read' AND NOT EXISTS (SELECT 1 FROM reads x WHERE x.supersedes = r.id) ORDER BY r.id", db.conn)
    expected["submitted_at"] = pd.to_datetime(expected["submitted_at"], utc=True, errors="coerce", format="ISO8601")
    reads = ad.load_reads(db)
    assert reads["duration_ms"].dtype == float and reads["duration_ms"].isna().sum() == 3
    assert reads["submitted_at"].isna().sum() == 1

    def plain_frame(f):
        return f.astype(object).where(f.notna(), None)
    pd.testing.assert_frame_equal(plain_frame(reads), plain_frame(expected))


def test_fetch_columns_types_them_as_read_sql_query_does(db):
    # db.access.fetch_columns (load_reads, image_states) against read_sql_query on the same rows:
    # integers, integers with a NULL, text, text that was not named as text, no rows.
    sql = ("SELECT 1 AS a, 'x' AS t, 4 AS n, 'p' AS u UNION ALL SELECT NULL, NULL, 5, NULL "
           "UNION ALL SELECT 3, 'y', -6, 'q'")
    got = fetch_columns(db, sql, text=("t",))
    expected = pd.read_sql_query(sql, db.conn)
    assert got["a"].dtype == float and got["n"].dtype == np.int64 and got["t"].dtype == object == got["u"].dtype
    pd.testing.assert_frame_equal(pd.DataFrame(got), expected)
    assert fetch_columns(db, "SELECT ? AS a", [2.5])["a"].tolist() == [2.5]
    assert {k: len(v) for k, v in fetch_columns(db, sql + " LIMIT 0").items()} == {"a": 0, "t": 0, "n": 0, "u": 0}


def test_load_audit_numbers_on_the_hand_made_project(db):
    build_project(db)
    a = ad.load_audit(db, n_boot=0)
    # Double-read images (two graded reads): img1 (L2, L2), img2 (L1, L3), img3 (N, N); img5 has
    # one graded read (the other could not grade), img4 one read.
    assert (a.reads.n_images, a.reads.n_double_read, a.reads.n_cannot_grade) == (5, 3, 1)
    assert a.reads.percent_agreement.value == pytest.approx(2 / 3)
    assert a.checks.check1.value == pytest.approx(0.5) and a.checks.check1.n == 4
    assert a.checks.check2.value == 1.0 and a.checks.check2.n == 1
    by_name = {c.name: c for c in a.asymmetry}
    # Out-of-fold, no image has a range class (see above): the comparisons say so, none is in-sample.
    assert set(by_name) == {"asymmetry range_class (out-of-fold)", "asymmetry range_class_rgas (out-of-fold)",
                            "asymmetry range_class_anas (out-of-fold)"}
    assert all(c.n == 0 for c in a.asymmetry)
    assert {c.name for c in a.reader_pairs} == {"ann vs bob"}
    assert a.per_synthetic.set_index("synthetic")["n_images"].to_dict() == {"real": 2, "synthetic": 3}
    table = ad.overview(a)
    assert table.loc[table["measure"].str.startswith("check-1"), "ours"].item() == pytest.approx(0.5)
    assert "0.97" in table.loc[table["measure"].str.startswith("check-1"), "published"].item()


def test_empty_project_loads_and_audits(db):
    data = ad.load_audit_data(db)
    assert data.reads.empty and data.finals.empty and data.ranges.empty and data.points.empty
    a = data.audit(n_boot=0)
    assert a.reads.n_reads == 0 and math.isnan(a.reads.percent_agreement.value)
    assert not a.models and not a.asymmetry
    # The 16 read measures and the 2 check rates, each with its reason; no model row without a run.
    table = ad.overview(a)
    assert len(table) == 18 and table["ours"].isna().all() and (table["note"] != "").all()


def test_data_version_changes_with_every_event(db):
    build_project(db)
    before = ad.data_version(db)
    assert ad.data_version(db) == before
    with transaction(db) as c:
        c.execute("INSERT INTO reads (image_id, reader_id, label, submitted_at) VALUES (4, 2, 'L1', 'x')")
    after_read = ad.data_version(db)
    assert after_read != before
    with transaction(db) as c:
        c.execute("INSERT INTO adjudications (image_id, adjudicator_id, decision, label, at) "
                  "VALUES (2, 3, 'final', 'L2', 'x')")
    assert ad.data_version(db) != after_read


def test_vectorised_classifier_matches_range_table_classify():
    rng = np.random.default_rng(7)
    cells = []
    for mv in ("MV1", "MV2"):
        for k, cls in enumerate(CLASSES):
            r0, a0 = rng.normal(0, 0.1), rng.normal(0, 2)
            cells.append(cell(mv, cls, (r0, r0 + abs(rng.normal(0.05, 0.03))), (a0, a0 + abs(rng.normal(1.5, 1))),
                              n=int(rng.integers(1, 10))))
    cells.append(cell("MV3", "N", (0, 0.1), (0, 1), n=1))  # no usable cell in MV3
    table = RangeTable(tuple(cells), 5.0, 95.0, 5, "v")
    n = 2000
    points = pd.DataFrame({"movement": rng.choice(["MV1", "MV2", "MV3", "MV5"], n),
                           "rgas": rng.normal(0, 0.15, n), "anas": rng.normal(0, 3, n)})
    points.loc[::97, "anas"] = np.nan
    # Points exactly on box corners and centres exercise ties and the closed edges.
    first = next(c for c in cells if c.movement == "MV1" and c.enough)
    points.loc[0] = ["MV1", first.rgas_lo, first.anas_hi]
    points.loc[1] = ["MV1", *first.centre]
    got = ad.classify_points(points, table)
    for i, p in points.iterrows():
        want = table.classify(p["movement"], p["rgas"], p["anas"])
        assert plain([got.loc[i, "range_class"]]) == [want.range_class], (i, p.to_dict())
        assert bool(got.loc[i, "out_of_range"]) == (want.out_of_range if want.range_class else False)


def test_one_index_classifier_uses_that_axis_only():
    pts = pd.DataFrame({"movement": ["MV1", "MV1", "MV1", "MV1"], "rgas": [0.12, 0.25, 0.17, 0.0],
                        "anas": [5.0, 2.0, 100.0, np.nan]})
    rgas = ad.classify_points(pts, TABLE, ("rgas",))
    anas = ad.classify_points(pts, TABLE, ("anas",))
    # RgAs intervals: L2 0.05-0.15, L3 0.2-0.3 (R1 has too few images). 0.17 is 0.02 from L2
    # (0.2 widths) and 0.03 from L3 (0.3 widths): L2, out of range. 0.0 is 0.5 widths below L2.
    assert rgas["range_class"].tolist() == ["L2", "L3", "L2", "L2"]
    assert rgas["out_of_range"].tolist() == [False, False, True, True]
    # AnAs intervals: L2 1-3, L3 3-6: 100 is nearest to L3; the NaN point has no class.
    assert plain(anas["range_class"]) == ["L3", "L2", "L3", None]


# ---- imported predictions ---------------------------------------------------------------------


def test_import_predictions_is_idempotent_and_feeds_the_audit(db, tmp_path):
    build_project(db)
    run = write_run(tmp_path / "idfnp-fold0", RUN_ROWS, config={"train": {"arch": "idfnp"}})
    first = ad.import_predictions(db, run, actor=SHELL)
    assert (first.name, first.arch, first.created) == ("idfnp-fold0", "idfnp", True)
    assert (first.n_predictions, first.n_matched) == (4, 3)
    again = ad.import_predictions(db, run, actor=SHELL)
    assert not again.created and "nothing changed" in again.message
    renamed = ad.import_predictions(db, run, name="other-name", actor=SHELL)
    assert not renamed.created and renamed.name == "idfnp-fold0"
    assert db.execute("SELECT count(*) FROM model_runs").fetchone()[0] == 1
    assert db.execute("SELECT count(*) FROM model_predictions").fetchone()[0] == 4
    # Stored rows are immutable, like the reads.
    with pytest.raises(Exception, match="append-only"):
        db.execute("DELETE FROM model_predictions")

    test = ad.load_predictions(db)
    assert len(test) == 3 and set(test["split"]) == {"test"}
    assert pd.isna(test.set_index("image_sha256").loc[sha(99), "image_id"])  # not an image of this project
    assert ad.prediction_splits(db) == ["test", "val"]
    a = ad.load_audit(db, n_boot=0)
    (model,) = a.models
    # Test split: img1 L2->L2, img2 L3->L2, unknown image N->N: 2 of 3.
    assert (model.name, model.meta["arch"]) == ("idfnp-fold0", "idfnp")
    assert model.agreement.value == pytest.approx(2 / 3)
    assert a.runs_table["run"].tolist() == ["idfnp-fold0"]
    runs = ad.list_runs(db)
    assert runs.loc[0, "n_matched"] == 3 and runs.loc[0, "splits"] == "test, val"


def test_predictions_with_subject_hash_and_source_cluster_the_run_by_subject(db, tmp_path):
    # The trainer writes the export's hashed subject and the source; a run from another project
    # (its images unknown here) is still resampled by subject.
    rows = [{**prediction(100 + i, "L1", "L1" if i % 7 else "N"), "subject_hash": f"{i // 7:016x}", "source": "mobile"}
            for i in range(28)]
    ad.import_predictions(db, write_run(tmp_path / "hashed", rows, columns=list(ad.PREDICTION_COLUMNS)
                                        + list(ad.OPTIONAL_PREDICTION_COLUMNS)), actor=SHELL)
    stored = db.execute("SELECT count(DISTINCT subject_hash), min(source) FROM model_predictions").fetchone()
    assert stored == (4, "mobile")
    loaded = ad.load_predictions(db)
    assert loaded["subject"].nunique() == 4 and loaded["subject"].str.startswith("export:").all()
    (model,) = ad.load_audit(db, n_boot=50).models
    assert (model.n, model.n_subjects, model.unit) == (28, 4, "subject")


def test_old_prediction_files_import_and_images_of_this_project_cluster_by_its_subjects(db, tmp_path):
    build_project(db)
    ad.import_predictions(db, write_run(tmp_path / "old", RUN_ROWS), actor=SHELL)  # no subject_hash, no source column
    assert db.execute("SELECT count(*) FROM model_predictions WHERE subject_hash IS NULL").fetchone()[0] == 4
    (model,) = ad.load_audit(db, n_boot=50).models
    # img1 and img2 belong to subject S1; the unknown image 99 has no subject: its own cluster.
    assert model.n_subjects == 2 and "1 of 3 without a subject" in model.unit


def test_a_changed_run_under_a_stored_name_is_refused(db, tmp_path):
    run = write_run(tmp_path / "r", RUN_ROWS)
    ad.import_predictions(db, run, actor=SHELL)
    write_run(tmp_path / "r", RUN_ROWS[:2])
    with pytest.raises(ad.PredictionImportError, match="already imported"):
        ad.import_predictions(db, run, actor=SHELL)
    assert ad.import_predictions(db, run, name="r-v2", actor=SHELL).created


@pytest.mark.parametrize("setup, message", [
    (lambda p: None, "does not exist"),
    (lambda p: p.mkdir(), "predictions.csv does not exist"),
    (lambda p: write_run(p, RUN_ROWS, columns=[c for c in ad.PREDICTION_COLUMNS if c != "prob_R3"]),
     "lacks column(s) prob_R3"),
    (lambda p: write_run(p, []), "holds no predictions"),
    (lambda p: write_run(p, [{**RUN_ROWS[0], "predicted": "L4"}]), "row 2: predicted 'L4'"),
    (lambda p: write_run(p, [RUN_ROWS[0], {**RUN_ROWS[1], "label": "=cmd()"}]), "row 3: label"),
    (lambda p: write_run(p, [{**RUN_ROWS[0], "image_sha256": "abc"}]), "not a SHA-256"),
    (lambda p: write_run(p, [{**RUN_ROWS[0], "prob_N": "1.5"}]), "prob_N '1.5' is not a probability"),
    (lambda p: write_run(p, [{**RUN_ROWS[0], "fold": "x"}]), "fold 'x'"),
    (lambda p: write_run(p, [{**RUN_ROWS[0], "movement": "MV9"}]), "movement 'MV9'"),
    (lambda p: write_run(p, [{**RUN_ROWS[0], "subject_hash": "S1-name"}], columns=[*ad.PREDICTION_COLUMNS, "subject_hash"]),
     "subject_hash 'S1-name' is not a hashed subject"),
    (lambda p: write_run(p, [{**RUN_ROWS[0], "source": "=cmd()"}], columns=[*ad.PREDICTION_COLUMNS, "source"]),
     "source '=cmd()' is not a source name"),
    (lambda p: (write_run(p, RUN_ROWS), (p / "config.json").write_text("{not json")), "config.json is not valid JSON"),
    (lambda p: (p.mkdir(), (p / "predictions.csv").write_bytes(b"\xff\xfe\x00bad")), "not a readable CSV"),
])
def test_import_predictions_refuses_bad_input_in_one_line(db, tmp_path, capsys, setup, message):
    run = tmp_path / "run"
    setup(run)
    code = main(["import-predictions", "--run", str(run)])
    out, err = capsys.readouterr()
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert db.execute("SELECT count(*) FROM model_runs").fetchone()[0] == 0


# ---- command line -----------------------------------------------------------------------------


def test_cli_import_then_agreement_text_json_and_report(db, tmp_path, capsys):
    build_project(db)
    run = write_run(tmp_path / "resnet", RUN_ROWS, config={"train": {"arch": "resnet50"}})
    assert main(["import-predictions", "--run", str(run)]) == 0
    assert "4 predictions imported, 3 of them match" in capsys.readouterr().out
    assert main(["import-predictions", "--run", str(run)]) == 0
    assert "nothing changed" in capsys.readouterr().out

    assert main(["agreement", "--n-boot", "50"]) == 0
    text = capsys.readouterr().out
    for expected in ("exact agreement", "Cohen's kappa", "Fleiss' kappa", "Krippendorff's alpha (nominal)",
                     "Krippendorff's alpha (ordinal)", "Gwet's AC1", "Gwet's AC2", "weighted kappa, linear (ordinal scale)",
                     "laterality-weighted kappa", "left/right swap rate", "side agreement", "degree agreement",
                     "check-1 consensus rate", "check-2 acceptance rate", "0.54", "0.97", "0.93",
                     "model accuracy, run resnet, resnet50", "Sunnybrook", "resampling unit subject",
                     "methods paragraph:", "Clopper-Pearson", "cluster bootstrap"):
        assert expected in text, expected
    assert "best" not in text
    assert "0.500" in text.split("check-1 consensus rate")[1].splitlines()[0]

    assert main(["agreement", "--json", "--n-boot", "0", "--report", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out)
    assert summary["checks"]["check1"]["value"] == 0.5 and summary["counts"]["n_reads"] == 9
    assert summary["settings"]["resampling_unit"] == "subject" and summary["counts"]["n_subjects"] == 2
    assert summary["models"][0]["resampling_unit"].startswith("subject (1 of 3") and "Design." in summary["methods_paragraph"]
    assert [m["name"] for m in summary["models"]] == ["resnet"]
    html = (tmp_path / "rep" / "agreement.html").read_text()
    # Self-contained: plotly.js inline, nothing fetched from the network.
    assert html.startswith("<!DOCTYPE html>") and not re.search(r"<script[^>]*\bsrc=", html)
    assert "signed RgAs" in html and "ann vs bob" in html
    assert (tmp_path / "rep" / "agreement.csv").read_text().startswith("table,row,column,value")


def test_cli_agreement_on_an_empty_project(db, capsys):
    assert main(["agreement", "--n-boot", "0"]) == 0
    out = capsys.readouterr().out
    assert "0 image(s) of 0 subject(s) read" in out and "no image has two graded reads" in out
    assert "No image has been read yet" in out and "nan" not in out
    assert main(["agreement", "--json", "--n-boot", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["n_reads"] == 0


def test_subject_loaders(db, tmp_path):
    build_project(db)
    ad.import_predictions(db, write_run(tmp_path / "run", RUN_ROWS), actor=SHELL)
    subjects = ad.list_subjects(db)
    assert subjects["code"].tolist() == ["S1", "S2"] and subjects["n_images"].tolist() == [2, 3]
    s1 = ad.subject_labels(db, "S1")
    assert s1["final_label"].tolist() == ["L2", "L3"] and s1["state"].tolist() == ["accepted", "final"]
    preds = ad.subject_predictions(db, "S1", "run")
    # img2 has a test and a val prediction: the test one is kept.
    assert preds.set_index("image_id")[["split", "predicted"]].to_dict("index") == {
        1: {"split": "test", "predicted": "L2"}, 2: {"split": "test", "predicted": "L2"}}
    assert ad.subject_labels(db, "nobody").empty and ad.subject_predictions(db, "S2", "run").empty
