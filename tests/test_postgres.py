"""PostgreSQL: the same schema and rules as SQLite, the same study giving the same results on both,
and a project copied from SQLite to PostgreSQL, verified. (The database-facing tests marked
`both_backends` run on both as well; tests/test_readers_server.py runs two servers on one.)"""
import json
import sqlite3

import psycopg
import pytest

from db.project import open_project
from db.copy import CopyError, copy_to_postgres
from db.schema_pg import APPEND_ONLY
from labeling.workflow import settings
from labeling.demo.project import carry_to_final, load_demo
from labeling.workflow.states import final_labels, image_states
from tests.conftest import SHELL


@pytest.fixture
def pg(postgres_cluster):
    name, url = postgres_cluster.create()
    yield url
    postgres_cluster.drop(name)


def test_the_schema_matches_sqlite_table_by_table_and_column_by_column(pg, tmp_path):
    lite = open_project(tmp_path / "lite")
    post = open_project(url=pg)
    assert set(post.table_names()) == set(lite.table_names())
    for table in lite.table_names():
        ours = [d[0] for d in lite.execute(f"SELECT * FROM {table} LIMIT 0").description]
        theirs = [d[0] for d in post.execute(f"SELECT * FROM {table} LIMIT 0").description]
        assert ours == theirs, table
    views = {r[0] for r in lite.execute("SELECT name FROM sqlite_master WHERE type = 'view'")}
    assert views == {r[0] for r in post.execute("SELECT table_name FROM information_schema.views "
                                                "WHERE table_schema = current_schema()")}
    guarded = {r[0] for r in lite.execute("SELECT tbl_name FROM sqlite_master WHERE type = 'trigger' AND "
                                          "name LIKE '%no_update'")}
    assert guarded == set(APPEND_ONLY)  # the same tables are append-only on both
    post.shutdown()


def test_every_append_only_table_refuses_update_delete_and_truncate_from_any_client(pg):
    from tests.test_security import _one_row_each

    db = open_project(url=pg)
    _one_row_each(db)
    raw = psycopg.connect(pg, autocommit=True)
    for table in APPEND_ONLY:
        n = raw.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        assert n >= 1, table
        col = _cols(raw, table)[0]
        for sql in (f"UPDATE {table} SET {col} = {col}", f"DELETE FROM {table}", f"TRUNCATE {table} CASCADE"):
            with pytest.raises(psycopg.Error, match="append-only"):
                raw.execute(sql)
        assert raw.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == n
    raw.close()
    db.shutdown()


def _cols(raw, table):
    return [d[0] for d in raw.execute(f"SELECT * FROM {table} LIMIT 0").description]


def _study(db, folder):
    """A small study carried to final labels: the demo, simulated readers and adjudicator."""
    load_demo(db, folder, subjects=2, seed=11, workers=1, actor=SHELL)
    settings.change(db, "range_min_count", 1, SHELL)
    return carry_to_final(db, folder, accuracy=0.8, seed=11, actor=SHELL)


def test_the_same_study_gives_the_same_results_on_sqlite_and_postgresql(pg, tmp_path):
    from labeling.agreement.data import load_audit_data

    results = []
    for folder, url in ((tmp_path / "lite", None), (tmp_path / "post", pg)):
        db = open_project(folder, url=url)
        steps = _study(db, folder)
        states = image_states(db).drop(columns=["last_read"]).sort_values("image_id").reset_index(drop=True)
        finals = final_labels(db).sort_values("image_id").reset_index(drop=True)
        audit = load_audit_data(db).audit(n_boot=0).to_dict()
        same = {k: audit[k] for k in ("counts", "agreement", "checks", "reader_pairs", "readers_vs_final",
                                      "asymmetry_vs_final", "headline")}  # not the times: the two ran apart
        results.append((steps, states, finals, json.dumps(same, sort_keys=True, default=str),
                        db.execute("SELECT count(*) FROM reads").fetchone()[0]))
        getattr(db, "shutdown", db.close)()
    (s1, st1, f1, a1, n1), (s2, st2, f2, a2, n2) = results
    assert s1 == s2 and n1 == n2
    assert st1.astype(object).equals(st2.astype(object))
    assert f1.equals(f2)
    assert a1 == a2


def test_a_project_is_copied_to_postgresql_verified_and_works_there(pg, tmp_path, monkeypatch):
    from labeling.cli import main as cli

    folder = tmp_path / "data"
    lite = open_project(folder)
    _study(lite, folder)
    report = copy_to_postgres(lite, pg)
    assert report.tables["reads"][0] == lite.execute("SELECT count(*) FROM reads").fetchone()[0] > 0
    assert report.tables["image_read_summary"][0] > 0  # rebuilt there by the trigger, and equal
    post = open_project(url=pg)
    st = lambda d: image_states(d).drop(columns=["last_read"]).sort_values("image_id").reset_index(drop=True)  # noqa: E731
    assert st(lite).astype(object).equals(st(post).astype(object))
    # New rows continue after the copied ids.
    from labeling.accounts.users import add_user

    new = add_user(post, "after-copy", "a long password", ["reader"], actor=SHELL)
    assert new.id > lite.execute("SELECT max(id) FROM users").fetchone()[0]
    post.shutdown()
    # A target that holds anything is refused, and nothing is written to it.
    with pytest.raises(CopyError, match="not empty"):
        copy_to_postgres(lite, pg)
    # The command line says the same.
    monkeypatch.setenv("FNP_DATA_DIR", str(folder))
    monkeypatch.delenv("FNP_DATABASE_URL", raising=False)
    assert cli(["db", "copy", "--to", pg]) == 2
    assert sqlite3.connect(folder / "fnp.sqlite3").execute("SELECT count(*) FROM reads").fetchone()[0] > 0


def test_the_command_line_copies_into_an_empty_database(postgres_cluster, tmp_path, monkeypatch, capsys):
    from labeling.cli import main as cli

    folder = tmp_path / "data"
    lite = open_project(folder)
    load_demo(lite, folder, subjects=1, seed=2, workers=1, actor=SHELL)
    monkeypatch.setenv("FNP_DATA_DIR", str(folder))
    monkeypatch.delenv("FNP_DATABASE_URL", raising=False)
    name, url = postgres_cluster.create()
    try:
        assert cli(["db", "copy", "--to", url]) == 0
        out = capsys.readouterr().out
        assert "copied and verified" in out and "images" in out
        monkeypatch.setenv("FNP_DATABASE_URL", url)
        assert cli(["db", "where"]) == 0
        assert "PostgreSQL at postgresql://" in capsys.readouterr().out
    finally:
        postgres_cluster.drop(name)
