"""Read (check 1): one image, one keystroke. Nothing on this page can reach another read.

The photo and the seven labels are one decision surface (ui/keys.py): a key counts only for the
image it was pressed on and only after the minimum viewing time, and the server checks both again.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

import streamlit as st

from labeling.workflow import settings
from labeling.workflow.images import view_for_claim
from labeling.vocabulary import CLASS_WORDS, MOVEMENT_NAMES, ORDINAL_ORDER
from labeling.workflow.queue import claim_next, reader_progress, submit_choice, undo_last_read
from labeling.workflow.queue_errors import QueueError, TooQuick
from ui.common import current_user, database, guard, safe_callback, show_callback_error
from ui.images import orientation_hint, stored_data_url
from ui.keys import Choice, choice_of, decision_surface

# Left-hand keys for the patient's left, right-hand keys for the patient's right, N in between.
KEYS = {"L3": "a", "L2": "s", "L1": "d", "N": "n", "R1": "j", "R2": "k", "R3": "l"}
ORDER = list(ORDINAL_ORDER)
HELP = CLASS_WORDS
CHOICES = [Choice(label, KEYS[label], f"{label} · {HELP[label]}", primary=label == "N") for label in ORDER]
SURFACE = "read_surface"
_SHOWING_KEY = secrets.token_bytes(32)


def _say(kind: str, text: str) -> None:
    st.session_state["read_msg"] = (kind, text)


def _public(token: str) -> str:
    """What the browser gets for a claim: an opaque name (HMAC with this process's key), the same for
    the same showing across reloads and tabs, saying nothing of the image, the slot or its kind."""
    return hmac.new(_SHOWING_KEY, token.encode(), hashlib.sha256).hexdigest()[:20]


def _record(label: str | None, public: str, shown_ms: int | None, reason: str | None = None) -> None:
    """Save the read for the showing `public` names, if it is still the one this page shows."""
    user = current_user()
    if user is None:
        _say("error", "You are signed out; nothing was saved.")
        return
    token = st.session_state.get("reading_token")
    if not token or public != _public(token):
        _say("info", "That choice was for an image no longer on your screen; nothing was saved.")
        return
    try:
        submit_choice(database(), user, token, label, cannot_grade=reason, started_at=st.session_state.get("started_at"),
                      shown_ms=shown_ms)
    except TooQuick as exc:
        _say("info", str(exc).capitalize() + ". Look at the image, then choose.")
        return
    except QueueError as exc:
        _say("error", str(exc).capitalize() + ".")
        return
    st.session_state["reading_token"] = None
    st.session_state["cannot_reason"] = ""
    st.session_state["cannot_open"] = False
    _say("ok", f"Saved {label or 'cannot grade'}. Press U to undo.")


@safe_callback
def _on_choice() -> None:
    choice = choice_of(SURFACE)
    if choice:
        _record(str(choice.get("value")), str(choice.get("token")), int(choice.get("shown_ms") or 0))


@safe_callback
def _on_cannot_grade() -> None:
    reason = (st.session_state.get("cannot_reason") or "").strip()
    if not reason:
        st.session_state["cannot_open"] = True  # the box stays open for the reason the message asks for
        st.session_state["cannot_msg"] = "Say why the image cannot be graded."
        return
    token = st.session_state.get("reading_token")
    _record(None, _public(token) if token else "", None, reason)


@safe_callback
def _on_undo() -> None:
    user = current_user()
    if user is None:
        _say("error", "You are signed out; nothing was undone.")
        return
    try:
        undo_last_read(database(), user)
        st.session_state["reading_token"] = None
        _say("ok", "Last read undone: label it again.")
    except QueueError as exc:
        _say("error", str(exc).capitalize() + ".")


@st.cache_data(ttl=15, show_spinner=False)
def _remaining(reader_id: int, _user) -> int:
    """Images still open to the reader, recounted at most every 15 s: the count scans the open read
    slots (30 ms at 100,000 images), too dear for every key press; the reads done are exact."""
    return reader_progress(database(), _user)["remaining"]


def read_page() -> None:
    user = guard("read.submit")
    db = database()
    show_callback_error()
    claim = claim_next(db, user)
    done = reader_progress(db, user, remaining=False)["done"]
    remaining = _remaining(user.id, user) if claim is not None else 0
    total = done + remaining
    st.progress(done / total if total else 1.0, text=f"{done} read · about {remaining} to go")
    msg = st.session_state.pop("read_msg", None)
    if claim is None:
        if msg:
            {"ok": st.success, "info": st.info, "error": st.error}[msg[0]](msg[1])
        st.success("Nothing left for you to read right now. Thank you!")
        if st.button("Undo last (U)", key="undo_empty"):
            _on_undo()
            st.rerun()
        return
    if st.session_state.get("reading_token") != claim.token:
        st.session_state["reading_token"] = claim.token
        st.session_state["started_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
    view = view_for_claim(db, user, claim)
    st.markdown(f"**{view.movement} — {MOVEMENT_NAMES[view.movement]}** · {orientation_hint(view.mirrored)}"
                + (" · **SYNTHETIC image**" if view.synthetic else ""))
    src = stored_data_url(view.stored_path, flipped=view.flipped)
    if src is None:
        st.error("This image cannot be displayed. Mark it as 'cannot grade' with a reason.")
        if msg:
            {"ok": st.success, "info": st.info, "error": st.error}[msg[0]](msg[1])
    else:  # the message goes beside the choices, where it covers nothing
        decision_surface(key=SURFACE, token=_public(claim.token), views=[("Photo", src)],
                         alt=f"{view.movement} photo to grade", choices=CHOICES,
                         dwell_ms=int(settings.get(db, "key_dwell_ms")), on_choice=_on_choice, on_undo=_on_undo,
                         undo=("u", "Undo last read"), note=msg)
    with st.expander("Cannot grade this image", expanded=bool(st.session_state.get("cannot_open"))):
        problem = st.session_state.pop("cannot_msg", None)
        if problem:
            st.error(problem)
        st.text_input("Reason (e.g. eyes out of frame, wrong movement, blurred)", key="cannot_reason", max_chars=500)
        st.button("Submit 'cannot grade'", on_click=_on_cannot_grade)
    st.caption("Keys: A S D = left severe / moderate / mild · N = normal · J K L = right mild / moderate / severe · "
               "U = undo. The patient's side, as the photo's orientation note says.")


__all__ = ["CHOICES", "HELP", "KEYS", "ORDER", "read_page"]
