"""Security evidence (issue 8): hostile input through the browser and every writer, free text that
is neither SQL nor HTML to us, sign-in throttling and session expiry, history that neither the app
nor an SQL client can rewrite, exports that cannot leave their folder.

The role x action matrix (pages and writes) and the blinding tests live in tests/test_pages.py.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest

from db.access import audit, database_path, transaction
from db.project import open_project
from labeling.csvsafe import FORMULA_TRIGGERS, to_csv_bytes
from labeling.accounts.users import add_user
from tests.conftest import ROOT, SHELL, read_image
from tests.corpus import FORMULAS, build_hostile_corpus
from tests.browser import chromium, page, server, sign_in  # noqa: F401 - fixtures: the real server and Debian's Chromium

# What a user could type into any free-text field: SQL, HTML/script, a spreadsheet formula, odd text.
HOSTILE = ("x'); DROP TABLE reads; --", "\" OR 1=1 --", "<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
           *FORMULAS, "Ünïcødé — 眼睑 \u202e", "a" * 600)
SOURCES = [ROOT / "app.py", *sorted((ROOT / "ui").glob("*.py")), *sorted((ROOT / "labeling").rglob("*.py")),
           *sorted((ROOT / "db").glob("*.py")), *sorted((ROOT / "asymmetry").glob("*.py"))]


def _cells(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"))))


def _number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def assert_formula_safe(data: bytes, payloads=FORMULAS) -> None:
    """Assert no cell of the CSV `data` starts a formula, and each payload that went in is there, defused."""
    cells = [c for row in _cells(data) for c in row]
    assert not [c for c in cells if c.startswith(FORMULA_TRIGGERS) and not _number(c)]
    for p in payloads:
        assert any(c.startswith("'" + p) for c in cells), f"{p!r} missing from the CSV"


def _images(db, n: int = 3, size: int = 400) -> list[int]:
    """Image rows without pixels (what the queue and the decisions need)."""
    with transaction(db) as conn:
        sid = conn.execute("INSERT INTO subjects (code, created_at) VALUES (?, 'x')", (uuid.uuid4().hex[:8],)).lastrowid
        ids = [conn.execute("INSERT INTO images (sha256, subject_id, movement, source, mirrored, width, height, format, "
                            "mode, bytes, stored_path, imported_at) VALUES (?, ?, 'MV0', 'hospital', 0, ?, ?, 'JPEG', "
                            "'RGB', 1, 'x', 'x')", (uuid.uuid4().hex * 2, sid, size, size)).lastrowid for _ in range(n)]
    from labeling.workflow.queue import ensure_slots

    ensure_slots(db)
    return ids


# ---- 3. CSVs we write ----------------------------------------------------------------------------


def test_every_csv_we_write_goes_through_csvsafe():
    """No module writes a CSV except through labeling/csvsafe.py (to_csv_bytes or safe_csv_frame)."""
    writers = re.compile(r"\.to_csv\(|csv\.writer\(|csv\.DictWriter\(|CSVLogger\(")
    unguarded = []
    for path in SOURCES:
        if path.name == "csvsafe.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if writers.search(line) and "safe_csv_frame(" not in line:
                unguarded.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert unguarded == []
    # model/ writes the trainer's own files (predictions.csv, history.csv, the demo export): hashes,
    # class codes and numbers from a validated export, read back by import_predictions, which
    # validates every column. No person's text reaches them.


def test_to_csv_bytes_defuses_every_trigger_and_keeps_numbers():
    frame = pd.DataFrame({"text": list(FORMULAS) + ["\tx", "\rx", "plain", "ok\r=cmd|' /C calc'!A0", "ok\n@x"],
                          "n": range(-5, 5), "cat": pd.Categorical(["=1+1"] * 10)})
    for out in (to_csv_bytes(frame), to_csv_bytes(frame, lineterminator="\r\n")):
        assert_formula_safe(out)
        rows = _cells(out)
        assert len(rows) == 11  # a line break inside a cell never starts a row of its own
        assert [r[1] for r in rows[1:]] == [str(i) for i in range(-5, 5)]  # a negative number stays a number
        assert rows[-3][0] == "plain" and rows[-2][0] == "ok\n=cmd|' /C calc'!A0"


def test_import_report_audit_and_agreement_csvs_are_formula_safe(db, data_dir, tmp_path, astronaut):
    from labeling.accounts.auth import sign_in
    from labeling.auditlog import audit_events
    from labeling.intake.importer import import_uploaded
    from labeling.workflow.status import import_issues
    from ui.import_page import _report_frame

    manifest, _ = build_hostile_corpus(tmp_path / "in", astronaut)
    files = {p.name: p.read_bytes() for p in (tmp_path / "in").iterdir() if p.name != "manifest.csv"}
    rep = import_uploaded(db, data_dir, manifest.read_bytes(), "manifest.csv", files, actor=SHELL)
    report = to_csv_bytes(_report_frame(import_issues(db, rep.import_id)))
    assert_formula_safe(report, [f"{f}.jpg" for f in FORMULAS[:4]])
    # No face and two faces are found by measurement, which says so per image (check 2 then sends
    # them to adjudication with "the face could not be measured").
    from labeling.workflow.measuring import measure_pending

    measure_pending(db, data_dir, workers=1, actor=SHELL)
    status = dict(db.execute("SELECT n.original_name, m.status FROM measurements m JOIN image_names n "
                             "ON n.image_id = m.image_id").fetchall())
    assert (status["noface.jpg"], status["twofaces.jpg"], status["huge.jpg"]) == ("no_face", "multiple_faces", "ok")

    for name in FORMULAS:  # sign-in attempts record the typed name in the audit log
        assert sign_in(db, name, "wrong password").user is None
    auditor = add_user(db, "aud", "a long password", ["auditor"], actor=SHELL)
    assert_formula_safe(to_csv_bytes(audit_events(db, auditor)), [f.lower() for f in FORMULAS])  # names are lower-cased

    from labeling.agreement.summary import report_csv
    from labeling.agreement.data import import_predictions, load_audit_data

    sha = db.execute("SELECT sha256 FROM images LIMIT 1").fetchone()[0]
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame([{"image_sha256": sha, "split": "test", "fold": 0, "movement": "MV0", "label": "N", "predicted": "N",
                   **{f"prob_{c}": 1.0 if c == "N" else 0.0 for c in ("N", "L1", "L2", "L3", "R1", "R2", "R3")}}]
                 ).to_csv(run / "predictions.csv", index=False)
    import_predictions(db, run, name=FORMULAS[0], actor=SHELL)
    data = load_audit_data(db)
    assert_formula_safe(report_csv(data.audit(n_boot=0)).encode(), [FORMULAS[0]])


def test_manifest_encodings_and_malformed_csv_are_clear_refusals():
    from labeling.intake.manifest import ManifestError, parse_manifest

    head = "file,subject,movement,source\n"
    rows, issues = parse_manifest((head + "a.jpg,Müller,MV0,hospital\n").encode("cp1252"), "m.csv")
    assert rows[0].subject == "Müller" and "Windows-1252" in issues[0].reason
    rows, issues = parse_manifest(b"\xef\xbb\xbf" + (head + "a.jpg,Müller,MV0,hospital\n").encode("utf-8"), "m.csv")
    assert rows[0].subject == "Müller" and not issues  # UTF-8 with a BOM (Excel's "CSV UTF-8")
    rows, _ = parse_manifest(b"file;subject;movement;source\r\na.jpg;S1;3;hospital\r\n", "m.csv")
    assert rows[0].movement == "MV3"  # Excel in a comma-decimal locale writes semicolons
    rows, issues = parse_manifest((head + "a.jpg,S1,MV0,hospital,extra,cells\nb.jpg,S1\n").encode(), "m.csv")
    assert [r.file for r in rows] == ["a.jpg"] and "unknown movement ''" in issues[0].reason  # a short row
    for raw, phrase in ((b"\x00\x01\x02PK", "binary"), (b"", "empty"), (b"name,age\nx,1\n", "missing required"),
                        ((head + 'a.jpg,"S1,MV0,hospital\n').encode(), "CSV"),
                        (head.encode() + b"a.jpg,\x81\x8d\x8f\x90\x9d,MV0,hospital\n", "not UTF-8")):
        with pytest.raises(ManifestError, match=phrase):
            parse_manifest(raw, "m.csv")


# ---- 3. free text is data, never SQL or HTML ------------------------------------------------------


def test_free_text_is_stored_verbatim_and_never_runs_as_sql(db, data_dir):
    from labeling.workflow.measuring import override_flag
    from labeling.auditlog import audit_events
    from labeling.accounts.auth import sign_in
    from labeling.export.crops import correct_crop
    from labeling.accounts.users import UserError
    from labeling.workflow.states import adjudicate

    schema = db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    ids = _images(db, n=len(HOSTILE))
    a = add_user(db, "reader-a", "a long password", ["reader"], actor=SHELL)
    b = add_user(db, "reader-b", "a long password", ["reader"], actor=SHELL)
    judge = add_user(db, "judge", "a long password", ["adjudicator"], actor=SHELL)
    for image_id, text in zip(ids, HOSTILE):
        for reader in (a, b):  # both readers cannot grade it, with the hostile text as the reason
            read_image(db, reader, image_id, cannot_grade=text)
        adjudicate(db, judge, image_id, exclude_reason=text)
        correct_crop(db, SHELL, image_id, (10, 10, 200, 200), text)
        override_flag(db, image_id, "blurry", True, SHELL, text)
        assert sign_in(db, text, text).user is None
        with pytest.raises(UserError):
            add_user(db, text, "a long password", ["reader"], actor=SHELL)
    assert db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall() == schema
    stored = [r[0] for r in db.execute("SELECT cannot_grade FROM reads WHERE reader_id = ? ORDER BY id", [a.id])]
    assert stored == [t[:500] for t in HOSTILE]  # verbatim (reasons are capped at 500 characters)
    assert [r[0] for r in db.execute("SELECT reason FROM adjudications ORDER BY id")] == [t[:500] for t in HOSTILE]
    assert [r[0] for r in db.execute("SELECT reason FROM crop_corrections ORDER BY id")] == [t[:500] for t in HOSTILE]
    assert [r[0] for r in db.execute("SELECT reason FROM quality_overrides ORDER BY id")] == list(HOSTILE)
    assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 3
    assert db.execute("SELECT count(*) FROM reads").fetchone()[0] == 2 * len(ids)
    # The audit search treats its text as text, LIKE wildcards and quotes included.
    auditor = add_user(db, "aud", "a long password", ["auditor"], actor=SHELL)
    assert len(audit_events(db, auditor, text="' OR 1=1 --")) == 0
    assert len(audit_events(db, auditor, actor="x' OR '1'='1")) == 0
    assert len(audit_events(db, auditor, text="DROP TABLE reads")) > 0


def test_pages_render_no_raw_html():
    """Streamlit escapes text; no page opts out of that or injects HTML of its own."""
    risky = re.compile(r"unsafe_allow_html\s*=\s*True|st\.html\(|components\.v1|components\.html\(|\.to_html\(")
    found = [f"{p.relative_to(ROOT)}:{n}" for p in [ROOT / "app.py", *sorted((ROOT / "ui").glob("*.py"))]
             for n, line in enumerate(p.read_text().splitlines(), 1) if risky.search(line)]
    assert found == []


def test_html_report_escapes_every_user_string(db, data_dir, tmp_path):
    from labeling.agreement.plots import report_html
    from labeling.agreement.data import import_predictions, load_audit_data
    from labeling.workflow.queue import claim_next, submit_read

    ids = _images(db, n=4)
    readers = [add_user(db, f"r{i}", "a long password", ["reader"], actor=SHELL) for i in range(2)]
    for r in readers:
        while (c := claim_next(db, r)) is not None:
            submit_read(db, r, c.image_id, "N" if c.image_id % 2 else "L1", now=dt.datetime.fromisoformat(c.claimed_at)
                        + dt.timedelta(seconds=1))
    shas = [r[0] for r in db.execute("SELECT sha256 FROM images ORDER BY id")]
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame([{"image_sha256": s, "split": "test", "fold": 0, "movement": "MV0", "label": "N", "predicted": "N",
                   **{f"prob_{c}": 1.0 if c == "N" else 0.0 for c in ("N", "L1", "L2", "L3", "R1", "R2", "R3")}}
                  for s in shas]).to_csv(run / "predictions.csv", index=False)
    evil = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    import_predictions(db, run, name=evil, actor=SHELL)
    data = load_audit_data(db)
    page = report_html(data.audit(n_boot=0), points=data.points, boxes=data.boxes, title=evil)
    # Nowhere raw: headings and tables are HTML-escaped, plotly's JSON writes '<' as \u003c.
    assert "<img src=x" not in page and "<script>alert(2)" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "\\u003cimg src=x" in page
    assert len(ids) == 4


def test_prediagnosis_markdown_shows_a_hostile_subject_code_as_text():
    from labeling.agreement.prediagnosis import prediagnose

    md = prediagnose({"MV1": "L3"}, subject="![x](https://example.invalid/b.png)<script>").to_markdown()
    assert "![x](" not in md and "<script>" not in md and "\\!\\[x\\]" in md


# ---- 3. the bad-input corpus through a real browser ----------------------------------------------


@pytest.fixture
def coordinator_account(data_dir):
    db = open_project(data_dir)
    add_user(db, "coord", "a long password", ["coordinator"], actor=SHELL)
    db.close()
    return "coord", "a long password"


def _cli_report(tmp_path, manifest: Path) -> tuple[set[tuple], str]:
    """The command line's report of the same corpus, in a data folder of its own."""
    from labeling.words import plural

    data = tmp_path / "cli-data"
    out = subprocess.run([sys.executable, "-m", "labeling", "import", "--images", str(manifest.parent), "--manifest",
                          str(manifest), "--json"], cwd=ROOT, env={**os.environ, "FNP_DATA_DIR": str(data)},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr[-2000:]  # 1: imported, with errors in the report
    report = json.loads(out.stdout)
    rows = {(i["severity"], i["file"], "" if i["row"] is None else str(i["row"]), i["reason"]) for i in report["issues"]}
    return rows, f"{plural(report['added'], 'image')} added"


def _upload(page, manifest: Path, photos: list[Path]) -> None:
    """Put the files in the two uploaders and wait until none is still uploading (its chip shows a
    spinner); try again if a rerun of the page swallowed them."""
    done = """() => {
        const boxes = [...document.querySelectorAll('[data-testid="stFileUploader"]')];
        return boxes.length >= 2 && boxes.every(b => b.querySelector('[data-testid="stFileChip"]'))
            && !document.querySelector('[data-testid="stFileChipIconSpinner"]')
            && !document.querySelector('[data-testid="stStatusWidget"]');
    }"""
    for attempt in range(3):
        page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000)
        inputs = page.locator('[data-testid="stFileUploader"] input[type="file"]')
        inputs.nth(0).set_input_files(str(manifest))
        inputs.nth(1).set_input_files([str(p) for p in photos])
        try:
            page.wait_for_function(done, timeout=60_000)
            return
        except Exception:  # noqa: BLE001 - playwright's TimeoutError; the last attempt re-raises
            if attempt == 2:
                raise


@pytest.mark.slow
def test_import_page_reports_the_bad_input_corpus_like_the_command_line(coordinator_account, server, page, tmp_path,
                                                                        astronaut):
    from labeling.csvsafe import safe_csv_cell

    manifest, expect = build_hostile_corpus(tmp_path / "in", astronaut)
    cli_rows, cli_added = _cli_report(tmp_path, manifest)
    photos = sorted(p for p in (tmp_path / "in").iterdir() if p.name != "manifest.csv")

    name, password = coordinator_account
    page.goto(server)
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Import").click()
    page.get_by_text("Import photos").first.wait_for()
    _upload(page, manifest, photos)
    page.get_by_role("button", name="Import", exact=True).click()
    page.get_by_text(cli_added).first.wait_for(timeout=120_000)
    assert "Traceback" not in page.content()

    with page.expect_download() as download:
        page.get_by_role("button", name="Download this report (CSV)").click()
    data = Path(download.value.path()).read_bytes()
    assert_formula_safe(data, [f"{f}.jpg" for f in FORMULAS[:4]])
    browser_rows = {tuple(r) for r in _cells(data)[1:]}
    # The same rows as the command line (whose text is not yet formula-safe: it is not a CSV).
    assert browser_rows == {(s, safe_csv_cell(f), row, safe_csv_cell(reason)) for s, f, row, reason in cli_rows}
    for file, (severity, phrase) in expect.items():
        if severity != "ok":
            assert any(r[0] == severity and r[1] == safe_csv_cell(file) and phrase.lower() in r[3].lower()
                       for r in browser_rows), (file, severity, phrase)
    assert not {r[1] for r in browser_rows} & {"huge.jpg", "noface.jpg", "twofaces.jpg"}  # imported without remark

    # A manifest that is not a CSV at all: a clear refusal, nothing imported.
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\x00\x01\x02 not text")
    _upload(page, bad, photos[:1])
    page.get_by_role("button", name="Import", exact=True).click()
    page.get_by_text("Nothing was imported").wait_for()
    assert "binary data" in page.content()


# ---- 4. sign-in throttling and idle sessions ---------------------------------------------------------


def test_sign_in_throttling_per_name_with_expiry(db):
    from labeling.accounts.auth import LOCKOUT, MAX_FAILURES, sign_in

    add_user(db, "reader1", "a long password", ["reader"], actor=SHELL)
    t0 = dt.datetime.now(dt.timezone.utc)
    for i in range(MAX_FAILURES):
        assert sign_in(db, "Reader1 " if i % 2 else "reader1", "nope", now=t0).message == "Wrong user name or password."
    locked = sign_in(db, "reader1", "a long password", now=t0)
    assert locked.user is None and "Too many failed attempts" in locked.message  # even the right password
    assert sign_in(db, "someone-else", "nope", now=t0).message == "Wrong user name or password."  # per name
    later = dt.datetime.now(dt.timezone.utc) + LOCKOUT + dt.timedelta(seconds=1)  # the failures are stamped with the real clock
    assert sign_in(db, "reader1", "a long password", now=later).user is not None  # the lock ends by itself
    # An unknown name is throttled the same way and answers the same as a wrong password: no enumeration.
    for _ in range(MAX_FAILURES):
        assert sign_in(db, "ghost", "nope", now=t0).message == "Wrong user name or password."
    assert "Too many failed attempts" in sign_in(db, "ghost", "nope", now=t0).message
    actions = [r[0] for r in db.execute("SELECT action FROM audit_log WHERE entity_id = 'reader1' ORDER BY id")]
    assert actions.count("login.failed") == MAX_FAILURES and "login.locked" in actions and actions[-1] == "login.ok"


def test_throttling_survives_a_restart_and_cannot_be_reset_by_sql(db, data_dir):
    from labeling.accounts.auth import MAX_FAILURES, sign_in

    add_user(db, "reader1", "a long password", ["reader"], actor=SHELL)
    for _ in range(MAX_FAILURES):
        sign_in(db, "reader1", "nope")
    raw = sqlite3.connect(database_path(data_dir))
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute("DELETE FROM audit_log WHERE action = 'login.failed'")
    raw.close()
    fresh = open_project(data_dir)  # another server process, or after a restart
    assert "Too many failed attempts" in sign_in(fresh, "reader1", "a long password").message
    fresh.conn.close()


def test_unknown_names_cost_a_password_check_too(db, monkeypatch):
    import labeling.accounts.users as users

    calls = []
    real = users._hasher

    class Counting:
        def hash(self, password):
            return real.hash(password)

        def verify(self, stored, password):
            calls.append(stored)
            return real.verify(stored, password)

    monkeypatch.setattr(users, "_hasher", Counting())
    add_user(db, "reader1", "a long password", ["reader"], actor=SHELL)
    assert users.check_password(db, "reader1", "nope") is None
    assert users.check_password(db, "nobody-at-all", "nope") is None
    assert len(calls) == 2 and calls[1].startswith("$argon2id$")


def test_sessions_end_when_idle_expired_deactivated_or_revoked_and_store_no_token(db, data_dir):
    from labeling.accounts import sessions
    from labeling.workflow import settings
    from labeling.accounts.users import set_active

    reader = add_user(db, "reader1", "a long password", ["reader"], actor=SHELL)
    other = add_user(db, "reader2", "a long password", ["reader"], actor=SHELL)
    t = dt.datetime.now(dt.timezone.utc)
    idle = dt.timedelta(minutes=settings.get(db, "session_idle_minutes"))
    longest = dt.timedelta(hours=settings.get(db, "session_max_hours"))
    tokens = {k: sessions.start_session(db, reader, now=t)[0] for k in ("idle", "busy", "mine", "theirs")}
    # Idle: alive just inside the limit (which counts as activity), gone once idle past it.
    assert sessions.session_for(db, tokens["idle"], now=t + idle - dt.timedelta(seconds=5)) is not None
    assert sessions.session_for(db, tokens["idle"], now=t + 2 * idle) is None
    # Busy all day: still ends at the absolute limit.
    step = t
    while step + idle / 2 < t + longest:
        step += idle / 2
        assert sessions.session_for(db, tokens["busy"], now=step) is not None
    assert sessions.session_for(db, tokens["busy"], now=t + longest + dt.timedelta(seconds=1)) is None
    # Sign-out everywhere ends this reader's sessions, not another reader's.
    theirs, _ = sessions.start_session(db, other, now=t)
    assert sessions.end_all_sessions(db, reader, now=t) == 2
    assert sessions.session_for(db, tokens["mine"], now=t) is None and sessions.session_for(db, theirs, now=t)
    # Deactivation ends the other reader's session at once.
    set_active(db, "reader2", False, actor=SHELL)
    assert sessions.session_for(db, theirs, now=t) is None
    why = dict(db.execute("SELECT token_sha256, revoked_why FROM sessions").fetchall())
    assert why[sessions.token_hash(tokens["idle"])] == "idle" and why[sessions.token_hash(tokens["busy"])] == "expired"
    assert why[sessions.token_hash(theirs)] == "account deactivated"
    dump = "\n".join(sqlite3.connect(database_path(data_dir)).iterdump())
    assert not any(tok in dump for tok in [*tokens.values(), theirs])  # only hashes are stored
    assert sessions.session_for(db, "forged-" + tokens["idle"][7:], now=t) is None


# ---- 4. history cannot be rewritten -------------------------------------------------------------------

APPEND_ONLY = {"reads", "adjudications", "adjudication_undos", "audit_log", "quality_overrides", "range_tables",
               "check2_results", "crop_corrections", "model_runs", "model_predictions", "gold_marks", "qc_answers", "landmark_corrections"}


def _one_row_each(db) -> None:
    (image_id,) = _images(db, n=1)
    with transaction(db) as conn:
        uid = conn.execute("INSERT INTO users (name, password_hash, roles, created_at) VALUES ('u', 'x', 'reader', 'x')"
                           ).lastrowid
        conn.execute("INSERT INTO reads (image_id, reader_id, label, submitted_at) VALUES (?, ?, 'N', 'x')", (image_id, uid))
        adj = conn.execute("INSERT INTO adjudications (image_id, adjudicator_id, decision, label, at) VALUES (?, ?, "
                           "'final', 'N', 'x')", (image_id, uid)).lastrowid
        conn.execute("INSERT INTO adjudication_undos (adjudication_id, adjudicator_id, at) VALUES (?, ?, 'x')", (adj, uid))
        conn.execute("INSERT INTO gold_marks (image_id, gold, actor, at) VALUES (?, 1, 'c', 'x')", (image_id,))
        qc = conn.execute("INSERT INTO qc_items (reader_id, kind, image_id, created_at) VALUES (?, 'mirror', ?, 'x')",
                          (uid, image_id)).lastrowid
        conn.execute("INSERT INTO qc_answers (qc_item_id, reader_id, label, submitted_at) VALUES (?, ?, 'N', 'x')",
                     (qc, uid))
        audit(conn, "tester", "test.event")
        conn.execute("INSERT INTO quality_overrides (image_id, flag, value, actor, at) VALUES (?, 'blurry', 1, 'c', 'x')",
                     (image_id,))
        conn.execute("INSERT INTO range_tables (version, created_at, actor, params, table_json) VALUES ('v', 'x', 'c', "
                     "'{}', '{}')")
        conn.execute("INSERT INTO check2_results (image_id, range_version, consensus, outcome, at) VALUES (?, 'v', 'N', "
                     "'accepted', 'x')", (image_id,))
        conn.execute("INSERT INTO crop_corrections (image_id, x0, y0, x1, y1, reason, actor, at) VALUES (?, 0, 0, 1, 1, "
                     "'r', 'c', 'x')", (image_id,))
        run = conn.execute("INSERT INTO model_runs (name, imported_at, actor, predictions_sha256, n_predictions) VALUES "
                           "('m', 'x', 'c', 'h', 1)").lastrowid
        conn.execute("INSERT INTO model_predictions (run_id, row, image_sha256, split, predicted) VALUES (?, 0, 'h', "
                     "'test', 'N')", (run,))
        conn.execute("INSERT INTO landmark_corrections (image_id, points, previous, moved, actor, at) VALUES "
                     "(?, '[]', '[]', '[]', 'c', 'x')", (image_id,))


def test_every_append_only_table_refuses_update_and_delete_from_any_sql_client(db, data_dir):
    guarded = {r[0] for r in db.execute("SELECT tbl_name FROM sqlite_master WHERE type = 'trigger' AND "
                                        "(name LIKE '%\\_no\\_update' ESCAPE '\\' OR name LIKE '%\\_no\\_delete' ESCAPE '\\')")}
    assert guarded == APPEND_ONLY  # the documented list (docs/architecture.md), no more, no less
    _one_row_each(db)
    raw = sqlite3.connect(database_path(data_dir))  # knows nothing of our code
    for table in sorted(APPEND_ONLY):
        before = raw.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        assert before >= 1, table
        for sql in (f"UPDATE {table} SET rowid = rowid", f"DELETE FROM {table}",
                    f"INSERT OR REPLACE INTO {table} SELECT * FROM {table}"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                raw.execute(sql)
        assert raw.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == before
    raw.close()


def test_no_code_updates_or_deletes_an_append_only_table():
    pattern = re.compile(r"(UPDATE|DELETE\s+FROM|REPLACE\s+INTO|DROP\s+TRIGGER|DROP\s+TABLE)\s+(\w+)", re.I)
    found = []
    for path in SOURCES:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for m in pattern.finditer(line):
                if m.group(2).lower() in APPEND_ONLY or m.group(1).upper().startswith("DROP"):
                    found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert found == []


# ---- 4. exports stay in their folder -------------------------------------------------------------------


def test_export_names_cannot_follow_a_symlink_out(tmp_path):
    from labeling.export.dataset import ExportError, export_path

    root = tmp_path / "exports"
    root.mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (root / "v1").symlink_to(outside)
    (root / "dangling").symlink_to(tmp_path / "nowhere")
    for name in ("v1", "dangling", "../elsewhere", str(outside)):
        with pytest.raises(ExportError):
            export_path(name, root)


def test_a_killed_exports_partial_folder_is_removed_once_its_process_is_gone(tmp_path):
    from labeling.export.dataset import remove_stale_partials

    root = tmp_path / "exports"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for name in (f".v1.partial-{dead.pid}-abcd1234", f".v2.partial-{os.getpid()}-abcd1234", ".v3.partial-dead"):
        (root / name / "train").mkdir(parents=True)
    assert remove_stale_partials(root) == [f".v1.partial-{dead.pid}-abcd1234"]
    assert sorted(p.name for p in root.iterdir()) == [".v2.partial-" + f"{os.getpid()}-abcd1234", ".v3.partial-dead"]
