"""Import: content-addressed originals, idempotent re-import, resume after kill -9, and one
clear report row per bad file or manifest row."""
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from PIL import Image

from asymmetry.imaging import decode_image
from labeling.intake.importer import import_folder, import_uploaded, read_zip
from labeling.intake.manifest import ManifestError, parse_manifest
from labeling.accounts.users import add_user
from tests.conftest import SHELL, ROOT, face_variants, photo_folder, write_manifest
from tests.corpus import build_corpus

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL (tests/conftest.py)


def _issues_by_file(report):
    out = {}
    for i in report.issues:
        out.setdefault(i.file, []).append(i)
    return out


def test_bad_input_corpus_gets_one_clear_row_each_and_the_rest_goes_on(db, data_dir, tmp_path, astronaut):
    manifest, expect = build_corpus(tmp_path / "in", astronaut)
    report = import_folder(db, data_dir, tmp_path / "in", manifest, actor=SHELL)
    issues = _issues_by_file(report)
    for name, (severity, phrase) in expect.items():
        if severity == "ok":
            continue
        found = [i for i in issues.get(name, []) if i.severity == severity and phrase.lower() in i.reason.lower()]
        assert found, f"{name}: expected {severity} mentioning {phrase!r}, got {issues.get(name)}"
    # One problem, one line: a file refused for its row's error is not also "not in the manifest".
    assert [i.reason for i in issues["badrow.jpg"]] == ["unknown movement 'MV7': use MV0 to MV6"]
    assert not [f for f, found in issues.items() if any(i.severity == "error" for i in found)
                and any("not in the manifest" in i.reason for i in found)]
    assert not any("<bytes>" in i.reason or "bytes not processed" in i.reason for i in report.issues)
    # Manifest-level problems name the row.
    assert any(i.row and "unknown movement" in i.reason for i in report.issues)
    assert any(i.row and "unknown source" in i.reason for i in report.issues)
    # good1, good2 and the five convertible modes are in; nothing else is.
    assert report.added == 7
    names = {r[0] for r in db.execute("SELECT original_name FROM image_names")}
    assert names == {"good1.jpg", "good2.jpg", "cmyk.jpg", "sixteen.png", "palette.png", "gray.png", "alpha.png"}
    # The report is stored with the import.
    stored = db.execute("SELECT count(*) FROM import_issues WHERE import_id = ?", [report.import_id]).fetchone()[0]
    assert stored == len(report.issues)


def test_originals_are_stored_content_addressed_and_unmodified(db, data_dir, tmp_path, astronaut):
    src = tmp_path / "in"
    src.mkdir()
    data = face_variants(astronaut, 2)
    for i, d in enumerate(data):
        (src / f"p{i}.jpg").write_bytes(d)
    m = write_manifest(src / "m.csv", [{"file": f"p{i}.jpg", "subject": "S1", "movement": f"MV{i}", "source": "mobile"}
                                       for i in range(2)])
    import_folder(db, data_dir, src, m, actor=SHELL)
    for sha, path, mirrored in db.execute("SELECT sha256, stored_path, mirrored FROM images"):
        stored = (data_dir / path).read_bytes()
        import hashlib

        assert hashlib.sha256(stored).hexdigest() == sha
        assert path.endswith(f"{sha}.jpg") and sha[:2] in path
        assert mirrored == 1  # mobile defaults to mirrored


def test_reimport_adds_nothing(db, data_dir, tmp_path, astronaut):
    src = tmp_path / "in"
    src.mkdir()
    for i, d in enumerate(face_variants(astronaut, 3)):
        (src / f"p{i}.jpg").write_bytes(d)
    m = write_manifest(src / "m.csv", [{"file": f"p{i}.jpg", "subject": "S1", "movement": "MV0", "source": "hospital"}
                                       for i in range(3)])
    first = import_folder(db, data_dir, src, m, actor=SHELL)
    second = import_folder(db, data_dir, src, m, actor=SHELL)
    assert (first.added, second.added, second.already_present) == (3, 0, 3)
    assert db.execute("SELECT count(*) FROM images").fetchone()[0] == 3
    assert len(list((data_dir / "images").rglob("*.jpg"))) == 3
    # The Status page's import history: newest first, who, what, and the counts of each run.
    from labeling.workflow.status import import_history

    history = import_history(db)
    assert [h["import"] for h in history] == [2, 1] and {h["status"] for h in history} == {"finished"}
    assert history[0]["by"] == SHELL.name and history[0]["manifest"].endswith("m.csv")
    assert (history[1]["added"], history[0]["added"]) == (3, 0)


def test_conflicting_metadata_on_reimport_is_reported_not_applied(db, data_dir, tmp_path, astronaut):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.jpg").write_bytes(face_variants(astronaut, 1)[0])
    import_folder(db, data_dir, src, write_manifest(src / "m.csv", [{"file": "a.jpg", "subject": "S1", "movement": "MV0", "source": "hospital"}]), actor=SHELL)
    rep = import_folder(db, data_dir, src, write_manifest(src / "m.csv", [{"file": "a.jpg", "subject": "S2", "movement": "MV4", "source": "hospital"}]), actor=SHELL)
    assert any("already imported as subject S1" in i.reason for i in rep.issues)
    assert db.execute("SELECT movement FROM images").fetchone()[0] == "MV0"


@pytest.mark.parametrize("content, phrase", [
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00binary", "binary"),
    (b"name,age\nx,1\n", "missing required column"),
    (b"file;subject;movement\na.jpg;S;MV1\n", "source"),
])
def test_unusable_manifest_is_one_error_and_nothing_is_imported(db, data_dir, tmp_path, astronaut, content, phrase):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.jpg").write_bytes(face_variants(astronaut, 1)[0])
    (src / "m.csv").write_bytes(content)
    with pytest.raises(ManifestError, match=phrase):
        import_folder(db, data_dir, src, src / "m.csv", actor=SHELL)
    assert db.execute("SELECT count(*) FROM images").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM imports").fetchone()[0] == 0


def test_cli_exit_codes(data_dir, tmp_path, astronaut):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.jpg").write_bytes(face_variants(astronaut, 1)[0])
    (src / "bad.csv").write_bytes(b"\x00\x01\x02")
    good = write_manifest(src / "m.csv", [{"file": "a.jpg", "subject": "S1", "movement": "mv2", "source": "Hospital"}])
    def run(m):
        return subprocess.run([sys.executable, "-m", "labeling", "import", "--images", str(src), "--manifest", str(m)],
                              cwd=ROOT, capture_output=True, text=True, env={**os.environ, "FNP_DATA_DIR": str(data_dir)})
    bad = run(src / "bad.csv")
    assert bad.returncode == 2 and "bad.csv" in bad.stderr and "Traceback" not in bad.stderr
    ok = run(good)
    assert ok.returncode == 0, ok.stderr
    assert "1 image added" in ok.stdout


def test_manifest_parsing_details():
    raw = ("\ufefffile;Subject;Movement;Source;Mirrored;Sex;Age Group;Cohort\n"
           "a.jpg;S1;1;mobile;;female;40–65;patient\n"
           "b.jpg;S1;MV2;hospital;yes;;;\n"
           "../c.jpg;S1;MV2;hospital;;;;\n"
           "d.jpg;S1;MV2;hospital;maybe;;;\n"
           "a.jpg;S1;MV3;mobile;;;;\n").encode("utf-8")
    rows, issues = parse_manifest(raw)
    assert [(r.file, r.movement, r.mirrored) for r in rows] == [("a.jpg", "MV1", True), ("b.jpg", "MV2", True)]
    assert rows[0].sex == "F" and rows[0].age_group == "40-65" and rows[0].cohort == "patient"
    reasons = " | ".join(i.reason for i in issues)
    assert "inside the images folder" in reasons and "'mirrored'" in reasons and "listed twice" in reasons


def test_windows_1252_manifest_is_read_with_a_warning():
    rows, issues = parse_manifest("file,subject,movement,source\na.jpg,Zoë-1,MV0,hospital\n".encode("cp1252"))
    assert rows[0].subject == "Zoë-1"
    assert any("Windows-1252" in i.reason for i in issues)


def test_exif_orientation_is_honoured(tmp_path, astronaut):
    img = Image.fromarray(astronaut[:, :300].copy())  # 300 wide, 512 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    buf = tmp_path / "rot.jpg"
    img.save(buf, "JPEG", exif=exif.tobytes())
    d = decode_image(buf)
    assert d.ok and d.size == (512, 300) and d.rgb.shape[:2] == (300, 512)
    assert any("orientation" in n for n in d.notes)


def test_zip_upload_and_unsafe_members(db, data_dir, astronaut):
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("photos/a.jpg", face_variants(astronaut, 1)[0])
        zf.writestr("../evil.jpg", b"x")
        zf.writestr("__MACOSX/._a.jpg", b"junk")
    files, issues = read_zip(buf.getvalue())
    assert set(files) == {"photos/a.jpg"}
    assert any("escapes" in i.reason for i in issues)
    rep = import_uploaded(db, data_dir, b"file,subject,movement,source\na.jpg,S1,MV0,hospital\n", "m.csv", files, issues=issues,
                          actor=add_user(db, "coord", "a long password", ["coordinator"], actor=SHELL))
    assert rep.added == 1
    assert read_zip(b"not a zip")[1][0].severity == "error"


def test_resume_after_kill_9(data_dir, tmp_path, astronaut):
    """Kill an import half-way with SIGKILL; running it again finishes with a consistent database."""
    src = tmp_path / "in"
    n = 400
    m = photo_folder(src, astronaut, n, 128)
    env = {**os.environ, "FNP_DATA_DIR": str(data_dir)}
    cmd = [sys.executable, "-m", "labeling", "import", "--images", str(src), "--manifest", str(m)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dbfile = data_dir / "fnp.sqlite3"
    at_kill = 0
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if dbfile.exists():
            try:
                con = sqlite3.connect(dbfile, timeout=1)
                at_kill = con.execute("SELECT count(*) FROM images").fetchone()[0]
                con.close()
            except sqlite3.OperationalError:
                at_kill = 0
            if at_kill >= 20:
                proc.send_signal(signal.SIGKILL)
                break
        time.sleep(0.01)
    proc.wait()
    assert 20 <= at_kill < n, f"the kill must land mid-import (saw {at_kill} of {n})"
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stdout[-2000:]
    con = sqlite3.connect(dbfile)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT count(*), count(DISTINCT sha256) FROM images").fetchone() == (n, n)
    assert con.execute("SELECT count(*) FROM image_names").fetchone()[0] == n
    stored = {p.stem for p in (data_dir / "images").rglob("*.jpg")}
    assert stored == {r[0] for r in con.execute("SELECT sha256 FROM images")}


def test_an_upload_names_each_problem_once_like_the_folder_import(db, data_dir, tmp_path, astronaut):
    """The Import page's upload and `labeling import` of the same folder give the same report."""
    manifest, _ = build_corpus(tmp_path / "in", astronaut)
    files = {p.name: p.read_bytes() for p in (tmp_path / "in").iterdir() if p.name != "manifest.csv"}
    uploaded = import_uploaded(db, data_dir, manifest.read_bytes(), "manifest.csv", files, actor=SHELL)
    folder = import_folder(db, data_dir, tmp_path / "in", manifest, actor=SHELL)
    assert sorted((i.file, i.severity, i.reason) for i in uploaded.issues) == sorted(
        (i.file, i.severity, i.reason) for i in folder.issues if "already imported" not in i.reason)
    assert [i.reason for i in uploaded.issues if i.file == "badrow.jpg"] == ["unknown movement 'MV7': use MV0 to MV6"]
