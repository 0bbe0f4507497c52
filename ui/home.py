"""Home: what the project holds, the empty state with the demo, the demo's counts and its carry-on,
and the notice."""
from __future__ import annotations

import streamlit as st

from labeling.accounts.permissions import allowed
from labeling.workflow.status import project_summary
from ui.common import NOTICE, database, guard, project

DEMO_MESSAGE = "demo_message"  # what the last demo action did, shown once after the page reruns


def _bar(text: str):
    """Return (progress callback, the bar) for a long demo step."""
    bar = st.progress(0.0, text=text)

    def progress(done, total, what):
        bar.progress(min(done / max(total, 1), 1.0), text=f"{what.capitalize()}: {done} of {total}")

    return progress, bar


def _load_demo(user) -> None:
    from labeling.demo.project import load_demo
    from labeling.accounts.permissions import require

    require(user, "demo.load")
    progress, bar = _bar("Rendering synthetic faces…")
    res = load_demo(database(), project().store, subjects=st.session_state.get("demo_subjects", 14),
                    simulate_readers=None, actor=user, progress=progress)
    bar.empty()
    st.session_state[DEMO_MESSAGE] = f"SYNTHETIC demo loaded: {res.report.summary()}. {res.range_note}"


def _carry_on(user, accuracy: float) -> None:
    from labeling.demo.project import carry_summary, carry_to_final

    progress, bar = _bar("Simulated reads…")
    done = carry_to_final(database(), project().store, accuracy=accuracy, actor=user, progress=progress)
    bar.empty()
    st.session_state[DEMO_MESSAGE] = carry_summary(done)


def _demo_panel(db, user) -> None:
    """The demo's counts (what check 2 needs) and, for a coordinator, the carry-on to final labels."""
    from labeling.demo.project import carry_blockers, demo_status

    status = demo_status(db)
    if not status.synthetic_only:
        return
    st.subheader("Synthetic demo")
    st.write(status.counts_sentence())
    st.write(f"**{status.final:,} of {status.images:,}** images have a final label"
             + (f"; {status.agreed:,} agreed image(s) wait for check 2." if status.agreed else "."))
    if status.final >= status.images:
        return
    blockers = carry_blockers(user)
    if blockers:
        st.caption("Carrying the demo on to final labels needs a coordinator: you may not "
                   + "; ".join(blockers) + ". An admin can add the coordinator role on **Users**.")
        return
    st.caption("Carry the demo on as the command line's `labeling demo --final` does: two simulated readers read "
               "every image still open, the faces are measured, the range table is learned and check 2 runs, and a "
               "simulated adjudicator decides what is left from the generator's classes. Every read and decision "
               "is marked simulated; reads already given by people stay as they are.")
    accuracy = st.slider("Simulated readers' accuracy (share of reads that give the generator's class)", 0.5, 1.0,
                         0.9, 0.05, key="demo_accuracy")
    if st.button("Carry the demo on to final labels (simulated readers and adjudicator)", key="demo_carry"):
        _carry_on(user, accuracy)
        st.rerun()


def home_page() -> None:
    user = guard("status.view")
    db = database()
    st.title("FNP TripleCheck")
    st.info(NOTICE)
    message = st.session_state.pop(DEMO_MESSAGE, None)
    if message:
        st.success(message)
    s = project_summary(db)
    if s.images == 0:
        st.subheader("This project is empty")
        st.write("Import photos with a manifest (coordinators: **Import** in the menu), or try the whole "
                 "workflow on synthetic faces first.")
        if allowed(user, "demo.load"):
            st.number_input("Synthetic subjects (7 photos each)", 7, 140, 14, step=7, key="demo_subjects")
            st.caption("The classes cycle N, L1, L2, L3, R1, R2, R3 over the subjects, so every movement x class "
                       "cell of check 2's range table gets one image per 7 subjects (14 subjects: 2). On a project "
                       "of synthetic images only, the demo sets \"Range box: fewest images\" to one fewer (at "
                       "least 1; the default 5 stays from 42 subjects), so check 2 and the Agreement page's "
                       "out-of-fold figure, which learns each cell without one subject, have a box for every cell.")
            if st.button("Load the synthetic demo project", type="primary"):
                _load_demo(user)
                st.rerun()
        else:
            st.caption("A coordinator or admin can load the synthetic demo project.")
        return
    cols = st.columns(4)
    cols[0].metric("Images", f"{s.images:,}")
    cols[1].metric("Subjects", f"{s.subjects:,}")
    cols[2].metric("Reads", f"{s.reads:,}")
    cols[3].metric("Imports", f"{s.imports:,}")
    if s.synthetic_images:
        st.warning(f"{s.synthetic_images:,} of the images are SYNTHETIC (generated demo data, not patients).")
    if s.interrupted_imports:
        st.warning(f"{s.interrupted_imports} import(s) did not finish. Run the same import again to complete it.")
    if allowed(user, "demo.load") and allowed(user, "status.states"):
        _demo_panel(db, user)
    st.subheader("Images per movement")
    st.bar_chart({mv: s.per_movement.get(mv, 0) for mv in ("MV0", "MV1", "MV2", "MV3", "MV4", "MV5", "MV6")})
