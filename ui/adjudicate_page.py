"""Adjudicate (check 3): every disagreement and check-2 mismatch, with the evidence beside it.

The decision keys are the read page's (ui/keys.py): deliberate, bound to the case on screen, and
the adjudicator's last decision can be undone (U) within the undo window.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import streamlit as st

from asymmetry.overlay import draw_overlay
from labeling.workflow import settings
from labeling.agreement.plots import asymmetry_scatter
from labeling.workflow.queue_errors import TooQuick
from labeling.vocabulary import MOVEMENT_NAMES
from labeling.workflow.states import (QUEUE_ORDERS, WorkflowError, adjudicate, adjudication_case, adjudication_queue,
                               latest_ranges, range_explanation, subject_images,
                               movement_points, undo_last_adjudication)
from ui.common import current_user, database, guard, safe_callback, show_callback_error
from ui.images import orientation_hint, stored_rgb, stored_thumb
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


STATE_MARKS = {"awaiting_adjudication": "?", "excluded": "×"}
INDEX_WORDS = ("RgAs: regional asymmetry, how far the face's landmark pairs are from mirror images of each other "
               "(signed: + means the patient's left side lower or less closed). AnAs: angular asymmetry, the tilt "
               "of brows, nose and mouth against the eye line, in degrees (same sign).")


def _reads_in_words(reads: list[dict]) -> str:
    parts = []
    for r in reads:
        what = (f"{r['label']} · {HELP.get(r['label'], '')}" if r.get("label")
                else f"cannot grade: {r.get('cannot_grade') or 'no reason given'}")
        secs = f" ({r['seconds']:.1f} s)" if r.get("seconds") is not None else ""
        parts.append(f"**{r['reader']}**: {what}{secs}")
    return "  \n".join(parts) or "No reads."


def _face_strip(db, user, image_id: int) -> None:
    """The subject's movements as thumbnails with their states; this case marked."""
    face = subject_images(db, user, image_id)
    if len(face) <= 1:
        return
    st.markdown("**This face, every movement**")
    cols = st.columns(len(face))
    for col, r in zip(cols, face.itertuples()):
        thumb = stored_thumb(r.stored_path)
        if thumb is not None:
            col.image(thumb, width="stretch")
        mark = ("◀" if int(r.image_id) == image_id else r.label if isinstance(r.label, str)
                else STATE_MARKS.get(r.state, "–"))
        col.caption(f"**{r.movement}** {mark}")
    st.caption("Under each movement: its label (agreed or final), ? to decide, × excluded, – not read yet, "
               "◀ this case.")


def adjudicate_page() -> None:
    user = guard("adjudicate")
    db = database()
    show_callback_error()
    msg = st.session_state.pop("adj_msg", None)
    order = st.session_state.get("adj_order", "waiting")
    queue = adjudication_queue(db, user, order)
    if queue.empty:
        st.title("Adjudicate")
        if msg:
            {"ok": st.success, "info": st.info, "error": st.error}[msg[0]](msg[1])
        st.success("No image is waiting for adjudication.")
        if st.button("Undo my last decision (U)"):
            _on_undo()
            st.rerun()
        return
    labels = {int(r.image_id): f"{n + 1} of {len(queue)} · subject {r.subject} · {r.movement} · {r.reason}"
              for n, r in enumerate(queue.itertuples())}
    ids = list(labels)
    picked = st.session_state.pop("adj_pick", None)
    top = st.columns([5, 2])
    image_id = top[0].selectbox("Case", ids, index=ids.index(picked) if picked in ids else 0, format_func=labels.get,
                                label_visibility="collapsed")
    top[1].selectbox("Order", list(QUEUE_ORDERS), format_func=QUEUE_ORDERS.get, key="adj_order",
                     label_visibility="collapsed")
    case = adjudication_case(db, user, int(image_id))
    token = f"{case.image_id}.{len(case.reads)}.{case.range_class}"
    held = st.session_state.get("adj_case")
    if not held or held[0] != token:
        st.session_state["adj_case"] = (token, dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"))
    st.markdown(f"**{case.movement} — {MOVEMENT_NAMES[case.movement]}** · {case.reason} · "
                f"{orientation_hint(case.mirrored)} · {len(queue)} image(s) waiting")
    left, right = st.columns([13, 8])
    rgb = stored_rgb(case.stored_path)
    with left:
        if rgb is None:
            st.error("The stored image cannot be displayed. Exclude it with a reason, or decide from the reads.")
            if msg:
                {"ok": st.success, "info": st.info, "error": st.error}[msg[0]](msg[1])
        else:
            views = [("Photo", jpeg_data_url(rgb))]
            if case.points is not None:
                scale = rgb.shape[1] / case.size[0] if case.size[0] else 1.0  # points are full-resolution pixels
                auto = None if case.auto_points is None else np.asarray(case.auto_points) * scale
                views.append(("Landmarks", jpeg_data_url(draw_overlay(rgb, np.asarray(case.points) * scale,
                                                                      mirrored=case.mirrored, auto_points=auto))))
            decision_surface(key=SURFACE, token=token, views=views, alt=f"{case.movement} photo to adjudicate",
                             choices=CHOICES, dwell_ms=int(settings.get(db, "key_dwell_ms")), on_choice=_on_choice,
                             on_undo=_on_undo, undo=("u", "Undo my last decision"), note=msg)
    with right:
        st.markdown(_reads_in_words(case.reads))
        _face_strip(db, user, int(image_id))
        table = latest_ranges(db)
        range_class, why = range_explanation(table, case.movement, case.rgas_signed, case.anas_signed,
                                             case.measurement_status)
        st.markdown(f"**Asymmetry (check 2)** · {why}", help=INDEX_WORDS)
        if case.rgas_signed is not None:
            boxes = table.boxes_frame(case.movement) if table else None
            fig = asymmetry_scatter(movement_points(db, case.movement), boxes, movement=case.movement,
                                    highlight={"rgas": case.rgas_signed, "anas": case.anas_signed, "label": "this image"})
            fig.update_layout(height=290, margin={"l": 10, "r": 10, "t": 30, "b": 10}, title=None,
                              legend={"orientation": "h", "y": -0.25},
                              xaxis_title="regional asymmetry (RgAs, signed)",
                              yaxis_title="angular asymmetry (AnAs, °)")
            st.plotly_chart(fig, width="stretch")
    if case.points is None:
        st.caption(f"No landmarks: {case.measurement_status or 'not measured yet'}.")
    with st.expander("Exclude this image"):
        st.text_input("Reason", key="exclude_reason", max_chars=500)
        st.button("Exclude", on_click=_on_exclude)
    with st.expander("Correct the landmarks"):
        landmark_editor(db, user, int(image_id), key="adj")
    st.caption("Keys: A S D = left severe / moderate / mild · N = normal · J K L = right mild / moderate / severe · "
               "V = photo / landmarks · U = undo your last decision.")
