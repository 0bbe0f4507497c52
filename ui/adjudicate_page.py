"""Adjudicate (check 3): every disagreement and check-2 mismatch, with the evidence beside it.

The decision keys are the read page's (ui/keys.py): deliberate, bound to the case on screen, and
the adjudicator's last decision can be undone (U) within the undo window.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import streamlit as st

from asymmetry.overlay import draw_overlay
from labeling import settings
from labeling.agreement_plots import asymmetry_scatter
from labeling.queue import TooQuick
from labeling.workflow import (WorkflowError, adjudicate, adjudication_case, adjudication_queue, latest_ranges,
                               movement_points, undo_last_adjudication)
from ui.common import current_user, database, guard, safe_callback, show_callback_error
from ui.images import MOVEMENT_NAMES, orientation_hint, stored_rgb
from ui.keys import Choice, choice_of, decision_surface, jpeg_data_url
from ui.landmark_editor import landmark_editor
from ui.read_page import HELP, KEYS, ORDER

CHOICES = [Choice(label, KEYS[label], f"{label} · {HELP[label]}", primary=label == "N") for label in ORDER]
SURFACE = "adjudicate_surface"


def _say(kind: str, text: str) -> None:
    st.session_state["adj_msg"] = (kind, text)


def _decide(token: str, label: str | None, shown_ms: int | None) -> None:
    user = current_user()
    if user is None:
        _say("error", "You are signed out; nothing was saved.")
        return
    case = st.session_state.get("adj_case")  # (token, shown_since) of the case on screen
    if not case or case[0] != token:
        _say("info", "That choice was for a case no longer on your screen; nothing was saved.")
        return
    reason = None
    if label is None:
        reason = (st.session_state.get("exclude_reason") or "").strip()
        if not reason:
            _say("error", "Give the reason for excluding the image.")
            return
    image_id = int(token.split(".", 1)[0])
    try:
        adjudicate(database(), user, image_id, label, exclude_reason=reason, shown_since=case[1], shown_ms=shown_ms)
    except TooQuick as exc:
        _say("info", str(exc).capitalize() + ". Look at the case, then decide.")
        return
    except WorkflowError as exc:
        _say("error", str(exc).capitalize() + ".")
        return
    st.session_state["exclude_reason"] = ""
    st.session_state["adj_case"] = None
    _say("ok", f"Image {image_id}: {'final ' + label if label else 'excluded'}. Press U to undo.")


@safe_callback
def _on_choice() -> None:
    choice = choice_of(SURFACE)
    if choice:
        _decide(str(choice.get("token")), str(choice.get("value")), int(choice.get("shown_ms") or 0))


@safe_callback
def _on_exclude() -> None:
    case = st.session_state.get("adj_case")
    _decide(case[0] if case else "", None, None)


@safe_callback
def _on_undo() -> None:
    user = current_user()
    if user is None:
        _say("error", "You are signed out; nothing was undone.")
        return
    try:
        image_id = undo_last_adjudication(database(), user)
    except WorkflowError as exc:
        _say("error", str(exc).capitalize() + ".")
        return
    st.session_state["adj_pick"] = image_id
    st.session_state["adj_case"] = None
    _say("ok", f"Your decision on image {image_id} is undone: decide it again.")


def adjudicate_page() -> None:
    user = guard("adjudicate")
    db = database()
    st.title("Adjudicate")
    show_callback_error()
    msg = st.session_state.pop("adj_msg", None)
    if msg:
        {"ok": st.success, "info": st.info, "error": st.error}[msg[0]](msg[1])
    queue = adjudication_queue(db, user)
    if queue.empty:
        st.success("No image is waiting for adjudication.")
        if st.button("Undo my last decision (U)"):
            _on_undo()
            st.rerun()
        return
    st.caption(f"{len(queue)} image(s) waiting.")
    labels = {int(r.image_id): f"#{r.image_id} · {r.movement} · {r.reason}" for r in queue.itertuples()}
    ids = list(labels)
    picked = st.session_state.pop("adj_pick", None)
    image_id = st.selectbox("Image", ids, index=ids.index(picked) if picked in ids else 0, format_func=labels.get)
    case = adjudication_case(db, user, int(image_id))
    token = f"{case.image_id}.{len(case.reads)}.{case.range_class}"
    held = st.session_state.get("adj_case")
    if not held or held[0] != token:
        st.session_state["adj_case"] = (token, dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"))
    st.subheader(f"{case.movement} — {MOVEMENT_NAMES[case.movement]} · {case.reason}")
    st.caption(orientation_hint(case.mirrored))
    left, right = st.columns([3, 2])
    rgb = stored_rgb(case.stored_path)
    with left:
        if rgb is None:
            st.error("The stored image cannot be displayed. Exclude it with a reason, or decide from the reads.")
        else:
            views = [("Photo", jpeg_data_url(rgb))]
            if case.points is not None:
                scale = rgb.shape[1] / case.size[0] if case.size[0] else 1.0  # points are full-resolution pixels
                auto = None if case.auto_points is None else np.asarray(case.auto_points) * scale
                views.append(("Landmarks", jpeg_data_url(draw_overlay(rgb, np.asarray(case.points) * scale,
                                                                      mirrored=case.mirrored, auto_points=auto))))
            decision_surface(key=SURFACE, token=token, views=views, alt=f"{case.movement} photo to adjudicate",
                             choices=CHOICES, dwell_ms=int(settings.get(db, "key_dwell_ms")), on_choice=_on_choice,
                             on_undo=_on_undo, undo=("u", "Undo my last decision"),
                             max_height="calc(100vh - 18rem)")
            if case.points is None:
                st.caption(f"No landmarks: {case.measurement_status or 'not measured yet'}.")
            with st.expander("Correct the landmarks"):
                landmark_editor(db, user, int(image_id), key="adj")
    with right:
        st.markdown("**Reads** (identities hidden unless an admin reveals them)")
        st.dataframe(pd.DataFrame(case.reads), hide_index=True, width="stretch")
        st.markdown(f"**Range class (check 2):** {case.range_class or '—'}")
        table = latest_ranges(db)
        if case.rgas_signed is not None:
            boxes = table.boxes_frame(case.movement) if table else None
            fig = asymmetry_scatter(movement_points(db, case.movement), boxes, movement=case.movement,
                                    highlight={"rgas": case.rgas_signed, "anas": case.anas_signed, "label": "this image"})
            st.plotly_chart(fig, width="stretch")
    with st.expander("Exclude this image"):
        st.text_input("Reason", key="exclude_reason", max_chars=500)
        st.button("Exclude", on_click=_on_exclude)
    st.caption("Keys: A S D = left severe / moderate / mild · N = normal · J K L = right mild / moderate / severe · "
               "V = photo / landmarks · U = undo your last decision.")
