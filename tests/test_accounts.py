"""Accounts and who acts: admins manage users (roles, passwords, deactivation, unlock), the last
admin stays, changes apply to the very next action, sign-in throttling is per name and address,
and the command line acts as a named user or as the audited shell, never as an invented user."""
import datetime as dt
import uuid

import pytest

from db.access import transaction
from labeling.accounts import auth
from labeling.accounts import sessions
from labeling.accounts import users
from labeling.accounts.actors import SystemActor, User
from labeling.cli import main as cli
from labeling.accounts.permissions import PermissionDenied
from labeling.workflow.queue import claim_next, ensure_slots
from tests.conftest import SHELL

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL (tests/conftest.py)


@pytest.fixture
def team(db):
    mk = lambda name, roles: users.add_user(db, name, "a long password", roles, actor=SHELL)  # noqa: E731
    return {"admin": mk("ada", ["admin"]), "reader": mk("rob", ["reader"]), "coord": mk("cody", ["coordinator"])}


def audit_actions(db):
    return [r[0] for r in db.execute("SELECT action FROM audit_log ORDER BY id")]


def test_roles_change_and_apply_to_the_next_action(db, team):
    with transaction(db) as conn:
        conn.execute("INSERT INTO subjects (code, created_at) VALUES ('S', 'x')")
        conn.execute("INSERT INTO images (sha256, subject_id, movement, source, mirrored, width, height, format, mode, "
                     "bytes, stored_path, imported_at) VALUES (?, 1, 'MV0', 'hospital', 0, 9, 9, 'JPEG', 'RGB', 1, 'x', "
                     "'x')", (uuid.uuid4().hex,))
    ensure_slots(db)
    stale = team["reader"]  # what a page still holds from the last run
    users.set_roles(db, "rob", ["auditor"], actor=team["admin"])
    with pytest.raises(PermissionDenied, match="rob may not read submit"):
        claim_next(db, stale)  # the User object still says reader; the database says otherwise
    users.set_roles(db, "rob", ["reader", "auditor"], actor=team["admin"])
    assert claim_next(db, stale) is not None
    assert "user.roles_changed" in audit_actions(db)


def test_the_last_active_admin_cannot_be_removed(db, team):
    with pytest.raises(users.UserError, match="last active admin"):
        users.set_roles(db, "ada", ["reader"], actor=team["admin"])
    with pytest.raises(users.UserError, match="last active admin"):
        users.set_active(db, "ada", False, actor=SHELL)
    users.add_user(db, "bea", "a long password", ["admin"], actor=team["admin"])
    users.set_active(db, "ada", False, actor=SHELL)  # now there is another admin
    with pytest.raises(users.UserError, match="last active admin"):
        users.set_roles(db, "bea", ["coordinator"], actor=SHELL)
    assert not users.get_user(db, "ada").active


def test_deactivation_signs_out_everywhere_and_gives_back_held_images(db, team):
    with transaction(db) as conn:
        conn.execute("INSERT INTO subjects (code, created_at) VALUES ('S', 'x')")
        conn.execute("INSERT INTO images (sha256, subject_id, movement, source, mirrored, width, height, format, mode, "
                     "bytes, stored_path, imported_at) VALUES (?, 1, 'MV0', 'hospital', 0, 9, 9, 'JPEG', 'RGB', 1, 'x', "
                     "'x')", (uuid.uuid4().hex,))
    ensure_slots(db)
    held = claim_next(db, team["reader"])
    tokens = [sessions.start_session(db, team["reader"])[0] for _ in range(2)]
    users.set_active(db, "rob", False, actor=team["admin"])
    assert all(sessions.session_for(db, t) is None for t in tokens)
    assert auth.sign_in(db, "rob", "a long password").user is None
    assert db.execute("SELECT reader_id FROM read_slots WHERE image_id = ? AND slot = ?",
                      [held.image_id, held.slot]).fetchone()[0] is None
    users.set_active(db, "rob", True, actor=team["admin"])
    assert auth.sign_in(db, "rob", "a long password").user is not None
    assert {"user.deactivated", "user.activated"} <= set(audit_actions(db))


def test_password_reset_and_own_change_end_the_other_sessions(db, team):
    old, _ = sessions.start_session(db, team["coord"])
    assert users.reset_password(db, "cody", "a brand new password", actor=team["admin"]) == 1
    assert sessions.session_for(db, old) is None
    assert auth.sign_in(db, "cody", "a long password").user is None
    assert auth.sign_in(db, "cody", "a brand new password").user is not None
    here, mine = sessions.start_session(db, team["coord"])
    there, _ = sessions.start_session(db, team["coord"])
    with pytest.raises(users.UserError, match="current password is wrong"):
        users.change_own_password(db, team["coord"], "guess", "another new password")
    with pytest.raises(users.UserError, match="at least 10"):
        users.change_own_password(db, team["coord"], "a brand new password", "short")
    assert users.change_own_password(db, team["coord"], "a brand new password", "another new password",
                                     keep_session=mine.id) == 1
    assert sessions.session_for(db, here) is not None and sessions.session_for(db, there) is None


def test_only_admins_and_the_shell_manage_accounts(db, team):
    for who in (team["reader"], team["coord"]):
        with pytest.raises(PermissionDenied):
            users.add_user(db, "eve", "a long password", ["admin"], actor=who)
        with pytest.raises(PermissionDenied):
            users.reset_password(db, "ada", "a long password!", actor=who)
        with pytest.raises(PermissionDenied):
            auth.unlock(db, "ada", actor=who)
    with pytest.raises(PermissionDenied):  # an invented user has no account behind it
        users.add_user(db, "eve", "a long password", ["admin"], actor=User(0, "x", frozenset({"admin"})))
    assert users.get_user(db, "eve") is None


def test_throttling_is_per_name_and_address_and_an_admin_unlocks(db, team):
    for _ in range(auth.MAX_FAILURES):
        auth.sign_in(db, "rob", "wrong", client="10.0.0.66")  # a colleague mistyping, or someone trying
    assert "Too many failed attempts" in auth.sign_in(db, "rob", "a long password", client="10.0.0.66").message
    assert auth.sign_in(db, "rob", "a long password", client="10.0.0.7").user is not None  # the owner, elsewhere
    assert auth.locked_names(db) == []  # the owner's success reset the count
    # Many addresses at once lock the name for everyone, until an admin unlocks it.
    for i in range(auth.MAX_FAILURES_ANY):
        auth.sign_in(db, "cody", "wrong", client=f"10.1.0.{i}")
    assert "Too many" in auth.sign_in(db, "cody", "a long password", client="10.0.0.8").message
    assert auth.locked_names(db) == ["cody"]
    auth.unlock(db, "cody", actor=team["admin"])
    assert auth.sign_in(db, "cody", "a long password", client="10.0.0.8").user is not None
    assert "login.unlocked" in audit_actions(db)


def test_the_shell_never_reads_or_adjudicates(db, team):
    from labeling.workflow.queue import submit_read
    from labeling.workflow.states import adjudicate

    shell = SystemActor.command_line("test")
    assert shell.name.startswith("system:test (")
    with pytest.raises(PermissionDenied, match="a named user must"):
        submit_read(db, shell, 1, "N")
    with pytest.raises(PermissionDenied, match="a named user must"):
        adjudicate(db, shell, 1, "N")
    with pytest.raises(ValueError):
        SystemActor("cli")  # a system actor is named as such in the audit log


def test_command_line_users_acts_as_the_shell_or_a_named_admin(db, team, data_dir, monkeypatch, capsys):
    monkeypatch.setenv("FNP_PASSWORD", "a long password")
    assert cli(["users", "add", "newbie", "--role", "reader"]) == 0
    assert cli(["users", "roles", "newbie", "--role", "reader", "--role", "adjudicator", "--as-user", "ada"]) == 0
    assert users.get_user(db, "newbie").roles == {"reader", "adjudicator"}
    assert cli(["users", "deactivate", "newbie"]) == 0 and not users.get_user(db, "newbie").active
    assert cli(["users", "reactivate", "newbie"]) == 0 and users.get_user(db, "newbie").active
    monkeypatch.setenv("FNP_PASSWORD", "yet another password")
    assert cli(["users", "reset-password", "newbie"]) == 0
    assert auth.sign_in(db, "newbie", "yet another password").user is not None
    assert cli(["users", "unlock", "newbie"]) == 0
    assert cli(["users", "sign-out", "newbie"]) == 0
    # A named user's roles are checked like in the app; an unknown one is refused.
    assert cli(["users", "deactivate", "ada", "--as-user", "rob"]) == 2
    assert "rob may not users manage" in capsys.readouterr().err
    assert cli(["users", "deactivate", "ada", "--as-user", "nobody"]) == 2
    assert cli(["users", "deactivate", "ada"]) == 2  # the last admin
    actors = {r[0] for r in db.execute("SELECT actor FROM audit_log WHERE action LIKE 'user.%' OR action LIKE 'login.%'")}
    assert "ada" in actors and any(a.startswith("system:users (") for a in actors)
    assert not actors & {"cli", "admin", "system"}  # no anonymous or invented actor


def test_sessions_carry_the_account_as_it_is_now(db, team):
    token, _ = sessions.start_session(db, team["coord"], now=dt.datetime.now(dt.timezone.utc))
    users.set_roles(db, "cody", ["coordinator", "auditor"], actor=team["admin"])
    assert sessions.session_for(db, token).user.roles == {"coordinator", "auditor"}


def test_single_sign_on_maps_an_e_mail_to_an_active_account_only(db, team):
    users.add_user(db, "Dr.Who@Hospital.example", "a long password", ["reader"], actor=SHELL)
    session = sessions.sso_session(db, "dr.who@hospital.example")
    assert session.user.name == "Dr.Who@Hospital.example" and session.user.roles == {"reader"} and session.id is None
    assert sessions.sso_session(db, "stranger@hospital.example") is None
    users.set_active(db, "Dr.Who@Hospital.example", False, actor=SHELL)
    assert sessions.sso_session(db, "dr.who@hospital.example") is None
