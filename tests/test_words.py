"""Words, not internals: counts in sentences, stored UTC times in the reader's zone, headers and
audit details in words (labeling/words.py), and the pages that show them (Status, Audit, Import)."""
from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from labeling import words
from labeling.accounts.users import add_user
from tests.conftest import SHELL, signed_in

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")


def test_counts_read_as_sentences():
    assert words.plural(1, "image") == "1 image" and words.plural(1204, "image") == "1,204 images"
    assert words.join_words(["L1"]) == "L1" and words.join_words(["L1", "R2", "R3"], "or") == "L1, R2 or R3"
    assert words.measured_sentence({"ok": 95, "no_face": 2, "multiple_faces": 1}) == (
        "98 images measured: 95 with a face found, 3 without (1 several faces and 2 no face found)")
    assert words.measured_sentence({"ok": 98}) == "98 images measured: 98 with a face found"
    assert words.measured_sentence({"reindexed": 4}) == "4 images re-measured from stored landmarks"
    assert words.measured_sentence({}) == "no new image to measure"
    assert words.check2_sentence({"accepted": 40, "mismatch": 3}) == (
        "check 2 judged 43 images: 40 accepted and 3 range class differs (to adjudication)")
    assert words.check2_sentence({}).startswith("check 2 had nothing to judge")
    assert words.sentence("check 2 judged 1 image: 1 accepted") == "Check 2 judged 1 image: 1 accepted."


def test_stored_utc_times_are_shown_in_the_readers_zone():
    stored = "2026-07-01T22:30:00.123+00:00"  # db.access.now()'s format
    assert words.local_time(stored) == "2026-07-01 22:30"
    assert words.local_time(stored, words.zone("Europe/Berlin")) == "2026-07-02 00:30"  # summer time: UTC+2
    assert words.local_time("2026-01-15T22:30:00+00:00", words.zone("Europe/Berlin")) == "2026-01-15 23:30"
    assert words.local_time("2026-01-15T22:30:00", words.zone("America/New_York")) == "2026-01-15 17:30"  # naive = UTC
    assert words.local_time(None) == "" and words.local_time(float("nan")) == "" and words.local_time("garbage") == ""
    assert words.zone("Not/AZone") is words.UTC and words.zone(None) is words.UTC
    frame = pd.DataFrame({"last_read": [stored, None], "reads": [3, 0]})
    shown = words.local_times(frame, ["last_read"], words.zone("Asia/Tokyo"))
    assert shown.last_read.tolist() == ["2026-07-02 07:30", ""] and frame.last_read[0] == stored


def test_headers_and_audit_details_in_words():
    assert words.header("mean_seconds") == "mean seconds per read" and words.header("cannot_grade") == "cannot grade"
    assert words.header("cohen_kappa_n") == "n (Cohen's kappa)" and words.header("measure") == "measure"
    assert list(words.with_headers(pd.DataFrame(columns=["reader", "last_read", "lr_swap_rate"])).columns) == [
        "reader", "last read", "L/R swap rate"]
    detail = '{"images": 42, "seed": 0, "every_class_in_train": true, "box": [1.5, 2, 3, 4], "reason": null}'
    assert words.describe_detail(detail) == (
        "images: 42 · seed: 0 · every class in train: yes · box: 1.5, 2, 3, 4 · reason: none")
    assert words.describe_detail("{}") == "" and words.describe_detail("plain text") == "plain text"
    assert words.describe_detail(None) == ""


@pytest.fixture
def demo_project(data_dir):
    """A one-subject synthetic demo (7 images, simulated reads), not yet measured."""
    from db.project import open_project
    from labeling.demo.project import load_demo

    db = open_project(data_dir)
    load_demo(db, data_dir, subjects=1, seed=3, simulate_readers=0.9, workers=1, actor=SHELL)
    yield db
    db.close()


def _page(module: str, fn: str, user) -> AppTest:
    at = AppTest.from_string(f"from {module} import {fn}\n{fn}()\n", default_timeout=120)
    signed_in(at, user)
    return at.run()


def _shown(at) -> str:
    return " ".join(str(e.value) for kind in ("markdown", "caption", "success", "warning", "info", "error")
                    for e in getattr(at, kind))


def _frames(at) -> list[pd.DataFrame]:
    return [d.value for d in at.dataframe]


def test_status_page_says_counts_in_sentences_and_times_in_a_zone(demo_project):
    coord = add_user(demo_project, "coord", "a long password", ["coordinator"], actor=SHELL)
    at = _page("ui.status_page", "status_page", coord)
    assert not at.exception
    readers = next(f for f in _frames(at) if "reader" in f.columns)
    assert list(readers.columns) == ["reader", "reads", "cannot grade", "mean seconds per read", "last read"]
    assert not ISO.search(" ".join(readers["last read"])) and "Times are in UTC" in _shown(at)
    next(b for b in at.button if b.label.startswith("Measure new images")).click().run()
    assert not at.exception, at.exception
    said = " ".join(s.value for s in at.success)
    assert re.search(r"7 images measured: \d with a face found", said), said
    assert "{" not in said and "'ok'" not in said and "check 2" in said


def test_audit_page_shows_when_who_what_in_words(demo_project):
    auditor = add_user(demo_project, "aud", "a long password", ["auditor"], actor=SHELL)
    at = _page("ui.audit_page", "audit_page", auditor)
    assert not at.exception
    (events,) = _frames(at)
    assert list(events.columns) == ["no.", "when", "who", "what", "about", "details"]
    assert not ISO.search(" ".join(events["when"])) and not any(d.startswith("{") for d in events["details"])
    assert "import finished" in set(events["what"]) and "user created" in set(events["what"])
    imported = events[events["what"] == "import finished"]["details"].iloc[0]
    assert "added: 7" in imported and "rows: 7" in imported
    at.date_input[0].set_value(dt.date.today() + dt.timedelta(days=2)).run()  # nothing after the day after tomorrow
    assert not at.exception and len(_frames(at)[0]) == 0


def test_import_page_history_in_words_and_local_time(demo_project):
    coord = add_user(demo_project, "coord", "a long password", ["coordinator"], actor=SHELL)
    at = _page("ui.import_page", "import_page", coord)
    assert not at.exception
    history = _frames(at)[0]
    assert {"import", "started", "already present"} <= set(history.columns)
    assert not ISO.search(" ".join(history["started"])) and "Times are in UTC" in _shown(at)
