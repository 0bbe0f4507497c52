"""Dataset export: what goes in, subject-grouped splits and folds, crops, de-identification,
immutable folders, crop corrections, the CLI and the Export page.

One SYNTHETIC demo project (3 subjects x 7 movements, carried to final labels) is built once per
module and copied for every test that uses it; the split and fold rules are also checked on
constructed tables where class sizes allow exact ratios.
"""
from __future__ import annotations

import hashlib
import io
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from labeling.workflow.measuring import override_flag
from db.project import open_project
from labeling.workflow import settings
from labeling.demo.project import carry_to_final, load_demo
from labeling.export.dataset import (CLASSES, MANIFEST_COLUMNS, SECRET_SETTING, ExportError, ExportPlan, export_dataset,
                                     list_exports, seeds_for_every_class)
from labeling.export.splits import (SPLITS, assign_folds, assign_splits, missing_from_splits,
                                    train_anchors)
from labeling.export.crops import correct_crop, crop_pixels, effective_crop_box, review_candidates
from labeling.accounts.permissions import PermissionDenied
from labeling.accounts.users import User, add_user
from labeling.workflow.states import final_labels
from tests.browser import chromium  # noqa: F401 - fixture: Debian's Chromium
from tests.conftest import signed_in, SHELL

SUBJECTS = 3
N = SUBJECTS * 7  # images in the demo project, all carried to a final label
COORD = User(1, "coord", frozenset({"coordinator"}))  # the template's first account (checked there)
READER = User(2, "reader", frozenset({"reader"}))


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A data folder holding the demo carried to final labels (built once, never modified)."""
    folder = tmp_path_factory.mktemp("export-template") / "data"
    db = open_project(folder)
    assert add_user(db, "coord", "a long password", ["coordinator"], actor=SHELL) == COORD
    assert add_user(db, "reader", "a long password", ["reader"], actor=SHELL) == READER
    load_demo(db, folder, subjects=SUBJECTS, seed=0, workers=1, actor=SHELL)
    settings.change(db, "range_min_count", 1, SHELL)  # every movement x class cell gets a box
    carry_to_final(db, folder, accuracy=0.9, seed=0, actor=SHELL)
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return folder


@pytest.fixture
def project(template, tmp_path, monkeypatch):
    """(db, data folder): a private copy of the demo project, also set as FNP_DATA_DIR."""
    folder = tmp_path / "data"
    shutil.copytree(template, folder)
    monkeypatch.setenv("FNP_DATA_DIR", str(folder))
    db = open_project(folder)
    yield db, folder
    db.close()


def _export(db, folder, name, **kw):
    return export_dataset(db, folder, name, actor=COORD, workers=kw.pop("workers", 1), **kw)


def _manifest(path) -> pd.DataFrame:
    return pd.read_csv(path / "manifest.csv", dtype=str, keep_default_na=False)


def test_demo_is_carried_to_final_labels(project):
    db, _ = project
    assert len(final_labels(db)) == N


def test_layout_manifest_splits_and_datacard(project):
    db, folder = project
    res = _export(db, folder, "v1")
    path = folder / "exports" / "v1"
    assert res.path == path and res.images == N and res.synthetic
    m = _manifest(path)
    assert tuple(m.columns) == MANIFEST_COLUMNS
    assert len(m) == N and m.image_sha256.is_unique
    assert set(m.split) <= set(SPLITS) and set(m.label) <= set(CLASSES)
    assert m.path.tolist() == (m.split + "/" + m.label + "/" + m.image_sha256 + ".png").tolist()
    assert all((path / p).is_file() for p in m.path)
    files = sorted(str(p.relative_to(path)) for p in path.rglob("*.png"))
    assert files == sorted(m.path)
    for split in SPLITS:  # every class folder everywhere, so directory readers agree on the classes
        assert sorted(p.name for p in (path / split).iterdir()) == sorted(CLASSES)
    # grouped: no subject in two splits, and the demo's subjects fill more than one split
    assert m.groupby("subject_hash").split.nunique().max() == 1
    assert m.split.nunique() >= 2
    assert set(m.fold.astype(int)) <= set(range(10))
    assert m.groupby("subject_hash").fold.nunique().max() == 1
    assert set(m.synthetic) == {"1"}
    assert set(m["flags"]) <= {"", "blurry", "distant", "blurry;distant"}
    assert set(m[m["flags"] != ""].split) <= {"train"}
    card = (path / "datacard.md").read_text()
    assert "SYNTHETIC DATA" in card and "seed: 0" in card and "software: FNP TripleCheck" in card
    assert "| total | " in card and "## Per movement" in card and "## Per source" in card
    assert int(res.counts.loc["total", "total"]) == N
    # integrity list a receiving lab can check with `sha256sum -c`
    sums = dict(line.split("  ")[::-1] for line in (path / "SHA256SUMS").read_text().splitlines())
    assert sums["manifest.csv"] == hashlib.sha256((path / "manifest.csv").read_bytes()).hexdigest()
    assert set(sums) == set(m.path) | {"manifest.csv", "datacard.md"}
    assert list_exports(folder).name.tolist() == ["v1"]


def test_no_identifying_text_leaves_the_project(project):
    db, folder = project
    _export(db, folder, "v1")
    path = folder / "exports" / "v1"
    text = (path / "manifest.csv").read_text() + (path / "datacard.md").read_text() + (path / "SHA256SUMS").read_text()
    codes = [r[0] for r in db.execute("SELECT code FROM subjects")]
    names = [r[0] for r in db.execute("SELECT original_name FROM image_names")]
    secret = db.execute("SELECT value FROM settings WHERE key = ?", [SECRET_SETTING]).fetchone()[0].strip('"')
    for s in codes + names + [n.rsplit("/", 1)[-1] for n in names] + [secret]:
        assert s not in text
    # the secret is created once, stays the same and never reaches the audit log
    audit = " ".join(r[0] for r in db.execute("SELECT detail FROM audit_log"))
    assert secret not in audit
    _export(db, folder, "v2")
    assert db.execute("SELECT value FROM settings WHERE key = ?", [SECRET_SETTING]).fetchone()[0].strip('"') == secret
    assert _manifest(path).subject_hash.tolist() == _manifest(folder / "exports" / "v2").subject_hash.tolist()


def test_crops_are_299_rgb_png_without_metadata(project):
    db, folder = project
    _export(db, folder, "v1")
    path = folder / "exports" / "v1"
    for p in _manifest(path).path:
        raw = (path / p).read_bytes()
        with Image.open(io.BytesIO(raw)) as im:
            assert im.format == "PNG" and im.size == (299, 299) and im.mode == "RGB"
            assert im.info == {} and not dict(im.getexif())
        # nothing but the image data: IHDR, IDAT..., IEND (no tEXt, eXIf, tIME, iCCP, pHYs)
        chunks, pos = set(), 8
        while pos < len(raw):
            n = int.from_bytes(raw[pos:pos + 4], "big")
            chunks.add(raw[pos + 4:pos + 8].decode())
            pos += 12 + n
        assert chunks == {"IHDR", "IDAT", "IEND"}


def test_mirrored_photos_are_flipped_to_one_convention(project):
    db, folder = project
    img = db.execute("SELECT id, stored_path, movement FROM images WHERE mirrored = 1 LIMIT 1").fetchone()
    box = effective_crop_box(db, img[0]).box
    plain, _ = crop_pixels(folder / img[1], img[2], box, mirrored=False)
    flipped, _ = crop_pixels(folder / img[1], img[2], box, mirrored=True)
    assert np.array_equal(flipped, plain[:, ::-1])


def test_blurry_or_distant_images_go_to_train_with_their_subject(project):
    db, folder = project
    first = _manifest(_export(db, folder, "before").path)
    not_train = first[first["split"] != "train"]
    assert len(not_train)
    sha = not_train.image_sha256.iloc[0]
    image_id = db.execute("SELECT id FROM images WHERE sha256 = ?", [sha]).fetchone()[0]
    override_flag(db, image_id, "distant", True, SHELL, "face too small in the frame")
    m = _manifest(_export(db, folder, "after").path)
    row = m[m.image_sha256 == sha].iloc[0]
    assert row.split == "train" and row["flags"] == "distant" and row.path.startswith("train/")
    assert (m[m.subject_hash == row.subject_hash].split == "train").all()
    assert set(m[m["flags"] != ""].split) == {"train"}
    assert m.groupby("subject_hash").split.nunique().max() == 1


def test_same_data_and_seed_give_byte_identical_manifest_and_crops(project):
    db, folder = project
    a = _export(db, folder, "a", seed=7).path
    b = _export(db, folder, "b", seed=7, workers=2).path  # the process pool writes the same bytes
    assert (a / "manifest.csv").read_bytes() == (b / "manifest.csv").read_bytes()
    for p in _manifest(a).path:
        assert (a / p).read_bytes() == (b / p).read_bytes()


def test_crop_correction_is_stored_and_applied(project):
    db, folder = project
    sha, image_id, path, movement, mirrored = db.execute(
        "SELECT sha256, id, stored_path, movement, mirrored FROM images ORDER BY id LIMIT 1").fetchone()
    landmark_box = effective_crop_box(db, image_id)
    assert landmark_box.source == "landmarks"
    with pytest.raises(PermissionDenied):
        correct_crop(db, READER, image_id, (0, 0, 200, 200), "readers may not")
    with pytest.raises(ExportError, match="reason"):
        correct_crop(db, COORD, image_id, (0, 0, 200, 200), "  ")
    with pytest.raises(ExportError, match="x1 > x0"):
        correct_crop(db, COORD, image_id, (200, 0, 100, 200), "backwards")
    stored = correct_crop(db, COORD, image_id, (100, 150, 300, 250), "chin cut off")  # 200 x 100: made square
    assert stored == (100.0, 100.0, 300.0, 300.0)
    assert effective_crop_box(db, image_id).box == stored and effective_crop_box(db, image_id).source == "correction"
    stored = correct_crop(db, COORD, image_id, (50, 60, 350, 360), "wider")  # the latest wins
    with pytest.raises(Exception, match="append-only"):
        db.execute("UPDATE crop_corrections SET x0 = 0")
    res = _export(db, folder, "corrected")
    row = res.manifest[res.manifest.image_sha256 == sha].iloc[0]
    with Image.open(res.path / row.path) as im:
        exported = np.asarray(im)
    expected, _ = crop_pixels(folder / path, movement, stored, bool(mirrored))
    before, _ = crop_pixels(folder / path, movement, landmark_box.box, bool(mirrored))
    assert np.array_equal(exported, expected) and not np.array_equal(exported, before)
    assert "1 box(es) corrected" in res.datacard


@pytest.mark.parametrize("name", ["", "   ", "../x", "a/b", "a\\b", "/tmp/abs", ".hidden", "..", "a b", "x" * 65,
                                  "caf\u00e9", "v1\n"])
def test_names_that_would_escape_or_are_odd_are_refused(project, name):
    db, folder = project
    with pytest.raises(ExportError) as exc:
        _export(db, folder, name)
    assert "name" in str(exc.value)
    assert not (folder / "exports").exists() or not any((folder / "exports").iterdir())


def test_existing_name_is_refused_and_never_overwritten(project):
    db, folder = project
    _export(db, folder, "v1")
    before = (folder / "exports" / "v1" / "manifest.csv").read_bytes()
    with pytest.raises(ExportError, match="already exists"):
        _export(db, folder, "v1", seed=3)
    assert (folder / "exports" / "v1" / "manifest.csv").read_bytes() == before


def test_permission_needed(project):
    db, folder = project
    with pytest.raises(PermissionDenied):
        export_dataset(db, folder, "nope", actor=READER)


def test_a_crash_half_way_leaves_no_export_and_a_rerun_works(project, monkeypatch):
    import labeling.export.crops as export

    db, folder = project
    real, calls = export._encode_png, {"n": 0}

    def flaky(rgb):
        calls["n"] += 1
        if calls["n"] == 10:
            raise OSError(28, "No space left on device")
        return real(rgb)

    monkeypatch.setattr(export, "_encode_png", flaky)
    with pytest.raises(OSError):
        _export(db, folder, "v1")
    exports = folder / "exports"
    assert not (exports / "v1").exists() and list(exports.iterdir()) == []
    # a killed process leaves its hidden temporary folder: it never looks complete and blocks nothing
    (exports / ".v1.partial-dead").mkdir()
    (exports / ".v1.partial-dead" / "train").mkdir()
    assert list_exports(folder).empty
    monkeypatch.setattr(export, "_encode_png", real)
    res = _export(db, folder, "v1")
    assert res.images == N and (exports / "v1" / "manifest.csv").is_file()
    assert list_exports(folder).name.tolist() == ["v1"]


def test_excluded_unfinished_and_uncroppable_images_are_left_out_and_counted(project):
    db, folder = project
    ids = [int(i) for i in final_labels(db).image_id]
    excluded, no_face = ids[0], ids[1]
    sim = db.execute("SELECT id FROM users WHERE name = 'sim-adjudicator'").fetchone()[0]
    with db.conn:  # direct DB fixtures: an exclusion, a failed measurement, an image nobody has read
        db.conn.execute("INSERT INTO adjudications (image_id, adjudicator_id, decision, reason, at) "
                        "VALUES (?, ?, 'exclude', 'eyes not visible', '2026-01-01T00:00:00')", (excluded, sim))
        db.conn.execute("UPDATE measurements SET status = 'no_face', points = NULL WHERE image_id = ?", (no_face,))
        db.conn.execute("INSERT INTO images (sha256, subject_id, movement, source, mirrored, width, height, format, mode, "
                        "bytes, stored_path, synthetic, imported_at) SELECT 'f' || substr(sha256, 2), subject_id, "
                        "movement, source, mirrored, width, height, format, mode, bytes, stored_path, synthetic, "
                        "imported_at FROM images WHERE id = ?", (ids[2],))
    res = _export(db, folder, "v1")
    assert res.images == N - 2
    assert res.left_out["excluded by an adjudicator"] == 1
    assert res.left_out["unfinished: awaiting read 1"] == 1
    assert res.left_out["final label but no usable landmarks (no_face)"] == 1
    assert "| excluded by an adjudicator | 1 |" in res.datacard
    assert "| unfinished: awaiting read 1 | 1 |" in res.datacard
    assert "| final label but no usable landmarks (no_face) | 1 |" in res.datacard
    assert f"images: {N - 2} exported of {N + 1} in the project" in res.datacard
    # a coordinator's box rescues the image the landmarks could not place
    cands = review_candidates(db)
    assert "no usable landmarks" in cands.set_index("image_id").loc[no_face, "crop"]
    correct_crop(db, COORD, no_face, (40, 60, 500, 520), "drawn by hand")
    assert _export(db, folder, "v2").images == N - 1


def test_nothing_to_export_is_a_clear_refusal(db, data_dir):
    with pytest.raises(ExportError, match="no image has a final label"):
        export_dataset(db, data_dir, "empty", actor=COORD)
    assert not (data_dir / "exports" / "empty").exists()


# ---- the split and fold rules on constructed tables ---------------------------------------------


def _one_image_subjects(sizes: dict[str, int]) -> pd.DataFrame:
    rows, i = [], 0
    for label, n in sizes.items():
        for _ in range(n):
            rows.append({"subject": f"s{i:04d}", "label": label, "train_only": False, "image_sha256": f"{i:064x}"})
            i += 1
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_ratios_within_one_image_where_class_sizes_allow(seed):
    sizes = {"N": 50, "L1": 23, "L2": 17, "L3": 9, "R1": 31, "R2": 12, "R3": 5}
    f = _one_image_subjects(sizes)
    f["split"] = assign_splits(f, seed)
    counts = pd.crosstab(f.label, f.split).reindex(columns=list(SPLITS), fill_value=0)
    for label, n in sizes.items():
        for split, ratio in zip(SPLITS, (0.7, 0.2, 0.1)):
            assert abs(counts.loc[label, split] - ratio * n) <= 1, (label, split)


def test_split_is_grouped_pins_flagged_subjects_to_train_and_is_seeded():
    rng = np.random.default_rng(3)
    rows = []
    for s in range(60):
        base = rng.choice(CLASSES)
        for mv in range(7):
            rows.append({"subject": f"S{s:03d}", "label": base if rng.random() < 0.6 else rng.choice(CLASSES),
                         "train_only": rng.random() < 0.05})
    f = pd.DataFrame(rows)
    f["split"] = assign_splits(f, 0)
    assert f.groupby("subject").split.nunique().max() == 1
    assert set(f[f.train_only].split) == {"train"}
    shares = f.split.value_counts(normalize=True)
    assert abs(shares["train"] - 0.7) < 0.03 and abs(shares["val"] - 0.2) < 0.03 and abs(shares["test"] - 0.1) < 0.03
    assert assign_splits(f, 0).tolist() == f.split.tolist()
    assert assign_splits(f, 1).tolist() != f.split.tolist()


def test_folds_are_grouped_and_stratified():
    rng = np.random.default_rng(5)
    rows = []
    for s in range(120):  # subjects of 1-3 images, mixed classes
        for k in range(int(rng.integers(1, 4))):
            rows.append({"subject": f"S{s:03d}", "label": str(rng.choice(CLASSES)), "image_sha256": f"{s:060x}{k:04x}"})
    f = pd.DataFrame(rows)
    f["train_only"] = False
    f["split"] = assign_splits(f, 0)
    f["fold"] = assign_folds(f, 0)
    assert set(f.fold) == set(range(10))
    assert f.groupby("subject").fold.nunique().max() == 1  # grouped
    pool = f[f.split != "test"]
    table = pd.crosstab(pool.label, pool.fold)
    expected = pool.label.value_counts() / 10
    for label in table.index:  # stratified: each fold holds about a tenth of every class
        assert (table.loc[label] - expected[label]).abs().max() <= max(3, 0.5 * expected[label]), label
    assert assign_folds(f, 0).tolist() == f.fold.tolist()


# ---- the command line and the page -----------------------------------------------------------


def test_cli_export_and_refused_names(project, capsys):
    from labeling.cli import main

    _, folder = project
    assert main(["export", "--name", "cli-1", "--seed", "2", "--workers", "1"]) == 0
    out = capsys.readouterr()
    assert f"SYNTHETIC export cli-1: {N} images" in out.out
    assert (folder / "exports" / "cli-1" / "manifest.csv").is_file()
    for bad in ("cli-1", "../x"):
        assert main(["export", "--name", bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0]
    other = folder.parent / "elsewhere"
    assert main(["export", "--name", "cli-2", "--out", str(other), "--workers", "1"]) == 0
    assert (other / "cli-2" / "manifest.csv").is_file()


def _page(user):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string("from ui.export_page import export_page\nexport_page()\n", default_timeout=60)
    signed_in(at, user)
    return at.run()


def _button(at, label: str):
    return next(b for b in at.button if b.label == label)


def _texts(at) -> str:
    return " ".join(e.value for kind in ("markdown", "error", "success", "warning", "info", "title", "subheader")
                    for e in getattr(at, kind))


def test_export_page_for_a_coordinator(project):
    db, folder = project
    user = add_user(db, "coord1", "a long password", ["coordinator"], actor=SHELL)
    at = _page(user)
    assert not at.exception
    assert "Export a dataset" in _texts(at) and "Crop review" in _texts(at)
    assert len(at.get("imgs")) or len(at.get("image"))  # the crop and the photo with its box
    at.text_input[0].input("../x")
    at.button[0].click().run()
    assert not at.exception and "refused" in " ".join(e.value for e in at.error)
    at.text_input[0].input("page-1")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert f"SYNTHETIC export page-1: {N} images" in _texts(at)
    assert (folder / "exports" / "page-1" / "manifest.csv").is_file()
    for i, v in enumerate((100.0, 100.0, 110.0, 110.0), start=1):  # x0, y0, x1, y1 of the crop review
        at.number_input[i].set_value(v)
    at.text_input[1].input("too small")
    _button(at, "Save corrected box").click().run()
    assert not at.exception and "at least 32 pixels" in " ".join(e.value for e in at.error)
    at.number_input[3].set_value(400.0)
    at.number_input[4].set_value(400.0)
    _button(at, "Save corrected box").click().run()
    assert not at.exception and "saved as (100.0, 100.0, 400.0, 400.0)" in _texts(at)


def test_export_page_refuses_a_reader(project):
    db, _ = project
    user = add_user(db, "reader1", "a long password", ["reader"], actor=SHELL)
    at = _page(user)
    assert not at.exception
    assert "You do not have access to this page." in _texts(at)


# ---- a class missing from train: said, and other seeds or pinning offered ----------------------


def _train_classes(m: pd.DataFrame) -> set[str]:
    return set(m.loc[m.split == "train", "label"])


def test_a_class_left_out_of_train_is_said_in_the_datacard_and_the_summary(project):
    """The demo's three subjects hold different classes, so a subject-grouped 7:2:1 split leaves
    some class out of train; the export says which instead of claiming a stratified split."""
    db, folder = project
    res = _export(db, folder, "gap", seed=0)
    m = _manifest(res.path)
    lacking = sorted(set(m.label) - _train_classes(m), key=CLASSES.index)
    assert lacking, "the 3-subject demo was expected to leave a class out of train with seed 0"
    assert res.missing["train"] == lacking
    card = (res.path / "datacard.md").read_text()
    said = f"train has no {' or '.join(lacking)} image" if len(lacking) <= 2 else "train has no"
    assert "A CLASS IS MISSING FROM TRAIN" in card and said in card and said in res.summary()
    assert "## Classes missing from a split" in card and "is in the images of 1 subject" in card
    assert "every class of the export is in every split" not in card


def test_every_class_in_train_pins_one_subject_per_lacking_class(project):
    db, folder = project
    res = _export(db, folder, "pinned", seed=0, every_class_in_train=True)
    m = _manifest(res.path)
    assert _train_classes(m) == set(m.label) and "train" not in res.missing
    assert m.groupby("subject_hash").split.nunique().max() == 1  # still grouped by subject
    card = (res.path / "datacard.md").read_text()
    assert "A CLASS IS MISSING FROM TRAIN" not in card and "pinned to train first" in card
    detail = db.execute("SELECT detail FROM audit_log WHERE action = 'export.created' ORDER BY id DESC").fetchone()[0]
    assert '"every_class_in_train": true' in detail


def _subjects(spec: dict[str, str]) -> pd.DataFrame:
    """A table of subjects' images: {"S0": "L2 L1 N"} gives S0 three images of those classes."""
    return pd.DataFrame([{"subject": s, "label": c, "train_only": False} for s, labels in spec.items()
                         for c in labels.split()])


# Five subjects of seven images; L3 belongs to S1 alone, and seed 0 places S1 outside train.
FIVE = {"S0": "L2 L1 N L2 N N N", "S1": "N N L1 N L1 L3 N", "S2": "N N N L1 L2 N N", "S3": "N N N L1 L1 L1 N",
        "S4": "N N N N N L2 N"}


def test_seeds_that_put_every_class_into_train_are_found_and_true():
    f = _subjects(FIVE)
    assert missing_from_splits(f.assign(split=assign_splits(f, 0)))["train"] == ["L3"]
    table = seeds_for_every_class(ExportPlan(f, {}, len(f)), 1, 20)
    assert sorted(table.seed) == list(range(1, 21))
    good = table[table.every_class_in_train]
    assert 0 < len(good) < 20 and table.every_class_in_train.tolist() == sorted(table.every_class_in_train,
                                                                                 reverse=True)
    for r in table.itertuples():  # each row is what assign_splits does with that seed
        missing = missing_from_splits(f.assign(split=assign_splits(f, r.seed)))
        assert r.every_class_in_train == ("train" not in missing)
        assert r.missing_train == ", ".join(missing.get("train", []))


def test_train_anchors_cover_every_class_with_few_subjects_and_respect_pinned_ones():
    f = _subjects(FIVE)
    anchors = train_anchors(f, 0)
    assert set().union(*(set(f.loc[f.subject == s, "label"]) for s in anchors)) == set(f.label)
    assert "S1" in anchors and len(anchors) == 2  # L3 needs S1 (which also brings N, L1); L2 needs one more
    for seed in range(5):
        split = assign_splits(f, seed, every_class_in_train=True)
        assert set(f.loc[split == "train", "label"]) == set(f.label)
    flagged = f.assign(train_only=f.subject.isin(["S1", "S0"]))  # already pinned by a blurry photo
    assert train_anchors(flagged, 0) == set()


def test_export_page_warns_of_a_class_missing_from_train_and_offers_seeds_and_pinning(project):
    db, folder = project
    user = add_user(db, "coord2", "a long password", ["coordinator"], actor=SHELL)
    at = _page(user)
    at.text_input(key="export_name").input("gap")
    _button(at, "Export").click().run()
    assert not at.exception, at.exception
    assert "A class is missing from train" in " ".join(w.value for w in at.warning)
    _button(at, "Try seeds 1 to 20").click().run()
    assert not at.exception, at.exception
    said = " ".join(w.value for w in at.warning)
    assert "None of seeds 1 to 20 puts every class into train" in said and "is in the images of 1 subject" in said
    headers = [list(d.value.columns) for d in at.dataframe]
    assert ["seed", "missing from train", "missing from val", "missing from test", "every class in train"] in headers
    _button(at, "Check the split of seed 0").click().run()
    assert "A class is missing from train" in " ".join(w.value for w in at.warning)
    at.checkbox(key="export_every_class").check().run()
    _button(at, "Check the split of seed 0 (every class in train)").click().run()
    assert not at.exception, at.exception
    placed = next(d.value for d in at.dataframe if d.value.columns.name == "split" and "total" not in d.value)
    assert (placed["train"] > 0).all() and set(placed.index) == set(_manifest(folder / "exports" / "gap").label)
    at.text_input(key="export_name").input("pinned")
    _button(at, "Export").click().run()
    assert not at.exception, at.exception
    assert "A class is missing from train" not in " ".join(w.value for w in at.warning)
    assert _train_classes(_manifest(folder / "exports" / "pinned")) == set(_manifest(folder / "exports" / "pinned").label)


# ---- the export as one zip download ---------------------------------------------------------------


def _unzipped(data: bytes) -> dict[str, bytes | None]:
    """Member name -> bytes (None for a folder entry)."""
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        return {i.filename: None if i.is_dir() else zf.read(i) for i in zf.infolist()}


def test_the_zip_holds_exactly_the_export_folder_byte_for_byte(project):
    from labeling.export.download import download_export, export_zip

    db, folder = project
    res = _export(db, folder, "zipped")
    z = download_export(db, folder, "zipped", actor=COORD)
    data = b"".join(z.chunks(size=4096))
    assert len(data) == z.size == export_zip(res.path).size  # the size announced before a byte was read
    members = _unzipped(data)
    files = {f"zipped/{p.relative_to(res.path).as_posix()}": p.read_bytes() for p in res.path.rglob("*") if p.is_file()}
    assert {k: v for k, v in members.items() if v is not None} == files
    assert {"zipped/manifest.csv", "zipped/datacard.md", "zipped/SHA256SUMS"} <= set(files)
    empty = {f"zipped/{p.relative_to(res.path).as_posix()}/" for p in res.path.rglob("*")
             if p.is_dir() and not any(p.iterdir())}
    assert {k for k, v in members.items() if v is None} == empty  # empty class folders travel too
    sums = dict(line.split("  ")[::-1] for line in members["zipped/SHA256SUMS"].decode().splitlines())
    assert all(hashlib.sha256(members[f"zipped/{p}"]).hexdigest() == h for p, h in sums.items())
    detail = db.execute("SELECT actor, entity_id, detail FROM audit_log WHERE action = 'export.downloaded'").fetchall()
    assert detail == [("coord", "zipped", f'{{"bytes": {z.size}}}')]


def test_a_download_is_refused_to_a_reader_and_for_names_that_are_no_finished_export(project, tmp_path):
    from labeling.export.download import download_export

    db, folder = project
    _export(db, folder, "ok")
    with pytest.raises(PermissionDenied):
        download_export(db, folder, "ok", actor=READER)
    (folder / "exports" / ".ok.partial-1-ab").mkdir()
    outside = tmp_path / "outside"
    (outside / "x").mkdir(parents=True)
    (outside / "x" / "manifest.csv").write_text("secret")
    (folder / "exports" / "link").symlink_to(outside / "x")
    for name in ("missing", "../ok", ".ok.partial-1-ab", "link", "", "ok/..", "/etc"):
        with pytest.raises(ExportError):
            download_export(db, folder, name, actor=COORD)
    assert db.execute("SELECT count(*) FROM audit_log WHERE action = 'export.downloaded'").fetchone()[0] == 0


def test_streaming_a_large_export_keeps_memory_bounded(tmp_path):
    """96 MiB of crops stream through with a fixed few MiB of Python memory: nothing holds the zip."""
    import tracemalloc

    from labeling.export.download import export_zip

    big = tmp_path / "big"
    (big / "train" / "N").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(48):
        (big / "train" / "N" / f"{k:02d}.png").write_bytes(rng.bytes(2 * 2**20))
    (big / "manifest.csv").write_text("image_sha256\n")
    z = export_zip(big)
    assert z.size > 96 * 2**20
    tracemalloc.start()
    sent = 0
    for chunk in z.chunks():
        sent += len(chunk)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert sent == z.size
    assert peak < 6 * 2**20, f"peak {peak / 2**20:.1f} MiB while streaming {sent / 2**20:.0f} MiB"


def _get(url: str, path: str, token: str | None = None, headers: dict | None = None):
    """GET `path` from the real server as a browser with the session cookie `token`: (status, headers, body)."""
    import http.client
    import urllib.parse

    host, port = urllib.parse.urlsplit(url).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request("GET", path, headers={"Accept": "*/*", **({"Cookie": f"fnp_session={token}"} if token else {}),
                                       **(headers or {})})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, r.headers, body


def test_the_download_route_checks_the_session_and_the_role_on_the_server(project):
    """The real server: no session is sent to sign in, a reader and a foreign page are refused,
    an unknown or escaping name is not found, a coordinator gets the zip with its size announced."""
    from labeling.export.download import export_zip
    from labeling.accounts.sessions import start_session
    from tests.browser import Server

    db, folder = project
    res = _export(db, folder, "served")
    coord, _ = start_session(db, COORD)
    reader, _ = start_session(db, READER)
    server = Server(folder)
    try:
        status, headers, _ = _get(server.url, "/download/export/served.zip")
        assert status == 303 and headers["location"] == "/signin?next=/export"
        status, _, body = _get(server.url, "/download/export/served.zip", reader)
        assert status == 403 and b"Only a coordinator" in body
        for path in ("/download/export/nothing.zip", "/download/export/..%2Fserved.zip",
                     "/download/export/.served.zip"):
            assert _get(server.url, path, coord)[0] in (400, 404), path
        status, _, _ = _get(server.url, "/download/export/served.zip", coord, {"Sec-Fetch-Site": "cross-site"})
        assert status == 403
        status, headers, body = _get(server.url, "/download/export/served.zip", coord)
        assert status == 200 and headers["content-type"] == "application/zip"
        assert headers["content-disposition"] == 'attachment; filename="served.zip"'
        assert int(headers["content-length"]) == len(body) == export_zip(res.path).size
        members = _unzipped(body)
        assert members["served/manifest.csv"] == (res.path / "manifest.csv").read_bytes()
        assert not server.errors()
    finally:
        server.stop()
    assert [r[0] for r in db.execute("SELECT actor FROM audit_log WHERE action = 'export.downloaded'")] == ["coord"]


@pytest.mark.slow
def test_a_coordinator_downloads_an_export_from_the_export_page_in_chromium(project, chromium, tmp_path):
    """Chromium on the real server: the Export page's download link saves the export as one zip;
    the page's times are in the browser's own time zone."""
    from tests.browser import Server, sign_in

    db, folder = project
    coord = add_user(db, "coord3", "a long password", ["coordinator"], actor=SHELL)
    res = _export(db, folder, "browser-1")
    server = Server(folder)
    try:
        page = chromium.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Asia/Tokyo").new_page()
        page.set_default_timeout(60_000)
        sign_in(page, server.url, coord.name, path="/export")
        link = page.get_by_role("link", name="Download browser-1.zip")
        with page.expect_download() as got:
            link.click()
        saved = tmp_path / "saved.zip"
        got.value.save_as(saved)
        assert got.value.suggested_filename == "browser-1.zip"
        members = _unzipped(saved.read_bytes())
        files = {f"browser-1/{p.relative_to(res.path).as_posix()}": p.read_bytes()
                 for p in res.path.rglob("*") if p.is_file()}
        assert {k: v for k, v in members.items() if v is not None} == files
        page.get_by_text("Export a dataset").wait_for()  # the page stays where it was
        page.get_by_text("Times are in your browser's time zone (Asia/Tokyo).").wait_for()
        assert not server.errors()
    finally:
        server.stop()
