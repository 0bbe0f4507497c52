"""Home: what the project holds, the empty state with the demo, and the notice."""
from __future__ import annotations

import streamlit as st

from db.access import image_store
from labeling.permissions import allowed
from labeling.status import project_summary
from ui.common import NOTICE, database, guard


def _load_demo(user) -> None:
    from labeling.demo import load_demo
    from labeling.permissions import require

    require(user, "demo.load")
    bar = st.progress(0.0, text="Rendering synthetic faces…")

    def progress(done, total, what):
        bar.progress(done / max(total, 1), text=f"{what.capitalize()}: {done} of {total}")

    res = load_demo(database(), image_store(), subjects=st.session_state.get("demo_subjects", 14),
                    simulate_readers=None, actor=user, progress=progress)
    bar.empty()
    st.success(f"SYNTHETIC demo loaded: {res.report.summary()}.")


def home_page() -> None:
    user = guard("status.view")
    db = database()
    st.title("FNP TripleCheck")
    st.info(NOTICE)
    s = project_summary(db)
    if s.images == 0:
        st.subheader("This project is empty")
        st.write("Import photos with a manifest (coordinators: **Import** in the menu), or try the whole "
                 "workflow on synthetic faces first.")
        if allowed(user, "demo.load"):
            st.number_input("Synthetic subjects (7 photos each)", 7, 140, 14, step=7, key="demo_subjects")
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
    st.subheader("Images per movement")
    st.bar_chart({mv: s.per_movement.get(mv, 0) for mv in ("MV0", "MV1", "MV2", "MV3", "MV4", "MV5", "MV6")})
