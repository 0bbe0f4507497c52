"""What users run: the real server (`streamlit run app.py`) with several neurologists in real
Chromium at once, reloads, second tabs, deep links, sign-out everywhere, double and held keys, and
two server processes on one project. The database is checked afterwards, every time."""
import asyncio
import time

import pytest

from labeling.workflow import settings
from labeling.demo.project import load_demo
from labeling.accounts.users import add_user
from tests.browser import (PASSWORD, Server, chromium, look_and_press, new_page, painted, sign_in,  # noqa: F401
                           sign_out, wait_for_new_image)
from tests.conftest import SHELL
from tests.readers import readers_at_once

pytestmark = pytest.mark.slow


def _project(db, data_dir, subjects, readers, seed=3):
    load_demo(db, data_dir, subjects=subjects, seed=seed, workers=1, actor=SHELL)
    names = [add_user(db, f"reader{i}", PASSWORD, ["reader"], actor=SHELL).name for i in range(readers)]
    return names


def _check_reads(db, runs, n_images, reads_per_image=2):
    """Every acknowledged read is stored once, with its label, by its reader; nothing else is."""
    if db.backend == "sqlite":
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for run in runs:  # what the page took, in order, is what is stored: reads and QC answers alike
        stored = db.execute(
            "SELECT label FROM (SELECT r.label, r.submitted_at FROM reads r JOIN users u ON u.id = r.reader_id "
            "WHERE u.name = :name AND r.kind = 'read' UNION ALL SELECT a.label, a.submitted_at FROM qc_answers a "
            "JOIN users u ON u.id = a.reader_id WHERE u.name = :name AND a.kind = 'answer') answers "
            "ORDER BY submitted_at", {"name": run.name}).fetchall()
        assert [x for (x,) in stored] == run.acknowledged, run.name
    per_image = db.execute("SELECT image_id, count(*), count(DISTINCT reader_id) FROM reads WHERE kind = 'read' "
                           "GROUP BY image_id").fetchall()
    assert len(per_image) == n_images
    assert all(n == reads_per_image and readers == reads_per_image for _, n, readers in per_image)  # no double claim
    assert db.execute("SELECT count(*) FROM read_slots WHERE read_id IS NULL").fetchone()[0] == 0
    shown = [r[0] for r in db.execute("SELECT shown_ms FROM reads WHERE kind = 'read'")]
    assert min(shown) >= 400  # every read after the minimum viewing time, as the browser measured it


def test_six_readers_at_once_on_one_server(db, data_dir):
    names = _project(db, data_dir, subjects=4, readers=6)
    server = Server(data_dir)
    try:
        t = time.perf_counter()
        runs = asyncio.run(readers_at_once(server.url, names))
        took = time.perf_counter() - t
    finally:
        server.stop()
    assert [r.errors for r in runs] == [[]] * 6
    qc = db.execute("SELECT count(*) FROM qc_answers").fetchone()[0]
    assert sum(len(r.acknowledged) for r in runs) == 2 * 28 + qc
    assert sum(r.presses for r in runs) > 2 * 28  # double presses were made, and saved nothing extra
    _check_reads(db, runs, 28)
    assert server.errors() == [], server.errors()[:5]
    print(f"6 readers, 56 reads in {took:.0f} s; keypress to next image median "
          f"{sorted(x for r in runs for x in r.latencies_ms)[len([x for r in runs for x in r.latencies_ms]) // 2]:.0f} ms")


@pytest.mark.both_backends
def test_two_server_processes_share_one_queue_and_the_sessions(db, data_dir):
    """Two servers on one project (an SQLite file, or one PostgreSQL), six readers split across them."""
    names = _project(db, data_dir, subjects=2, readers=6, seed=5)
    servers = [Server(data_dir), Server(data_dir)]
    try:
        runs = asyncio.run(readers_at_once([s.url for s in servers], names))
    finally:
        for s in servers:
            s.stop()
    assert [r.errors for r in runs] == [[]] * 6
    _check_reads(db, runs, 14)
    assert [s.errors() for s in servers] == [[], []]


def test_reload_second_tab_deep_link_and_sign_out_everywhere(db, data_dir, chromium):  # noqa: F811
    names = _project(db, data_dir, subjects=1, readers=1)
    server = Server(data_dir)
    try:
        url = server.url
        desk = chromium.new_context(viewport={"width": 1366, "height": 768})
        tab = desk.new_page()
        tab.set_default_timeout(60_000)
        # A deep link before sign-in lands on the page asked for after it.
        sign_in(tab, url, names[0], path="/read")
        assert tab.url.endswith("/read")
        first = wait_for_new_image(tab, None)
        tab.reload()  # F5: still signed in, still on Read, the same image
        tab.get_by_text(f"Signed in as {names[0]}").wait_for()
        assert tab.url.endswith("/read") and wait_for_new_image(tab, None) == first
        second_tab = desk.new_page()  # a second tab of the same browser: the same session
        second_tab.goto(url + "/read")
        assert wait_for_new_image(second_tab, None) == first
        # A label in the first tab; the second still shows that image: its key saves nothing.
        look_and_press(tab, "n", None)
        wait_for_new_image(tab, first)
        second_tab.wait_for_timeout(600)
        second_tab.keyboard.press("k")
        second_tab.get_by_text("nothing was saved").first.wait_for()
        assert db.execute("SELECT label FROM reads").fetchall() == [("N",)]
        status = desk.new_page()  # a deep link in a new tab
        status.goto(url + "/status")
        status.get_by_text("Your reads").wait_for()
        # Another computer of the same reader.
        laptop = new_page(chromium)
        sign_in(laptop, url, names[0], path="/status")
        # Sign out everywhere: this tab goes to the sign-in form, every other session ends.
        sign_out(tab, everywhere=True)
        tab.get_by_text("You are signed out on every device").wait_for()
        second_tab.wait_for_timeout(600)
        second_tab.keyboard.press("n")  # a key in a tab whose session ended: nothing is saved
        second_tab.get_by_text("You are signed out").first.wait_for()
        for page, path in ((second_tab, "/read"), (laptop, "/status")):
            page.goto(url + path)
            page.get_by_role("button", name="Sign in").wait_for()
            assert "/signin?next=" in page.url
        assert db.execute("SELECT count(*) FROM reads").fetchone()[0] == 1
        assert db.execute("SELECT count(*) FROM sessions WHERE revoked_at IS NULL").fetchone()[0] == 0
        # The image held when they left went back to the queue at once.
        assert db.execute("SELECT count(*) FROM read_slots WHERE lease_expires IS NOT NULL AND read_id IS NULL"
                          ).fetchone()[0] == 0
    finally:
        server.stop()
    assert server.errors() == []


def _read_the_rest(page, key, token):
    """Press `key` on the image shown (after the viewing time), and on each next one, until the queue is empty."""
    done = page.get_by_text("Nothing left for you to read")
    while True:
        page.wait_for_timeout(600)
        page.keyboard.press(key)
        page.wait_for_function("prev => (window.__fnpPainted && window.__fnpPainted.token !== prev) || "
                               "document.body.innerText.includes('Nothing left for you to read')", arg=token)
        if done.count():
            return
        token = painted(page)


def test_double_and_held_keys_never_label_the_next_image_nor_decide_the_next_case(db, data_dir, chromium):  # noqa: F811
    names = _project(db, data_dir, subjects=1, readers=2)
    add_user(db, "senior", PASSWORD, ["adjudicator"], actor=SHELL)
    settings.change(db, "check2_enabled", False, SHELL)
    server = Server(data_dir)
    try:
        page = new_page(chromium, 1366, 768)
        sign_in(page, server.url, names[0], path="/read")
        first = wait_for_new_image(page, None)
        page.wait_for_timeout(600)
        page.keyboard.press("n")
        page.wait_for_timeout(60)
        page.keyboard.press("n")  # a double press, 60 ms apart
        second = wait_for_new_image(page, first)
        page.wait_for_timeout(1500)  # long enough for a second read to have landed, had it counted
        assert db.execute("SELECT count(*) FROM reads").fetchone()[0] == 1
        # A held key: one press and 1.5 s of auto-repeat, across the next image's arrival.
        page.wait_for_timeout(600)
        page.keyboard.down("d")
        for _ in range(45):
            page.wait_for_timeout(33)
            page.keyboard.down("d")  # Playwright sends these as repeats, as a held key does
        page.keyboard.up("d")
        third = wait_for_new_image(page, second)  # it came while the key was still held
        page.wait_for_timeout(800)
        assert db.execute("SELECT label FROM reads ORDER BY id").fetchall() == [("N",), ("L1",)]
        # A press right after an image appears, before the viewing time: ignored.
        page.keyboard.press("l")
        fourth = wait_for_new_image(page, third)
        page.keyboard.press("l")
        page.get_by_text("Too quick").wait_for()
        page.wait_for_timeout(800)
        assert db.execute("SELECT label FROM reads ORDER BY id").fetchall() == [("N",), ("L1",), ("R3",)]
        assert painted(page) == fourth
        _read_the_rest(page, "l", fourth)
        other = new_page(chromium, 1366, 768)
        sign_in(other, server.url, names[1], path="/read")
        _read_the_rest(other, "a", wait_for_new_image(other, None))
        assert db.execute("SELECT count(*) FROM reads").fetchone()[0] == 14

        judge = new_page(chromium, 1400, 900)
        sign_in(judge, server.url, "senior", path="/adjudicate")
        case = wait_for_new_image(judge, None)
        judge.wait_for_timeout(600)
        judge.keyboard.press("j")
        judge.wait_for_timeout(60)
        judge.keyboard.press("j")  # double press on the adjudication page
        nxt = wait_for_new_image(judge, case)
        judge.wait_for_timeout(1500)
        assert db.execute("SELECT count(*) FROM adjudications").fetchone()[0] == 1
        judge.keyboard.press("u")  # undo the last decision: the first case comes back
        judge.get_by_text("is undone").wait_for()
        assert wait_for_new_image(judge, nxt) == case
        assert db.execute("SELECT count(*) FROM adjudication_undos").fetchone()[0] == 1
        states = db.execute("SELECT count(*) FROM effective_adjudications").fetchone()[0]
        assert states == 0
    finally:
        server.stop()
    assert server.errors() == []


def test_quality_control_items_look_like_any_image_are_scored_and_never_exported(db, data_dir, chromium):  # noqa: F811
    import re

    from labeling.cli import main as cli
    from labeling.export.dataset import export_dataset

    names = _project(db, data_dir, subjects=2, readers=2, seed=8)
    settings.change(db, "qc_share", 0.5, SHELL)
    settings.change(db, "check2_enabled", False, SHELL)
    server = Server(data_dir)
    try:
        page = new_page(chromium, 1366, 768)
        sign_in(page, server.url, names[0], path="/read")
        token, seen = None, []
        while not page.get_by_text("Nothing left for you to read").count():
            try:
                token = look_and_press(page, "n", token)
            except Exception:  # noqa: BLE001 - the queue ended while waiting for an image
                break
            seen.append((token, page.inner_text("body")))
        other = new_page(chromium, 1366, 768)
        sign_in(other, server.url, names[1], path="/read")
        _read_the_rest(other, "n", wait_for_new_image(other, None))
    finally:
        server.stop()
    qc = db.execute("SELECT count(*) FROM qc_answers WHERE kind = 'answer'").fetchone()[0]
    assert qc > 0  # mirror items came (after the reader's first ten images)
    # Never seen as special: every showing is named by an opaque token, and nothing on the page speaks of QC.
    assert all(re.fullmatch(r"[0-9a-f]{20}", t) for t, _ in seen)
    assert not [t for _, text in seen for t in ("mirror", "gold", "quality", "QC") if t in text]
    # Scored: the reader answered N on flipped copies of images they had called N: consistent.
    assert cli(["agreement", "--json", "--n-boot", "0"]) == 0
    # Never reads, never exported: 14 images, two reads each, 14 crops.
    assert db.execute("SELECT count(*) FROM reads WHERE kind = 'read'").fetchone()[0] == 28
    from labeling.workflow.measuring import measure_pending

    measure_pending(db, data_dir, workers=1, actor=SHELL)  # the crops follow the landmarks
    res = export_dataset(db, data_dir, "qc-check", actor=SHELL, workers=1)
    assert res.images == 14 and len(res.manifest) == 14
    assert len(list((res.path).rglob("*.png"))) == 14
    from labeling.workflow.reader_qc import load_qc, reader_qc

    scored = reader_qc(load_qc(db)).set_index("reader")
    assert scored.mirror_n[names[0]] == db.execute(
        "SELECT count(*) FROM qc_answers a JOIN users u ON u.id = a.reader_id WHERE u.name = ? AND a.kind = 'answer'",
        [names[0]]).fetchone()[0]
    assert scored.mirror_p[names[0]] == 1.0
