"""Adjudicate (check 3): every disagreement and check-2 mismatch, with the evidence beside it."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from asymmetry.overlay import draw_overlay
from labeling.agreement_plots import asymmetry_scatter
from labeling.workflow import (WorkflowError, adjudicate, adjudication_case, adjudication_queue, latest_ranges,
                               movement_points)
from ui.common import database, guard
from ui.images import MOVEMENT_NAMES, orientation_hint, stored_rgb
from ui.landmark_editor import landmark_editor
from ui.read_page import HELP, KEYS, ORDER


def _decide(image_id: int, label: str | None) -> None:
    reason = None
    if label is None:
        reason = (st.session_state.get("exclude_reason") or "").strip()
        if not reason:
            st.session_state["adj_msg"] = ("error", "Give the reason for excluding the image.")
            return
    try:
        adjudicate(database(), st.session_state.get("user"), image_id, label, exclude_reason=reason)
        st.session_state["adj_msg"] = ("ok", f"Image {image_id}: {'final ' + label if label else 'excluded'}.")
        st.session_state["exclude_reason"] = ""
    except WorkflowError as exc:
        st.session_state["adj_msg"] = ("error", str(exc))


def adjudicate_page() -> None:
    user = guard("adjudicate")
    db = database()
    st.title("Adjudicate")
    msg = st.session_state.pop("adj_msg", None)
    if msg:
        (st.toast if msg[0] == "ok" else st.error)(msg[1])
    queue = adjudication_queue(db, user)
    if queue.empty:
        st.success("No image is waiting for adjudication.")
        return
    st.caption(f"{len(queue)} image(s) waiting.")
    labels = {int(r.image_id): f"#{r.image_id} · {r.movement} · {r.reason}" for r in queue.itertuples()}
    image_id = st.selectbox("Image", list(labels), format_func=labels.get)
    case = adjudication_case(db, user, int(image_id))
    st.subheader(f"{case.movement} — {MOVEMENT_NAMES[case.movement]} · {case.reason}")
    st.caption(orientation_hint(case.mirrored))
    left, right = st.columns([3, 2])
    rgb = stored_rgb(case.stored_path)
    with left:
        if rgb is None:
            st.error("The stored image cannot be displayed.")
        else:
            tab_photo, tab_overlay = st.tabs(["Photo", "Landmark overlay"])
            tab_photo.image(rgb, use_container_width=True)
            if case.points is not None:
                scale = rgb.shape[1] / case.size[0] if case.size[0] else 1.0  # points are full-resolution pixels
                auto = None if case.auto_points is None else np.asarray(case.auto_points) * scale
                tab_overlay.image(draw_overlay(rgb, np.asarray(case.points) * scale, mirrored=case.mirrored,
                                               auto_points=auto), use_container_width=True)
            else:
                tab_overlay.info(f"No landmarks: {case.measurement_status or 'not measured yet'}.")
        with st.expander("Correct the landmarks"):
            landmark_editor(db, user, int(image_id), key="adj")
    with right:
        st.markdown("**Reads** (identities hidden unless an admin reveals them)")
        st.dataframe(pd.DataFrame(case.reads), hide_index=True, use_container_width=True)
        st.markdown(f"**Range class (check 2):** {case.range_class or '—'}")
        table = latest_ranges(db)
        if case.rgas_signed is not None:
            boxes = table.boxes_frame(case.movement) if table else None
            fig = asymmetry_scatter(movement_points(db, case.movement), boxes, movement=case.movement,
                                    highlight={"rgas": case.rgas_signed, "anas": case.anas_signed, "label": "this image"})
            st.plotly_chart(fig, use_container_width=True)
    st.markdown("**Final label**")
    cols = st.columns(7)
    for col, label in zip(cols, ORDER):
        col.button(label, key=f"adj_{label}", help=HELP[label], shortcut=KEYS[label],
                   on_click=_decide, args=(int(image_id), label), use_container_width=True)
    with st.expander("Exclude this image"):
        st.text_input("Reason", key="exclude_reason", max_chars=500)
        st.button("Exclude", on_click=_decide, args=(int(image_id), None))

