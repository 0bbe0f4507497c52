"""The Agreement and Prediagnosis pages under AppTest: every tab of an empty, a one-reader and the
synthetic demo project renders without an exception or a traceback, the roles are checked by the
pages themselves, and the audit is computed once per data change, not on every rerun."""
from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from streamlit.testing.v1 import AppTest

from db.access import transaction
from db.project import open_project
from labeling.agreement import data as audit_data
from labeling.workflow import settings
from labeling.demo.project import carry_to_final, load_demo
from labeling.accounts.permissions import allowed
from labeling.accounts.users import User, add_user
from tests.test_audit_data import prediction, write_run
from ui.agreement_page import TABS
from ui.menu import PAGES
from tests.conftest import signed_in, SHELL

AGREEMENT = "from ui.agreement_page import agreement_page\nagreement_page()\n"
PREDIAGNOSIS = "from ui.prediagnosis_page import prediagnosis_page\nprediagnosis_page()\n"
REFUSED = "You do not have access to this page."


def page(script: str, user, **state) -> AppTest:
    """Run a page as `user` with extra session state (fewer bootstrap resamples keep tests quick)."""
    at = AppTest.from_string(script, default_timeout=120)
    signed_in(at, user)
    at.session_state["agreement_n_boot"] = 200
    for k, v in state.items():
        at.session_state[k] = v
    return at.run()


def texts(at: AppTest) -> str:
    return " ".join([*(e.value for e in at.markdown), *(e.value for e in at.error), *(e.value for e in at.info),
                     *(e.value for e in at.warning), *(e.value for e in at.caption), *(e.value for e in at.subheader)])


def clean(at: AppTest) -> None:
    assert not at.exception, at.exception
    assert not [e.value for e in at.error]


def every_tab(at: AppTest) -> AppTest:
    """Open each tab in turn; none may fail."""
    for tab in TABS:
        at.session_state["agreement_tab"] = tab
        at.run()
        clean(at)
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


# ---- roles -------------------------------------------------------------------------------------


@pytest.mark.parametrize("roles, agreement_ok, prediagnosis_ok", [
    (["reader"], False, False),
    (["adjudicator"], False, True),
    (["auditor"], True, True),
    (["coordinator"], True, True),
    (["admin"], True, True),
])
def test_each_page_checks_the_role_itself(db, roles, agreement_ok, prediagnosis_ok):
    user = add_user(db, "someone", "a long password", roles, actor=SHELL)
    for script, ok in ((AGREEMENT, agreement_ok), (PREDIAGNOSIS, prediagnosis_ok)):
        at = page(script, user)
        assert not at.exception
        assert (REFUSED in texts(at)) != ok


def test_menu_offers_the_pages_to_their_roles():
    def titles(roles):
        return {t for _, t, _, _, action in PAGES if allowed(User(1, "someone", frozenset(roles)), action)}

    assert not {"Agreement", "Prediagnosis"} & titles(["reader"])
    assert {"Agreement", "Prediagnosis"} <= titles(["auditor"])
    assert "Prediagnosis" in titles(["adjudicator"]) and "Agreement" not in titles(["adjudicator"])


# ---- empty and one-reader projects -------------------------------------------------------------


def test_empty_project(db):
    auditor = add_user(db, "aud", "a long password", ["auditor"], actor=SHELL)
    at = every_tab(page(AGREEMENT, auditor))
    assert "No reads yet" in texts(at) and metric(at, "Exact agreement") == "—"
    at = page(PREDIAGNOSIS, auditor)
    clean(at)
    assert "No subjects yet" in texts(at)


def one_reader_project(db):
    """Three images read once each by one reader (one of them 'cannot grade')."""
    with transaction(db) as c:
        c.execute("INSERT INTO users (id, name, password_hash, roles, created_at) "
                  "VALUES (50, 'solo', 'x', 'reader', 'x')")
        c.execute("INSERT INTO subjects (id, code, created_at) VALUES (1, 'P001', 'x')")
        for i, mv in enumerate(("MV0", "MV1", "MV4"), start=1):
            c.execute("INSERT INTO images (id, sha256, subject_id, movement, source, mirrored, width, height, format, "
                      "mode, bytes, stored_path, imported_at) VALUES (?,?,1,?,'hospital',0,1,1,'JPEG','RGB',1,'x','x')",
                      (i, f"{i:064x}", mv))
        c.executemany("INSERT INTO reads (image_id, reader_id, label, cannot_grade, submitted_at, duration_ms) "
                      "VALUES (?,50,?,?,?,?)", [(1, "N", None, "2026-02-01T09:00:00+00:00", 2000),
                                               (2, "L2", None, "2026-02-01T09:01:00+00:00", 3000),
                                               (3, None, "blurry", "2026-02-01T09:02:00+00:00", 4000)])


def test_one_reader_project_then_new_data_is_offered_not_recomputed_on_every_click(db, monkeypatch):
    one_reader_project(db)
    auditor = add_user(db, "aud", "a long password", ["auditor"], actor=SHELL)
    calls = []
    real = audit_data.load_audit_data
    monkeypatch.setattr("ui.agreement_page.load_audit_data", lambda *a, **k: calls.append(1) or real(*a, **k))

    at = every_tab(page(AGREEMENT, auditor))
    assert metric(at, "Effective reads") == "3" and metric(at, "Read at least twice") == "0"
    assert metric(at, "Cohen's kappa") == "—" and "no image has two graded reads" in " ".join(
        str(df.value.to_dict()) for df in at.dataframe)
    assert len(calls) == 1  # seven tabs opened, one computation

    # A second reader reads image 2: the page says so and recomputes only when asked.
    with transaction(db) as c:
        c.execute("INSERT INTO users (id, name, password_hash, roles, created_at) "
                  "VALUES (70, 'duo', 'x', 'reader', 'x')")
        c.execute("INSERT INTO reads (image_id, reader_id, label, submitted_at, duration_ms) "
                  "VALUES (2, 70, 'L2', '2026-02-02T09:00:00+00:00', 2500)")
    at.run()
    clean(at)
    assert "arrived since this audit was computed" in texts(at) and len(calls) == 1
    at.button(key="agreement_update").click().run()
    clean(at)
    assert "arrived since" not in texts(at) and len(calls) == 2
    assert metric(at, "Read at least twice") == "1" and metric(at, "Exact agreement") == "1.000"

    at = page(PREDIAGNOSIS, auditor)
    clean(at)
    assert "No usable per-movement label" in texts(at)  # nothing is final yet


def test_a_failure_shows_a_reference_never_a_traceback(db, monkeypatch):
    auditor = add_user(db, "aud", "a long password", ["auditor"], actor=SHELL)

    def broken(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("ui.agreement_page.load_audit_data", broken)
    at = page(AGREEMENT, auditor)
    assert not at.exception
    (error,) = at.error
    assert "reference" in error.value and "disk on fire" not in texts(at) and "Traceback" not in texts(at)


# ---- the demo project --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Two synthetic subjects carried to final labels (measured, ranges, check 2, adjudicated), an
    imported trainer run and an auditor. Built once for the module: rendering faces is slow."""
    folder = tmp_path_factory.mktemp("demo") / "data"
    db = open_project(folder)
    load_demo(db, folder, subjects=2, seed=1, simulate_readers=0.8, workers=1, actor=SHELL)
    settings.change(db, "range_min_count", 1, SHELL)  # 14 images: every cell has only 1-2 of them
    carry_to_final(db, folder, actor=SHELL)
    truth = db.execute("SELECT i.sha256, i.movement, g.label FROM images i JOIN ground_truth g ON g.image_id = i.id "
                       "ORDER BY i.id").fetchall()
    rows = []
    for k, (sha, mv, label) in enumerate(truth):
        p = prediction(0, label, label if k % 4 else "N", movement=mv)
        rows.append({**p, "image_sha256": sha})
    run = write_run(tmp_path_factory.mktemp("runs") / "idfnp-demo", rows, config={"train": {"arch": "idfnp"}})
    audit_data.import_predictions(db, run, actor=SHELL)
    auditor = add_user(db, "aud", "a long password", ["auditor", "adjudicator"], actor=SHELL)
    yield SimpleNamespace(folder=folder, db=db, auditor=auditor)
    db.close()


def test_demo_agreement_page_shows_the_audit_in_every_tab(demo, monkeypatch):
    monkeypatch.setenv("FNP_DATA_DIR", str(demo.folder))
    expected = audit_data.load_audit(demo.db, n_boot=0)
    at = page(AGREEMENT, demo.auditor)
    clean(at)
    assert "SYNTHETIC" in texts(at)
    assert metric(at, "Exact agreement") == f"{expected.reads.percent_agreement.value:.3f}"
    assert metric(at, "Check-2 acceptance") == f"{expected.checks.check2.value:.3f}"
    assert metric(at, "Model runs") == "1"
    # One number, one name: the check-1 rate is not a second headline card for the same number.
    assert not [m for m in at.metric if "Check-1" in m.label or "Percent" in m.label]
    headline = at.dataframe[0].value
    assert "0.54" in " ".join(headline["published"])
    assert "model accuracy, run idfnp-demo, idfnp" in set(headline["measure"])
    assert not any("best" in m for m in headline["measure"])
    every_tab(at)

    at.session_state["agreement_tab"] = "Model vs neurologists"
    at.run()
    frames = [df.value for df in at.dataframe]
    assert any("idfnp-demo" in set(f.get("run", [])) for f in frames)  # Table 9
    assert any("neurologists (double-read agreement)" in f.columns for f in frames)  # Table 7
    assert any({"precision", "sensitivity"} <= set(f.columns) for f in frames)  # Tables 5-6
    assert len(at.get("plotly_chart")) == 1  # Figure 4

    at.session_state["agreement_tab"] = "Confusion matrices"
    at.run()
    for kind in ("Reader vs reader", "Each reader vs final", "Range class vs final"):
        at.radio(key="agreement_matrix_kind").set_value(kind).run()
        clean(at)
        assert len(at.get("plotly_chart")) == 1, kind

    at.session_state["agreement_tab"] = "Downloads"
    at.run()
    assert len(at.get("download_button")) == 2


def test_the_methods_paragraph_says_the_pages_numbers(demo, monkeypatch):
    # Every number of the headline table, as the page shows it ("0.812 [0.701, 0.893]"), is in
    # the paragraph the page offers to copy, as "0.812 (95% CI 0.701–0.893)"; and the paragraph
    # names the design, the unit and the software.
    monkeypatch.setenv("FNP_DATA_DIR", str(demo.folder))
    at = page(AGREEMENT, demo.auditor)
    clean(at)
    (paragraph,) = [c.value for c in at.code]
    headline = at.dataframe[0].value
    checked = 0
    for measure, shown in zip(headline["measure"], headline["ours"]):
        m = re.fullmatch(r"(-?\d\.\d{3})(?: \[(-?\d\.\d{3}), (-?\d\.\d{3})\])?", shown)
        if m is None:  # "—": nothing computed, the paragraph says why
            assert shown == "—", measure
            continue
        if "= exact agreement" in measure:
            assert "check-1 consensus rate is the exact agreement" in paragraph
            continue
        said = m[1] + (f" (95% CI {m[2]}–{m[3]})" if m[2] else "")
        assert said in paragraph, (measure, said)
        checked += 1
    assert checked >= 15
    assert metric(at, "Exact agreement") in paragraph
    for words in ("SYNTHETIC DATA", "Design.", "14 facial photographs of 2 subjects", "resampling unit: subject",
                  "Clopper-Pearson", "cluster bootstrap", "200 resamples, seed 0", "Software: FNP TripleCheck",
                  "statsmodels", "run idfnp-demo (idfnp)", "none was selected"):
        assert words in paragraph, words


def test_demo_prediagnosis_page(demo, monkeypatch):
    monkeypatch.setenv("FNP_DATA_DIR", str(demo.folder))
    at = page(PREDIAGNOSIS, demo.auditor)
    clean(at)
    assert "SYNTHETIC" in texts(at)
    assert "## Prediagnosis — subject SYN-" in texts(at)
    at.selectbox(key="prediagnosis_run").select("idfnp-demo").run()
    clean(at)
    reports = [m.value for m in at.markdown if m.value.startswith("## Prediagnosis")]
    assert len(reports) == 2 and len(at.get("download_button")) == 2
    table = at.dataframe[0].value
    assert {"movement", "final label", "predicted"} <= set(table.columns) and len(table) == 7
