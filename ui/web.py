"""The web routes around the Streamlit app: first-run set-up and sign-in, and the gate
that sends a browser without a live session to sign in before any page of the app loads.

Sign-in is a plain HTML form posted to the server, which sets the session cookie itself:
HttpOnly (no script can read it), SameSite=Lax, Secure behind HTTPS. The app's pages then find
the session from that cookie on every run, so a reload, a second tab or a deep link keeps the
reader signed in, and a deep link opened before sign-in lands on the page asked for after it.
"""
from __future__ import annotations

import html
import logging
import os
import secrets
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from labeling.accounts import auth
from labeling.accounts import sessions
from ui.paths import EXPORT_DOWNLOAD, SETUP, SIGNIN, safe_next
from labeling.accounts.users import MIN_PASSWORD, UserError, create_first_admin, has_admin, has_users

log = logging.getLogger("fnp")

CSRF_COOKIE = "fnp_csrf"
SSO_COOKIE = "_streamlit_user"  # Streamlit's own cookie once st.login (OIDC) signed someone in
NOTICE = ("Research tool, not a diagnostic device. FNP TripleCheck supports research annotation of facial nerve "
          "paralysis photos; it does not diagnose and must not guide treatment.")
# Paths the gate never stops: Streamlit's own machinery and these routes.
_OPEN_PREFIXES = ("/_stcore/", "/static/", "/media/", "/component/", "/app/static/", "/auth/", "/oauth2callback",
                  "/metrics/", SIGNIN, SETUP, "/favicon")


def _project():
    """The server's Project (ui.common holds it, one per process)."""
    from ui.common import project

    return project()


def _client(request: Request) -> str:
    """The client's address. Behind a reverse proxy set FNP_TRUSTED_PROXY=1 to take the first
    X-Forwarded-For address instead of the proxy's own (docs/deploy.md)."""
    if os.environ.get("FNP_TRUSTED_PROXY") == "1":
        forwarded = request.headers.get("x-forwarded-for", "")
        if forwarded:
            return forwarded.split(",")[0].strip()[:100]
    return request.client.host if request.client else ""


def _secure(request: Request) -> bool:
    proto = request.headers.get("x-forwarded-proto") if os.environ.get("FNP_TRUSTED_PROXY") == "1" else None
    return (proto or request.url.scheme) == "https"


def sso_configured() -> bool:
    """True when `.streamlit/secrets.toml` configures Streamlit's OIDC sign-in ([auth])."""
    try:
        import streamlit as st

        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)} · FNP TripleCheck</title>
<style>
 body {{ font-family: "Source Sans Pro", system-ui, sans-serif; background: #f6f7f9; color: #262730; margin: 0; }}
 main {{ max-width: 26rem; margin: 8vh auto; background: #fff; padding: 2rem 2.2rem; border-radius: .6rem;
        box-shadow: 0 1px 4px rgba(0,0,0,.12); }}
 h1 {{ font-size: 1.45rem; margin: 0 0 .3rem; }} .notice {{ font-size: .85rem; color: #555; margin: 0 0 1.2rem; }}
 label {{ display: block; margin: .9rem 0 .25rem; font-weight: 600; }}
 input[type=text], input[type=password] {{ width: 100%; box-sizing: border-box; padding: .55rem .6rem;
        border: 1px solid #bbb; border-radius: .35rem; font-size: 1rem; }}
 button, .button {{ margin-top: 1.3rem; width: 100%; padding: .6rem; font-size: 1rem; border: 0; border-radius: .35rem;
        background: #ff4b4b; color: #fff; cursor: pointer; display: block; text-align: center; text-decoration: none; }}
 .secondary {{ background: #fff; color: #262730; border: 1px solid #bbb; }}
 .error {{ background: #ffe9e9; color: #7d1a1a; padding: .6rem .8rem; border-radius: .35rem; margin: .8rem 0; }}
 .info {{ background: #e8f1fd; color: #123d7a; padding: .6rem .8rem; border-radius: .35rem; margin: .8rem 0; }}
 fieldset {{ border: 0; padding: 0; margin: .9rem 0 0; }} fieldset label {{ display: inline; font-weight: 400; margin-right: .8rem; }}
</style></head><body><main><h1>FNP TripleCheck</h1><p class="notice">{html.escape(NOTICE)}</p>{body}</main></body></html>""",
                        status_code=status, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                                     "Referrer-Policy": "same-origin"})


def _csrf_pair(request: Request) -> tuple[str, bool]:
    """Return the CSRF token of this browser (a new one when it has none) and whether it is new."""
    token = request.cookies.get(CSRF_COOKIE)
    return (token, False) if token and len(token) >= 20 else (secrets.token_urlsafe(24), True)


def _with_csrf(response: Response, token: str, new: bool, request: Request) -> Response:
    if new:
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request), path="/")
    return response


async def _checked_form(request: Request) -> dict | None:
    """The posted form, or None when it does not come from our own page (origin or CSRF token off)."""
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host"):
        return None
    form = dict(await request.form())
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not secrets.compare_digest(cookie, str(form.get("csrf", ""))):
        return None
    return form


def _signin_form(next_path: str, csrf: str, message: str = "", name: str = "", info: str = "") -> str:
    sso = ('<a class="button secondary" href="/auth/login">Sign in with your hospital account</a>'
           if sso_configured() else "")
    return (f'{f"<div class=info>{html.escape(info)}</div>" if info else ""}'
            f'{f"<div class=error role=alert>{html.escape(message)}</div>" if message else ""}'
            f'<form method="post" action="{SIGNIN}"><input type="hidden" name="csrf" value="{html.escape(csrf)}">'
            f'<input type="hidden" name="next" value="{html.escape(next_path)}">'
            f'<label for="name">User name</label><input id="name" name="name" type="text" autocomplete="username" '
            f'value="{html.escape(name)}" autofocus required>'
            f'<label for="password">Password</label><input id="password" name="password" type="password" '
            f'autocomplete="current-password" required>'
            f'<button type="submit">Sign in</button></form>{sso}')


async def signin(request: Request) -> Response:
    """GET: the sign-in form. POST: check the password, start a session, set its cookie, go on to `next`."""
    db = (await run_in_threadpool(_project)).db
    if not await run_in_threadpool(has_users, db):
        return RedirectResponse(SETUP, status_code=303)
    csrf, new = _csrf_pair(request)
    if request.method == "GET":
        next_path = safe_next(request.query_params.get("next"))
        info = {"signed-out": "You are signed out.", "expired": "Your session ended. Please sign in again.",
                "everywhere": "You are signed out on every device.",
                "created": "Admin account created. Sign in with it."}.get(request.query_params.get("why", ""), "")
        if not await run_in_threadpool(has_admin, db):
            info = (info + " " if info else "") + "This project has no admin yet."
            body = _signin_form(next_path, csrf, info=info) + f'<a class="button secondary" href="{SETUP}">First-run ' \
                'set-up: create the first admin</a>'
        else:
            body = _signin_form(next_path, csrf, info=info)
        response = _page("Sign in", body)
        # A stale session cookie (revoked, expired) is dropped here, before a new one is set.
        response.delete_cookie(sessions.COOKIE, path="/")
        return _with_csrf(response, csrf, new, request)
    form = await _checked_form(request)
    if form is None:
        return _with_csrf(_page("Sign in", _signin_form("/", csrf, "The form expired. Please sign in again."), 400),
                          csrf, new, request)
    next_path = safe_next(form.get("next"))
    name, password = str(form.get("name", ""))[:64], str(form.get("password", ""))[:1024]
    client = _client(request)
    result = await run_in_threadpool(auth.sign_in, db, name, password, client)
    if result.user is None:
        return _with_csrf(_page("Sign in", _signin_form(next_path, csrf, result.message, name), 401), csrf, new,
                          request)
    token, _ = await run_in_threadpool(sessions.start_session, db, result.user, client)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(sessions.COOKIE, token, httponly=True, samesite="lax", secure=_secure(request), path="/")
    return response


async def setup(request: Request) -> Response:
    """First-run set-up: while the project has no active admin, create the first one."""
    db = (await run_in_threadpool(_project)).db
    if await run_in_threadpool(has_admin, db):
        return RedirectResponse(SIGNIN, status_code=303)
    csrf, new = _csrf_pair(request)

    def form(message: str = "", name: str = "") -> str:
        roles = "".join(f'<label><input type="checkbox" name="role" value="{r}"{" checked" if r == "coordinator" else ""}>'
                        f' {r}</label>' for r in ("coordinator", "auditor", "adjudicator", "reader"))
        return (f'<p>First-run set-up: this project has no admin yet. Create the first <b>admin</b>; they add everyone '
                f'else.</p>{f"<div class=error role=alert>{html.escape(message)}</div>" if message else ""}'
                f'<form method="post" action="{SETUP}"><input type="hidden" name="csrf" value="{html.escape(csrf)}">'
                f'<label for="name">Admin user name</label><input id="name" name="name" type="text" '
                f'value="{html.escape(name)}" autocomplete="username" required>'
                f'<label for="password">Password (at least {MIN_PASSWORD} characters)</label>'
                f'<input id="password" name="password" type="password" autocomplete="new-password" required>'
                f'<label for="password2">Password again</label>'
                f'<input id="password2" name="password2" type="password" autocomplete="new-password" required>'
                f'<fieldset><legend>Also give this account the roles</legend>{roles}</fieldset>'
                f'<button type="submit">Create admin</button></form>')

    if request.method == "GET":
        return _with_csrf(_page("Set-up", form()), csrf, new, request)
    checked = await _checked_form(request)
    if checked is None:
        return _with_csrf(_page("Set-up", form("The form expired. Please try again."), 400), csrf, new, request)
    raw = await request.form()
    name = str(checked.get("name", ""))[:64]
    if checked.get("password") != checked.get("password2"):
        return _with_csrf(_page("Set-up", form("The two passwords differ.", name), 400), csrf, new, request)
    extra = [r for r in raw.getlist("role") if r in ("coordinator", "auditor", "adjudicator", "reader")]

    try:
        await run_in_threadpool(create_first_admin, db, name, str(checked.get("password", "")), extra)
    except UserError as exc:
        return _with_csrf(_page("Set-up", form(str(exc), name), 400), csrf, new, request)
    return RedirectResponse(f"{SIGNIN}?why=created", status_code=303)


async def run_metrics(request: Request) -> Response:
    """GET: the page-run times recorded so far (ui/timing.py); POST: the same, then cleared."""
    from starlette.responses import JSONResponse

    from ui import timing

    recorded = timing.runs(reset=request.method == "POST")
    return JSONResponse({"runs_s": [wall for wall, _ in recorded], "cpu_s": [cpu for _, cpu in recorded]})


def export_download_url(name: str) -> str:
    """Return the path that downloads the finished export `name` as a zip."""
    return f"{EXPORT_DOWNLOAD}{quote(name, safe='')}.zip"


async def export_download(request: Request) -> Response:
    """GET: the finished export NAME as a zip, streamed from its folder, for a signed-in user allowed
    to export (the session and the role are checked here, on the server, and the download is
    logged in the audit log). Refused with a page saying why otherwise."""
    from labeling.export.dataset import ExportError
    from labeling.export.download import download_export
    from labeling.accounts.permissions import PermissionDenied

    name = request.path_params["name"]
    back = '<a class="button secondary" href="/export">Back to the Export page</a>'
    if request.headers.get("sec-fetch-site") == "cross-site":  # a link on another site: nobody asked for this here
        return _page("Download", "<div class=error role=alert>Open the download from the Export page.</div>" + back,
                     403)

    def prepare():
        db = _project().db
        session = sessions.session_for(db, request.cookies.get(sessions.COOKIE))
        if session is None:
            return None, None
        try:
            return download_export(db, _project().store, name, actor=session.user), None
        except PermissionDenied:
            return None, ("Only a coordinator may download exports.", 403)
        except ExportError as exc:
            return None, (f"There is {exc}.", 404)

    try:
        zipped, refusal = await run_in_threadpool(prepare)
    except OSError as exc:  # the export folder cannot be read
        log.exception("export download failed")
        why = html.escape(exc.strerror or str(exc))
        return _page("Download", f"<div class=error role=alert>The export cannot be read ({why}).</div>{back}", 500)
    if zipped is None and refusal is None:
        return RedirectResponse(f"{SIGNIN}?next=/export", status_code=303)
    if refusal:
        return _page("Download", f"<div class=error role=alert>{html.escape(refusal[0])}</div>{back}", refusal[1])
    return StreamingResponse(zipped.chunks(), media_type="application/zip", headers={
        "Content-Length": str(zipped.size), "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f'attachment; filename="{zipped.file_name}"'})


def routes() -> list[Route]:
    """The routes st.App serves beside Streamlit's own."""
    from ui import timing

    out = [Route(SIGNIN, signin, methods=["GET", "POST"]), Route(SETUP, setup, methods=["GET", "POST"]),
           Route(EXPORT_DOWNLOAD + "{name}.zip", export_download, methods=["GET"])]
    if timing.enabled():
        out.append(Route("/metrics/runs", run_metrics, methods=["GET", "POST"]))
    return out


class SignInGate:
    """ASGI middleware: a browser opening a page of the app without a live session is sent to sign
    in (or to first-run set-up), with the page asked for kept as `next`. Streamlit's own
    machinery (assets, websocket, media) and the routes above pass untouched; the pages check the
    session again on every run, so the gate is for a good experience, not the only protection."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "GET" and self._is_page(scope["path"]):
            request = Request(scope)
            accepts_html = "text/html" in request.headers.get("accept", "")
            if accepts_html and not request.cookies.get(SSO_COOKIE):
                target = await self._redirect_for(request)
                if target:
                    await RedirectResponse(target, status_code=303)(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    @staticmethod
    def _is_page(path: str) -> bool:
        last = path.rsplit("/", 1)[-1]
        return not path.startswith(_OPEN_PREFIXES) and "." not in last

    @staticmethod
    async def _redirect_for(request: Request) -> str | None:
        def check() -> str | None:
            db = _project().db
            if not has_users(db):
                return SETUP
            if sessions.session_for(db, request.cookies.get(sessions.COOKIE)) is not None:
                return None
            wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return f"{SIGNIN}?next={quote(safe_next(wanted), safe='/')}" + (
                "&why=expired" if request.cookies.get(sessions.COOKIE) else "")

        try:
            return await run_in_threadpool(check)
        except Exception:  # the database is unreachable: let the page say so rather than loop
            log.exception("sign-in gate could not check the session")
            return None
