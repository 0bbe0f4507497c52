"""The decision surface: the photo and its label buttons, with one key per label, deliberate by design.

A key or click counts only for the image it was pressed on, and only once that image has been on
screen for the minimum viewing time (measured in the browser from the moment the photo is
painted). A held key (auto-repeat) never counts, and once a choice is sent for an image the surface
ignores every further key until the next image is painted. The server checks the same again
(`labeling.workflow.queue.submit_read`, `labeling.workflow.states.adjudicate`): this component makes the behaviour
pleasant, the domain functions make it true.

Used by the Read page (check 1) and the Adjudicate page (check 3).
"""
from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import streamlit as st
from PIL import Image

_HTML = """<div class="fnp-surface"><div class="fnp-views"></div><div class="fnp-main"><div class="fnp-photo">
<img class="fnp-img" alt=""></div><div class="fnp-side"><div class="fnp-choices"></div><div class="fnp-note"
role="status" aria-live="polite"></div></div></div></div>"""

_CSS = """
.fnp-surface { font-family: var(--st-font, sans-serif); color: var(--st-text-color, #262730); }
.fnp-main { display: flex; gap: 1.2rem; align-items: flex-start; }
.fnp-photo { flex: 1 1 auto; min-width: 0; display: flex; justify-content: center; }
.fnp-img { max-width: 100%; max-height: var(--fnp-max-height, 70vh); object-fit: contain; border-radius: .3rem;
           background: #eee; }
.fnp-side { flex: 0 0 15.5rem; display: flex; flex-direction: column; gap: .35rem; }
.fnp-choices { display: flex; flex-direction: column; gap: .35rem; }
.fnp-choices button { text-align: left; padding: .42rem .6rem; border-radius: .45rem; cursor: pointer; font-size: .95rem;
    border: 1px solid var(--st-border-color, #ccc); background: var(--st-background-color, #fff); color: inherit; }
.fnp-choices button:hover { border-color: var(--st-primary-color, #ff4b4b); }
.fnp-choices button.primary { border-color: var(--st-primary-color, #ff4b4b); }
.fnp-choices button.chosen { background: var(--st-primary-color, #ff4b4b); color: #fff; }
.fnp-choices button.undo { margin-top: .6rem; }
.fnp-surface.sent .fnp-choices button:not(.chosen) { opacity: .45; }
.fnp-choices kbd { display: inline-block; min-width: 1.3em; text-align: center; font-family: monospace; font-weight: 700;
    border: 1px solid #999; border-bottom-width: 2px; border-radius: .25rem; padding: 0 .2rem; margin-right: .45rem; }
.fnp-note { min-height: 2.6rem; font-size: .85rem; color: #8a4b00; }
.fnp-note.ok { color: #17643a; } .fnp-note.error { color: #a01b1b; }
.fnp-views { display: flex; gap: .4rem; margin-bottom: .4rem; }
.fnp-views:empty { display: none; }
.fnp-views button { padding: .15rem .6rem; border-radius: 1rem; border: 1px solid #bbb; background: #fff; cursor: pointer; }
.fnp-views button.on { background: #262730; color: #fff; }
@media (max-width: 900px) { .fnp-main { flex-direction: column; } .fnp-side { flex-basis: auto; width: 100%; } }
"""

_JS = """
function typing(el) {
  if (!el) return false;
  const tag = (el.tagName || "").toUpperCase();
  return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
}

export default function (component) {
  const { data, setTriggerValue, parentElement } = component;
  const root = parentElement.querySelector(".fnp-surface");
  let s = root.__fnp;
  if (!s) {
    s = root.__fnp = { token: null, shownAt: null, used: false, view: 0, undoSeq: 0 };
    s.note = (text, kind) => {
      const el = root.querySelector(".fnp-note");
      el.textContent = text || "";
      el.className = "fnp-note " + (kind || "");
    };
    s.choose = (value, via) => {
      const d = s.data;
      if (s.used) return;
      const shown = s.shownAt === null ? 0 : performance.now() - s.shownAt;
      if (shown < d.dwell_ms) { s.note("Too quick: look at the image first. Nothing was saved.", "info"); return; }
      s.used = true;
      root.classList.add("sent");
      root.querySelectorAll(".fnp-choices button[data-value]").forEach(
        (b) => b.classList.toggle("chosen", b.dataset.value === value));
      s.note("Saving " + value + "…");
      s.set("choice", { value: value, token: d.token, shown_ms: Math.round(shown), via: via });
    };
    s.undo = () => { s.undoSeq += 1; s.set("undo", { token: s.data.token, seq: s.undoSeq }); };
    s.onKey = (ev) => {
      if (ev.repeat || ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target) || typing(document.activeElement)) return;
      const k = (ev.key || "").toLowerCase();
      const d = s.data;
      if (d.undo && k === d.undo.key) { ev.preventDefault(); s.undo(); return; }
      if (d.views.length > 1 && k === "v") { ev.preventDefault(); s.show((s.view + 1) % d.views.length); return; }
      const c = d.choices.find((x) => x.key === k);
      if (!c) return;
      ev.preventDefault();
      s.choose(c.value, "key");
    };
    window.addEventListener("keydown", s.onKey, true);
    root.addEventListener("click", (ev) => {
      const b = ev.target.closest("button");
      if (!b) return;
      if (b.dataset.value) s.choose(b.dataset.value, "click");
      else if (b.classList.contains("undo")) s.undo();
      else if (b.dataset.view) s.show(Number(b.dataset.view));
    });
    s.show = (i) => {
      s.view = i;
      root.querySelector(".fnp-img").src = s.data.views[i].src;
      root.querySelectorAll(".fnp-views button").forEach((b, j) => b.classList.toggle("on", j === i));
    };
  }
  s.data = data;
  s.set = setTriggerValue;
  // The photo takes the height left below it in the window (whatever the page shows above), so the
  // whole face and every choice fit one screen without scrolling, down to a 1366 x 657 laptop.
  s.fit = () => {
    const img = root.querySelector(".fnp-img");
    const top = img.getBoundingClientRect().top + window.scrollY;
    const room = Math.max(240, Math.floor(window.innerHeight - top - 12));
    root.style.setProperty("--fnp-max-height", room + "px");
  };
  if (!s.resize) { s.resize = () => s.fit(); window.addEventListener("resize", s.resize); }
  requestAnimationFrame(s.fit);
  if (data.note) {
    const el = root.querySelector(".fnp-note");
    el.textContent = data.note;
    el.className = "fnp-note " + (data.note_kind || "");
  }
  if (data.token !== s.token) {
    // A new image: nothing counts until it is painted and the viewing time has passed.
    s.token = data.token; s.used = false; s.shownAt = null; s.view = 0;
    root.classList.remove("sent");
    s.note(data.note || "", data.note_kind);
    const choices = root.querySelector(".fnp-choices");
    choices.replaceChildren();
    const esc = (t) => String(t).replace(/[&<>"]/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[ch]);
    for (const c of data.choices) {
      const b = document.createElement("button");
      b.dataset.value = c.value;
      b.type = "button";
      if (c.primary) b.classList.add("primary");
      b.innerHTML = "<kbd>" + esc(c.key.toUpperCase()) + "</kbd>" + esc(c.label);
      choices.appendChild(b);
    }
    if (data.undo) {
      const u = document.createElement("button");
      u.type = "button"; u.className = "undo";
      u.innerHTML = "<kbd>" + esc(data.undo.key.toUpperCase()) + "</kbd>" + esc(data.undo.label);
      choices.appendChild(u);
    }
    const views = root.querySelector(".fnp-views");
    views.replaceChildren();
    if (data.views.length > 1) {
      data.views.forEach((v, i) => {
        const b = document.createElement("button");
        b.type = "button"; b.dataset.view = String(i); b.textContent = v.name + (i === 0 ? "" : "");
        views.appendChild(b);
      });
    }
    const img = root.querySelector(".fnp-img");
    img.alt = data.alt;
    const token = data.token;
    img.onload = () => {
      requestAnimationFrame(() => requestAnimationFrame(() => {
        if (s.token !== token || s.shownAt !== null) return;
        s.shownAt = performance.now();
        window.__fnpPainted = { token: token, at: s.shownAt };
      }));
    };
    s.show(0);
  }
  return () => {
    window.removeEventListener("keydown", s.onKey, true);
    if (s.resize) window.removeEventListener("resize", s.resize);
    root.__fnp = null;
  };
}
"""

_SURFACE = st.components.v2.component("fnp_decision_surface", html=_HTML, css=_CSS, js=_JS)


@dataclass(frozen=True)
class Choice:
    """One button of the surface: the value sent, its key, its words, and whether it stands out."""

    value: str
    key: str
    label: str
    primary: bool = False


def jpeg_data_url(rgb: np.ndarray | Image.Image, max_side: int = 1100, quality: int = 88) -> str:
    """Return `rgb` (an array or a Pillow image) as a data: URL of a JPEG at most `max_side` pixels
    on its longer side."""
    img = rgb.copy() if isinstance(rgb, Image.Image) else Image.fromarray(rgb)
    img = img.convert("RGB")
    img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def decision_surface(*, key: str, token: str, views: list[tuple[str, str]], alt: str, choices: list[Choice],
                     dwell_ms: int, on_choice: Callable[[], None], on_undo: Callable[[], None] | None = None,
                     undo: tuple[str, str] | None = None, note: tuple[str, str] | None = None) -> None:
    """Show the photo (`views`: (name, data URL), the first shown; V switches) beside `choices`.

    `token` names what is being decided (a claim, a case): a choice is sent with it, and the page
    must ignore a choice whose token is not the one it is showing. The page's callbacks read
    `choice_of(key)` / run on `undo` (key, label). `note` ((kind, text), kind 'ok', 'info' or
    'error') is shown beside the choices, where it covers nothing. The photo fills the height left
    in the window below it.
    """
    data = {"token": token, "views": [{"name": n, "src": src} for n, src in views], "alt": alt,
            "choices": [c.__dict__ for c in choices], "dwell_ms": int(dwell_ms),
            "undo": {"key": undo[0], "label": undo[1]} if undo else None,
            "note": note[1] if note else "", "note_kind": note[0] if note else ""}
    _SURFACE(key=key, data=data, on_choice_change=on_choice, on_undo_change=on_undo or (lambda: None))


def choice_of(key: str) -> dict | None:
    """The choice the surface `key` just sent ({value, token, shown_ms, via}), or None."""
    result = st.session_state.get(key)
    value = getattr(result, "choice", None) if result is not None else None
    if value is None and isinstance(result, dict):
        value = result.get("choice")
    return value if isinstance(value, dict) else None
