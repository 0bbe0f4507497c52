"""Read (check 1): one image, one keystroke. Nothing on this page can reach another read."""
from __future__ import annotations

import datetime as dt

import streamlit as st

from labeling.images import image_for_reader
from labeling.queue import QueueError, claim_next, reader_progress, submit_read, undo_last_read
from ui.common import database, guard
from ui.images import MOVEMENT_NAMES, orientation_hint, stored_rgb

# Left-hand keys for the patient's left, right-hand keys for the patient's right, N in between.
KEYS = {"L3": "a", "L2": "s", "L1": "d", "N": "n", "R1": "j", "R2": "k", "R3": "l"}
ORDER = ["L3", "L2", "L1", "N", "R1", "R2", "R3"]
HELP = {"N": "normal", "L1": "left mild", "L2": "left moderate", "L3": "left severe",
        "R1": "right mild", "R2": "right moderate", "R3": "right severe"}


def _submit(label: str | None, image_id: int, started_at: str) -> None:
    user = st.session_state.get("user")
    reason = None
    if label is None:
        reason = (st.session_state.get("cannot_reason") or "").strip()
        if not reason:
            st.session_state["read_msg"] = ("error", "Say why the image cannot be graded.")
            return
    try:
        submit_read(database(), user, image_id, label, cannot_grade=reason, started_at=started_at)
        st.session_state["read_msg"] = ("ok", f"Saved {label or 'cannot grade'}. Press U to undo.")
        st.session_state["cannot_reason"] = ""
    except QueueError as exc:
        st.session_state["read_msg"] = ("error", str(exc))


def _undo() -> None:
    try:
        undo_last_read(database(), st.session_state.get("user"))
        st.session_state["read_msg"] = ("ok", "Last read undone: label it again.")
    except QueueError as exc:
        st.session_state["read_msg"] = ("error", str(exc))


def read_page() -> None:
    user = guard("read.submit")
    db = database()
    claim = claim_next(db, user)
    prog = reader_progress(db, user)
    total = prog["done"] + prog["remaining"]
    top = st.columns([3, 1])
    top[0].progress(prog["done"] / total if total else 1.0, text=f"{prog['done']} read · {prog['remaining']} to go")
    top[1].button("Undo last (U)", on_click=_undo, shortcut="u", use_container_width=True)
    msg = st.session_state.pop("read_msg", None)
    if msg:
        (st.toast if msg[0] == "ok" else st.error)(msg[1])
    if claim is None:
        st.success("Nothing left for you to read right now. Thank you!")
        return
    key = (claim.image_id, claim.slot)
    if st.session_state.get("reading") != key:
        st.session_state["reading"] = key
        st.session_state["started_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
    view = image_for_reader(db, user, claim.image_id)
    pic, panel = st.columns([3, 2], gap="large")
    with pic:
        st.subheader(f"{view.movement} — {MOVEMENT_NAMES[view.movement]}")
        st.caption(orientation_hint(view.mirrored) + (" · SYNTHETIC image" if view.synthetic else ""))
        rgb = stored_rgb(view.stored_path)
        if rgb is None:
            st.error("This image cannot be displayed. Mark it as 'cannot grade' with a reason.")
        else:
            # Sized so the whole face and the buttons fit one screen: no scrolling between images.
            st.image(rgb, width=min(560, int(560 * rgb.shape[1] / max(rgb.shape[0], 1) * 1.2)))
    with panel:
        st.markdown("**Label** (patient's side)")
        for label in ORDER:
            st.button(f"{label} · {HELP[label]}", key=f"btn_{label}", shortcut=KEYS[label],
                      on_click=_submit, args=(label, claim.image_id, st.session_state["started_at"]),
                      use_container_width=True, type="primary" if label == "N" else "secondary")
        with st.expander("Cannot grade this image"):
            st.text_input("Reason (e.g. eyes out of frame, wrong movement, blurred)", key="cannot_reason", max_chars=500)
            st.button("Submit 'cannot grade'", on_click=_submit,
                      args=(None, claim.image_id, st.session_state["started_at"]))
        st.caption("Keys: A S D = left severe / moderate / mild · N = normal · J K L = right mild / moderate / "
                   "severe · U = undo.")
