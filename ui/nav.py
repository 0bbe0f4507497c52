"""Same-tab navigation out of the Streamlit app: to the sign-in form and back.

Streamlit opens its link buttons in a new tab; signing out or in must happen in this one, so the
tab that held the session is the tab that leaves it. `link` draws a link styled as a button;
`go` sends the browser on at once (after a sign-out done on the server).
"""
from __future__ import annotations

import streamlit as st

_CSS = """
a.fnp-link { display: inline-block; padding: .4rem .8rem; border-radius: .5rem; text-decoration: none;
  border: 1px solid var(--st-border-color, #ccc); color: var(--st-text-color, #262730);
  background: var(--st-background-color, #fff); font-size: .95rem; }
a.fnp-link.primary { background: var(--st-primary-color, #ff4b4b); border-color: var(--st-primary-color, #ff4b4b);
  color: #fff; }
a.fnp-link:hover { border-color: var(--st-primary-color, #ff4b4b); }
"""

_JS = """
export default function (component) {
  const { data, parentElement } = component;
  if (data.go) { window.location.assign(data.go); return; }
  let a = parentElement.querySelector("a.fnp-link");
  if (!a) { a = document.createElement("a"); a.className = "fnp-link"; parentElement.appendChild(a); }
  a.href = data.href;
  a.textContent = data.label;
  a.classList.toggle("primary", !!data.primary);
}
"""

_NAV = st.components.v2.component("fnp_nav", css=_CSS, js=_JS)


def link(label: str, href: str, *, key: str, primary: bool = False) -> None:
    """A link (styled as a button) that opens `href` in this tab."""
    _NAV(key=key, data={"label": label, "href": href, "primary": primary})


def go(url: str, *, key: str = "fnp_go") -> None:
    """Send this tab to `url` now."""
    st.caption("Signing out…")
    _NAV(key=key, data={"go": url})
