"""The Agreement page's *Reader quality control* tab: each reader's mirror and gold items, side bias
and drift; coordinators mark final-labelled images as gold here (labeling/workflow/reader_qc.py)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from labeling.workflow import settings
from labeling.accounts.permissions import allowed
from labeling.workflow.reader_qc import QCError, describe, gold_images, load_qc, mark_gold, reader_qc
from labeling.workflow.states import final_labels
from ui.common import current_user, database


def _pct(p, lo, hi) -> str:
    return "—" if p != p else f"{p:.0%} [{lo:.0%}, {hi:.0%}]"


def reader_qc_tab() -> None:
    db = database()
    user = current_user()
    share = float(settings.get(db, "qc_share"))
    st.caption(f"{share:.0%} of each reader's queue are quality-control items (setting *Quality-control share*): "
               "mirror items, a flipped copy of an image the reader graded earlier (consistent: the same degree on "
               "the other side), and gold items, final-labelled images a coordinator marked. Readers see them as "
               "any other image; they are never reads, never exported. Intervals: 95%, the subject as the unit.")
    qc = reader_qc(load_qc(db))
    if qc.empty:
        st.info("No reads yet.")
    else:
        table = pd.DataFrame({
            "Reader": qc.reader,
            "Mirror items": qc.mirror_n, "Consistent": [_pct(*r) for r in zip(qc.mirror_p, qc.mirror_lo, qc.mirror_hi)],
            "Gold items": qc.gold_n, "Exact": [_pct(*r) for r in zip(qc.gold_p, qc.gold_lo, qc.gold_hi)],
            "Right side": [_pct(*r) for r in zip(qc.gold_side_p, qc.gold_side_lo, qc.gold_side_hi)],
            "Side bias": [("—" if b != b else f"{b:+.2f}") for b in qc.side_bias],
            "Agreement with final, first → last third of reads": [
                "—" if a != a else f"{a:.0%} → {b:.0%}" for a, b in zip(qc.agreement_first_third, qc.agreement_last_third)],
        })
        st.dataframe(table, hide_index=True, width="stretch")
        with st.expander("In words"):
            for _, row in qc.iterrows():
                st.markdown(f"- **{row.reader}**: {describe(row)}.")
    if user is not None and allowed(user, "qc.manage"):
        st.subheader("Gold images")
        gold = set(gold_images(db))
        finals = final_labels(db)
        st.caption(f"{len(gold):,} gold image(s) of {len(finals):,} with a final label. A reader meets a gold image "
                   "they have not read, as one of their quality-control items.")
        n = st.number_input("Mark this many more final-labelled images as gold, drawn at random", min_value=0,
                            max_value=max(len(finals) - len(gold), 0), value=min(10, max(len(finals) - len(gold), 0)),
                            key="qc_gold_n")
        if st.button("Mark as gold", disabled=not n):
            pool = finals[~finals.image_id.isin(gold)].sample(n=int(n), random_state=len(gold))
            try:
                done = mark_gold(db, user, pool.image_id.tolist())
            except QCError as exc:
                st.error(str(exc).capitalize() + ".")
            else:
                st.success(f"{done} image(s) marked as gold.")
