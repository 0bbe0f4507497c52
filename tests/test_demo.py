"""The SYNTHETIC demo's paths: the range box minimum fitted to the demo once, audited, whichever
path loads it (Home page or `labeling demo`); carrying it on to final labels as a coordinator, from
the command line and from the Home page; who may do that."""
import json

import pytest
from streamlit.testing.v1 import AppTest

from labeling.workflow import settings
from labeling.demo.project import carry_blockers, carry_to_final, demo_range_min_count, demo_status, load_demo
from labeling.intake.importer import import_folder
from labeling.accounts.permissions import PermissionDenied
from labeling.accounts.users import add_user
from tests.conftest import ROOT, SHELL, photo_folder, signed_in


def _setting_changes(db):
    return [(actor, json.loads(detail)) for actor, detail in db.execute(
        "SELECT actor, detail FROM audit_log WHERE action = 'setting.changed' AND entity_id = 'range_min_count'")]


def test_the_demo_sets_the_range_minimum_to_the_images_its_cells_hold(db, data_dir):
    # 2 subjects (N and L1): one image per movement x class cell but MV0's N (the mild subject's rest
    # photo is N too), so 1 image per cell: the default of 5 would leave check 2 nothing to learn.
    coordinator = add_user(db, "coord", "a long password", ["coordinator"], actor=SHELL)
    res = load_demo(db, data_dir, subjects=2, seed=3, workers=2, actor=coordinator)
    assert res.range_min_count == 1 and settings.get(db, "range_min_count") == 1
    assert "2 synthetic subjects give 1 image(s) per movement x class cell" in res.range_note
    assert "is now 1 (was 5)" in res.range_note
    (actor, detail), = _setting_changes(db)
    assert actor == "coord" and detail["before"] == 5 and detail["value"] == 1 and "synthetic demo" in detail["reason"]
    status = demo_status(db)
    assert status.synthetic_only and status.images_per_cell == 1 and status.range_min_count == 1
    assert "2 synthetic subjects give 1 image(s)" in status.counts_sentence()
    # Loading more subjects never raises it again, and says so.
    again = load_demo(db, data_dir, subjects=2, seed=4, workers=2, actor=coordinator)
    assert again.range_min_count == 1 and "stays 1" in again.range_note and len(_setting_changes(db)) == 1


def test_the_documented_minimum_per_demo_size():
    # docs/workflow.md's table: S subjects give S // 7 images per cell; the minimum is one fewer (the
    # out-of-fold figure learns each cell without one subject), at least 1, up to the default 5.
    got = {subjects: min(5, demo_range_min_count(subjects // 7)) for subjects in (7, 14, 21, 28, 35, 42, 70)}
    assert got == {7: 1, 14: 1, 21: 2, 28: 3, 35: 4, 42: 5, 70: 5}


def test_a_project_with_real_photos_keeps_its_range_minimum(db, data_dir, astronaut, tmp_path):
    manifest = photo_folder(tmp_path / "real", astronaut, 1, 256)
    assert import_folder(db, data_dir, tmp_path / "real", manifest, actor=SHELL).added == 1
    res = load_demo(db, data_dir, subjects=1, seed=3, workers=2, actor=SHELL)
    assert res.range_min_count == 5 and settings.get(db, "range_min_count") == 5
    assert "also holds real photos" in res.range_note and _setting_changes(db) == []
    assert not demo_status(db).synthetic_only


def test_who_may_carry_the_demo_on(db, data_dir):
    reader = add_user(db, "reader1", "a long password", ["reader"], actor=SHELL)
    admin = add_user(db, "admin1", "a long password", ["admin"], actor=SHELL)
    coordinator = add_user(db, "coord", "a long password", ["coordinator"], actor=SHELL)
    assert carry_blockers(coordinator) == [] and carry_blockers(SHELL) == []
    # An admin may load the demo but learning the range table is a coordinator's.
    assert carry_blockers(admin) == ["learn the range table (needs coordinator)"]
    assert len(carry_blockers(reader)) == 4
    with pytest.raises(PermissionDenied, match="learn the range table"):
        carry_to_final(db, data_dir, actor=admin)


def test_a_coordinator_carries_the_demo_to_final_labels(db, data_dir):
    # The same path as `labeling demo --final` and the Home page's button, as a signed-in coordinator
    # (no account management, no settings): the simulated accounts are the demo's own.
    coordinator = add_user(db, "coord", "a long password", ["coordinator"], actor=SHELL)
    load_demo(db, data_dir, subjects=2, seed=3, workers=2, actor=coordinator)
    steps = []
    done = carry_to_final(db, data_dir, accuracy=0.8, seed=3, actor=coordinator,
                          progress=lambda d, t, what: steps.append(what))
    assert done["reads"] == 28 and done["measured"] == 14 and sum(done["check2"].values()) > 0
    assert done["final"] == done["images"] == 14 and done["agreed"] == 0
    assert {"simulated reads", "measuring", "range table and check 2"} <= set(steps)
    created = db.execute("SELECT actor, detail FROM audit_log "
                         "WHERE action = 'user.created' AND actor = 'coord'").fetchall()
    assert len(created) == 3 and all(a == "coord" and json.loads(d)["simulated"] for a, d in created)
    # Everything the simulated people did is flagged; no simulated account can sign in.
    assert db.execute("SELECT count(*) FROM reads WHERE simulated = 0").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM adjudications WHERE simulated = 0").fetchone()[0] == 0


def _home(user):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    signed_in(at, user)
    return at.run()


def _texts(at):
    return " ".join([*(e.value for e in at.markdown), *(e.value for e in at.success), *(e.value for e in at.caption)])


def test_the_home_page_carries_the_demo_on_with_the_counts_in_words(db, data_dir):
    boss = add_user(db, "boss", "a long password", ["admin", "coordinator"], actor=SHELL)
    load_demo(db, data_dir, subjects=2, seed=3, workers=2, actor=boss)
    at = _home(boss)
    assert not at.exception
    text = _texts(at)
    assert "2 synthetic subjects give 1 image(s) in the smallest movement x class cell" in text
    assert "0 of 14" in text
    carry = [b for b in at.button if b.label.startswith("Carry the demo on to final labels")]
    assert len(carry) == 1
    carry[0].click()
    at.run()
    assert not at.exception
    text = _texts(at)
    assert "SYNTHETIC demo carried on: 28 simulated read(s)" in text
    assert "14 of 14 image(s) now have a final label" in text
    assert not [b for b in at.button if b.label.startswith("Carry the demo on")]  # nothing left to carry


def test_the_home_page_says_who_may_carry_the_demo_on(db, data_dir):
    admin = add_user(db, "admin1", "a long password", ["admin"], actor=SHELL)
    reader = add_user(db, "reader1", "a long password", ["reader"], actor=SHELL)
    load_demo(db, data_dir, subjects=1, seed=3, workers=2, actor=SHELL)
    at = _home(admin)
    assert not at.exception and not [b for b in at.button if b.label.startswith("Carry the demo on")]
    assert "needs a coordinator" in _texts(at) and "learn the range table (needs coordinator)" in _texts(at)
    at = _home(reader)  # a blinded reader sees no per-state counts and no demo controls
    assert not at.exception and "Synthetic demo" not in [s.value for s in at.subheader]


def test_the_demo_writes_for_every_role(db, data_dir):
    # The demo's own writes need 'demo.load' (coordinator, admin, the shell); a refused one writes
    # nothing. Carrying on also needs each step's role (above): a refusal there writes nothing either.
    from labeling.accounts.actors import SystemActor
    from labeling.demo.project import fit_range_min_count
    from labeling.accounts.users import add_simulated_user

    load_demo(db, data_dir, subjects=1, seed=3, workers=1, actor=SHELL)
    settings.change(db, "range_min_count", 5, SHELL)
    roles = ["reader", "adjudicator", "coordinator", "auditor", "admin"]
    actors = [add_user(db, f"m-{r}", "a long password", [r], actor=SHELL) for r in roles]
    actors.append(SystemActor("system:matrix"))
    calls = {"add_simulated_user": lambda a: add_simulated_user(db, f"sim-{a.name.replace(':', '-')}", "reader", a),
             "fit_range_min_count": lambda a: fit_range_min_count(db, actor=a),
             "carry_to_final": lambda a: carry_to_final(db, data_dir, actor=a)}
    allowed = {}
    for actor in actors:
        for name, call in calls.items():
            before = db.conn.total_changes
            try:
                call(actor)
                allowed[actor.name, name] = True
            except PermissionDenied:
                allowed[actor.name, name] = False
                assert db.conn.total_changes == before, f"refused {name} as {actor.name} still wrote"
            if name == "fit_range_min_count" and allowed[actor.name, name]:
                settings.change(db, "range_min_count", 5, SHELL)  # so the next actor has something to change
    assert [k for k, v in allowed.items() if v] == [
        ("m-coordinator", "add_simulated_user"), ("m-coordinator", "fit_range_min_count"),
        ("m-coordinator", "carry_to_final"), ("m-admin", "add_simulated_user"), ("m-admin", "fit_range_min_count"),
        ("system:matrix", "add_simulated_user"), ("system:matrix", "fit_range_min_count"),
        ("system:matrix", "carry_to_final")]
    # An allowed simulated account is no way in: nobody knows its password.
    from labeling.accounts.users import check_password

    assert check_password(db, "sim-m-admin", "") is None and check_password(db, "sim-m-admin", "password") is None
