"""The landmark editor: move any of an image's 68 points on the photo, zoomed on the face.

A small inline component (st.components.v2): the face region of the photo with the 68 points drawn
over it in SVG. Click a point, then click its place; or drag it. dlib's own position of every
moved point stays visible as an orange ring. "Save correction" sends the 68 points to the server,
which checks the user's role and stores an append-only correction (labeling/workflow/landmark_edits.py);
the indices and check 2 follow at once. Pages call `landmark_editor(...)`; nothing else here is
page logic.
"""
from __future__ import annotations

import base64
import io
import math

import numpy as np
import streamlit as st
from PIL import Image

from labeling.workflow.landmark_edits import LandmarkEditError, correct_landmarks, landmark_state
from labeling.accounts.permissions import PermissionDenied, allowed
from ui.images import stored_rgb

DISPLAY_WIDTH = 640
DECODE_SIDE = 2400  # the photo is decoded this large (at most), so the zoomed face stays sharp
FACE_MARGIN = 0.3   # around the points' bounding box, as a share of its larger side

_REGIONS = ((range(0, 17), "jaw"), (range(17, 22), "brow, image left"), (range(22, 27), "brow, image right"),
            (range(27, 31), "nose bridge"), (range(31, 36), "nostrils"), (range(36, 42), "eye, image left"),
            (range(42, 48), "eye, image right"), (range(48, 68), "mouth"))
_NAMED = {36: "outer corner, image-left eye", 39: "inner corner, image-left eye", 42: "inner corner, image-right eye",
          45: "outer corner, image-right eye", 48: "mouth corner, image left", 54: "mouth corner, image right",
          30: "nose tip", 8: "chin", 33: "nose base", 19: "brow middle, image left", 24: "brow middle, image right"}
SIGNED_SHOWN = ("rgas_signed", "anas_signed", "eas_signed", "ebas_signed", "nas_signed", "mas_signed",
                "m_an_signed", "n_an_signed", "eb_an_signed")


def point_name(k: int) -> str:
    """Return a reader's name for dlib point `k` (0-67)."""
    if k in _NAMED:
        return _NAMED[k]
    return next(name for span, name in _REGIONS if k in span)


_HTML = """<div class="lm-root"></div>"""

_CSS = """
.lm-root { font-family: var(--st-font, sans-serif); font-size: 14px; color: var(--st-text-color, #222); }
.lm-bar { display: flex; gap: 8px; align-items: center; margin: 0 0 6px 0; flex-wrap: wrap; }
.lm-bar button { padding: 4px 10px; border-radius: 6px; border: 1px solid #999; background: #fff; cursor: pointer; }
.lm-bar button.lm-save { background: #ff4b4b; border-color: #ff4b4b; color: #fff; font-weight: 600; }
.lm-bar button:disabled { opacity: 0.45; cursor: default; }
.lm-status { height: 2.8em; overflow: hidden; margin: 4px 0; line-height: 1.4em; }  /* fixed: the photo never moves under the cursor */
.lm-svg { display: block; cursor: crosshair; touch-action: none; user-select: none; height: auto; }
.lm-pt { fill: #50ff50; stroke: #000; stroke-width: 1; cursor: grab; }
.lm-pt.lm-moved { fill: #ffe14b; }
.lm-pt.lm-sel { fill: #ff3df0; stroke: #fff; stroke-width: 2; }
.lm-hit { fill: transparent; stroke: none; cursor: grab; }
.lm-auto { fill: none; stroke: #ff9600; stroke-width: 2; pointer-events: none; }
.lm-link { stroke: #ff9600; stroke-width: 1.5; pointer-events: none; }
"""

_JS = """
export default function(component) {
  const { data, setTriggerValue, parentElement } = component;
  const root = parentElement.querySelector('.lm-root');
  if (!root || !data) return;
  root.innerHTML = '';
  const NS = 'http://www.w3.org/2000/svg';
  const k = data.k, x0 = data.x0, y0 = data.y0;
  const stored = data.points.map(p => [p[0], p[1]]);
  let pts = stored.map(p => [p[0], p[1]]);
  const auto = data.auto;
  const history = [];
  let selected = null, drag = null;
  const toScreen = p => [(p[0] - x0) * k, (p[1] - y0) * k];
  const toPhoto = (sx, sy) => [sx / k + x0, sy / k + y0];

  const bar = document.createElement('div'); bar.className = 'lm-bar';
  const save = document.createElement('button'); save.className = 'lm-save'; save.textContent = 'Save correction';
  save.setAttribute('data-action', 'save');
  const undo = document.createElement('button'); undo.textContent = 'Undo last move'; undo.setAttribute('data-action', 'undo');
  const reset = document.createElement('button'); reset.textContent = 'Reset'; reset.setAttribute('data-action', 'reset');
  const count = document.createElement('span');
  bar.append(save, undo, reset, count);
  const status = document.createElement('div'); status.className = 'lm-status';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('class', 'lm-svg'); svg.style.width = '100%'; svg.style.maxWidth = data.w + 'px';
  svg.setAttribute('viewBox', `0 0 ${data.w} ${data.h}`); svg.setAttribute('data-testid', 'landmark-editor');
  const img = document.createElementNS(NS, 'image');
  img.setAttribute('href', data.img); img.setAttribute('width', data.w); img.setAttribute('height', data.h);
  svg.appendChild(img);
  const overlay = document.createElementNS(NS, 'g'); svg.appendChild(overlay);
  root.append(bar, status, svg);

  const r = data.r;
  function moved(i) { return Math.hypot(pts[i][0] - stored[i][0], pts[i][1] - stored[i][1]) >= 0.01; }
  function draw() {
    overlay.innerHTML = '';
    if (auto) {
      for (let i = 0; i < 68; i++) {
        if (Math.hypot(auto[i][0] - pts[i][0], auto[i][1] - pts[i][1]) * k < 1) continue;
        const [ax, ay] = toScreen(auto[i]); const [px, py] = toScreen(pts[i]);
        const l = document.createElementNS(NS, 'line');
        l.setAttribute('x1', ax); l.setAttribute('y1', ay); l.setAttribute('x2', px); l.setAttribute('y2', py);
        l.setAttribute('class', 'lm-link'); overlay.appendChild(l);
        const c = document.createElementNS(NS, 'circle');
        c.setAttribute('cx', ax); c.setAttribute('cy', ay); c.setAttribute('r', r + 1.5); c.setAttribute('class', 'lm-auto');
        overlay.appendChild(c);
      }
    }
    for (let i = 0; i < 68; i++) {
      const [sx, sy] = toScreen(pts[i]);
      const hit = document.createElementNS(NS, 'circle');
      hit.setAttribute('cx', sx); hit.setAttribute('cy', sy); hit.setAttribute('r', r + 5);
      hit.setAttribute('class', 'lm-hit'); hit.setAttribute('data-point', i);
      const c = document.createElementNS(NS, 'circle');
      c.setAttribute('cx', sx); c.setAttribute('cy', sy); c.setAttribute('r', i === selected ? r + 1.5 : r);
      c.setAttribute('class', 'lm-pt' + (moved(i) ? ' lm-moved' : '') + (i === selected ? ' lm-sel' : ''));
      c.setAttribute('data-dot', i);
      const t = document.createElementNS(NS, 'title'); t.textContent = `point ${i}: ${data.names[i]}`;
      hit.appendChild(t);
      overlay.appendChild(c); overlay.appendChild(hit);
    }
    const n = stored.filter((_, i) => moved(i)).length;
    count.textContent = n ? `${n} point(s) moved, not saved yet` : 'no change';
    save.disabled = n === 0; undo.disabled = history.length === 0; reset.disabled = n === 0;
    status.textContent = selected === null
      ? 'Click a point (or drag it), then click where it belongs.'
      : `Point ${selected} (${data.names[selected]}) selected: click its place on the photo, or press Esc.`;
  }
  function where(ev) {  // client pixels -> the picture's own pixels, however the SVG is scaled
    const p = svg.createSVGPoint(); p.x = ev.clientX; p.y = ev.clientY;
    const q = p.matrixTransform(svg.getScreenCTM().inverse());
    return [q.x, q.y];
  }
  function place(i, sx, sy) {
    const sxc = Math.min(Math.max(sx, 0), data.w), syc = Math.min(Math.max(sy, 0), data.h);
    pts[i] = toPhoto(sxc, syc);
  }
  svg.addEventListener('pointerdown', ev => {
    const target = ev.target.closest ? ev.target.closest('[data-point]') : null;
    if (target) {
      const i = Number(target.getAttribute('data-point'));
      drag = { i, start: where(ev), before: pts[i].slice(), moved: false };
      svg.setPointerCapture(ev.pointerId);
      ev.preventDefault();
    }
  });
  svg.addEventListener('pointermove', ev => {
    if (!drag) return;
    const [sx, sy] = where(ev);
    if (!drag.moved && Math.hypot(sx - drag.start[0], sy - drag.start[1]) < 3) return;
    drag.moved = true; place(drag.i, sx, sy); selected = null; draw();
  });
  svg.addEventListener('pointerup', ev => {
    const [sx, sy] = where(ev);
    if (drag) {
      const d = drag; drag = null;
      if (d.moved) { history.push([d.i, d.before]); place(d.i, sx, sy); selected = null; }
      else { selected = (selected === d.i) ? null : d.i; }
      draw(); return;
    }
    if (selected !== null) {
      history.push([selected, pts[selected].slice()]);
      place(selected, sx, sy); selected = null; draw();
    }
  });
  root.tabIndex = 0;
  root.addEventListener('keydown', ev => { if (ev.key === 'Escape') { selected = null; draw(); } });
  undo.onclick = () => { const h = history.pop(); if (h) { pts[h[0]] = h[1]; } draw(); };
  reset.onclick = () => { pts = stored.map(p => [p[0], p[1]]); history.length = 0; selected = null; draw(); };
  save.onclick = () => {
    save.disabled = true; status.textContent = 'Saving…';
    setTriggerValue('save', { points: pts, nonce: data.nonce, at: Date.now() });
  };
  draw();
}
"""

_editor = st.components.v2.component("fnp_landmark_editor", html=_HTML, css=_CSS, js=_JS)


def _face_view(rgb: np.ndarray, points: np.ndarray, size: tuple[int, int]) -> tuple[str, dict]:
    """Return (JPEG data URL of the face region at DISPLAY_WIDTH, its geometry in photo pixels)."""
    w, h = size
    lo, hi = np.nanmin(points, axis=0), np.nanmax(points, axis=0)
    pad = FACE_MARGIN * float(max(hi - lo))
    x0, y0 = max(0.0, lo[0] - pad), max(0.0, lo[1] - pad)
    x1, y1 = min(float(w), hi[0] + pad), min(float(h), hi[1] + pad)
    s = rgb.shape[1] / w  # decoded pixels per photo pixel
    crop = Image.fromarray(rgb).crop((round(x0 * s), round(y0 * s), round(x1 * s), round(y1 * s)))
    k = DISPLAY_WIDTH / (x1 - x0)
    disp_h = max(1, round((y1 - y0) * k))
    crop = crop.resize((DISPLAY_WIDTH, disp_h), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    crop.save(buf, "JPEG", quality=90)
    url = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
    return url, {"x0": x0, "y0": y0, "k": k, "w": DISPLAY_WIDTH, "h": disp_h}


def _fmt(v) -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:+.3f}"


def landmark_editor(db, user, image_id: int, key: str) -> None:
    """Show the landmark editor of image `image_id` for `user` (coordinators and adjudicators only;
    anyone else sees nothing) under widget key prefix `key`; store a correction when saved."""
    if not allowed(user, "landmarks.correct"):
        return
    flash_key = f"{key}_lm_flash"
    if st.session_state.get(flash_key):
        kind, text = st.session_state.pop(flash_key)
        (st.success if kind == "ok" else st.error)(text)
    state = landmark_state(db, image_id)
    if state.points is None:
        st.info(f"No landmarks to correct: {state.status or 'not measured yet'}"
                f"{' (' + state.message + ')' if state.message and state.status else ''}.")
        return
    rgb = stored_rgb(state.stored_path, DECODE_SIDE)
    if rgb is None:
        st.error("The stored photo cannot be displayed.")
        return
    url, view = _face_view(rgb, state.points, state.size)
    if state.corrected:
        last = state.corrections[-1]
        st.caption(f"Corrected by hand {len(state.corrections)} time(s); last by {last['actor']} at {last['at'][:16]} "
                   f"(points {', '.join(map(str, last['moved']))}). Orange rings: dlib's own points.")
    st.text_input("Reason for the correction (optional)", key=f"{key}_lm_reason_{image_id}", max_chars=500)
    data = {"img": url, **view, "points": state.points.tolist(),
            "auto": state.auto_points.tolist() if state.corrected else None,
            "names": [point_name(i) for i in range(68)], "r": 4.0, "nonce": len(state.corrections)}
    result = _editor(data=data, key=f"{key}_lm_{image_id}_{len(state.corrections)}", on_save_change=lambda: None,
                     height="content")
    payload = getattr(result, "save", None)
    if payload and payload.get("nonce") == len(state.corrections):
        _save(db, user, image_id, payload.get("points"), st.session_state.get(f"{key}_lm_reason_{image_id}", ""),
              flash_key)
    _indices_table(state.indices)


def _save(db, user, image_id: int, points, reason: str, flash_key: str) -> None:
    try:
        res = correct_landmarks(db, user, image_id, points, reason)
    except (LandmarkEditError, PermissionDenied) as exc:
        st.session_state[flash_key] = ("error", f"Not saved: {exc}")
    else:
        c2 = ", ".join(f"{k}" for k in res.check2) or "no new result (the image is not waiting for check 2)"
        st.session_state[flash_key] = ("ok", (
            f"Correction {res.correction_id} saved: point(s) {', '.join(map(str, res.moved))} moved. "
            f"Signed RgAs {_fmt(res.before.get('rgas_signed'))} → {_fmt(res.after.get('rgas_signed'))}, "
            f"signed AnAs {_fmt(res.before.get('anas_signed'))} → {_fmt(res.after.get('anas_signed'))}; "
            f"check 2: {c2}."))
    st.rerun()


def _indices_table(indices: dict | None) -> None:
    if not indices:
        return
    from asymmetry.indices import PAPER_NAMES

    names = {f: PAPER_NAMES.get(f.removesuffix("_signed"), f) + " signed" for f in SIGNED_SHOWN}
    st.caption("Current indices (positive = the patient's left lower / less closed): " + ", ".join(
        f"{names[f]} {_fmt(indices.get(f))}" for f in SIGNED_SHOWN) + f"; side {indices.get('side') or 'none'}.")
