"""Status: where every image stands in the triple check, and each reader's progress."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from labeling.accounts.permissions import allowed, require
from labeling.workflow.queue import reader_progress
from labeling.workflow.states import learn_and_store_ranges, ranges_stale, reader_summary, run_check2, state_counts
from labeling.words import check2_sentence, measured_sentence, sentence
from ui.common import database, guard, project
from ui.words import table, zone_note

LABELS = {"awaiting_read_1": "Awaiting read 1", "awaiting_read_2": "Awaiting read 2", "agreed": "Agreed (check 1)",
          "accepted": "Check 2 accepted", "awaiting_adjudication": "Awaiting adjudication", "final": "Final (adjudicated)",
          "excluded": "Excluded"}


def _measure(user) -> None:
    from labeling.workflow.measuring import measure_pending

    require(user, "measure")
    bar = st.progress(0.0, text="Measuring…")
    counts = measure_pending(database(), project().store, progress=lambda d, t, _: bar.progress(d / max(t, 1),
                                                                                         text=f"Measuring {d} of {t}"),
                             actor=user)
    bar.empty()
    c2 = run_check2(database(), user)
    st.success(sentence(f"{measured_sentence(counts)}; {check2_sentence(c2)}"))


def _own_progress(db, user) -> None:
    """What a blinded reader sees: their own progress only (no per-state counts, no other reader)."""
    prog = reader_progress(db, user)
    cols = st.columns(2)
    cols[0].metric("Your reads", f"{prog['done']:,}")
    cols[1].metric("Images left for you", f"{prog['remaining']:,}")
    st.caption("While you read, the counts per state and the other readers' progress stay hidden: they move "
               "when a read lands and would tell you whether the other read agreed with yours.")


def status_page() -> None:
    user = guard("status.view")
    db = database()
    st.title("Status")
    if not allowed(user, "status.states"):
        _own_progress(db, user)
        return
    counts = state_counts(db)
    cols = st.columns(len(counts))
    for col, (state, n) in zip(cols, counts.items()):
        col.metric(LABELS.get(state, state.replace("_", " ").capitalize()), f"{n:,}")
    total = sum(counts.values())
    if total:
        df = pd.DataFrame({"state": [LABELS.get(s, s.replace("_", " ")) for s in counts],
                           "images": list(counts.values())})
        st.plotly_chart(px.bar(df, x="images", y="state", orientation="h", text="images"), width="stretch")
    st.subheader("Readers")
    readers = reader_summary(db)
    if readers.empty:
        st.caption("No reads yet.")
    else:
        table(readers, times=["last_read"])
        st.caption("Reads that were undone are not counted. " + zone_note())
    if allowed(user, "ranges.learn"):
        st.subheader("Check 2")
        if ranges_stale(db):
            st.warning("The asymmetry formulas changed since the range table was learned: check 2 waits until "
                       "the images are measured again (fast: from the stored landmarks) and the ranges re-learned.")
        c1, c2 = st.columns(2)
        if c1.button("Measure new images and run check 2"):
            _measure(user)
        if c2.button("Re-learn the range table (new version)"):
            ranges = learn_and_store_ranges(db, user)
            res = run_check2(db, user)
            st.success(sentence(f"range table {ranges.version} learned; {check2_sentence(res)}"))
