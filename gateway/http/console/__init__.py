"""The operator web console (``/console``): server-rendered, works without JavaScript.

People log in with a username and password (argon2id hashes in ``users``);
the session is an encrypted cookie (aiohttp-session, Fernet) that is HttpOnly,
SameSite=Strict and Secure whenever the gateway is served over HTTPS or in the
production profile. Every form carries a CSRF token bound to the session and
checked in constant time. Every page states its role in its docstring and
calls :func:`need`; any other role gets 403.

The pages are in :mod:`gateway.http.console.views`; their URLs are in
:mod:`gateway.http.routes` with every other route of the app. :func:`setup`
adds the session and the templates.

Labels are Thai first, then English; dates for people are Buddhist-era in
Asia/Bangkok ("22 พ.ย. 2569 10:15 น."). Lists use keyset pagination.
"""

from __future__ import annotations

import datetime as dt
import functools
import hmac
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp_session import get_session
from aiohttp_session import setup as session_setup
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from markupsafe import Markup

from gateway.core import appkeys as keys
from gateway.core.clock import BANGKOK
from gateway.core.envelope import SECRECY_TH, SPEED_TH, Secrecy, Speed
from gateway.core.errors import AuthError
from gateway.core.labels import ROUTE_TH, STATUS_TH
from gateway.http import params

THAI_MONTHS = ("ม.ค.", "ก.พ.", "มี.ค.", "เม.ย.", "พ.ค.", "มิ.ย.", "ก.ค.", "ส.ค.", "ก.ย.", "ต.ค.", "พ.ย.", "ธ.ค.")


def thai_datetime(value: dt.datetime | None) -> str:
    """"22 พ.ย. 2569 10:15 น." (Buddhist era, Asia/Bangkok)."""
    if value is None:
        return "–"
    t = value.astimezone(BANGKOK)
    return f"{t.day} {THAI_MONTHS[t.month - 1]} {t.year + 543} {t:%H:%M} น."


def thai_date(value: dt.date | None) -> str:
    if value is None:
        return "–"
    return f"{value.day} {THAI_MONTHS[value.month - 1]} {value.year + 543}"


def _session_key(app: web.Application) -> bytes:
    settings = app[keys.SETTINGS]
    path = settings.session_secret_path or Path(settings.data_dir) / "session.key"
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        # Written whole under a private name, then published with link(), which fails if the
        # name exists: the first process wins, the others read its key, and no process ever
        # reads the file half-written (gateway processes start side by side).
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            with open(tmp, "xb") as f:
                f.write(key)
                f.flush()
                os.fsync(f.fileno())
            tmp.chmod(0o600)
            try:
                os.link(tmp, path)
            except FileExistsError:
                key = path.read_bytes()
        finally:
            tmp.unlink(missing_ok=True)
    if len(key) != 32:
        raise ValueError(f"{path} must hold 32 bytes")
    return key


def setup(app: web.Application) -> None:
    settings = app[keys.SETTINGS]
    key = app.get(keys.SESSION_KEY) or _session_key(app)
    before = len(app.middlewares)
    secure = settings.profile == "production" or settings.base_url.startswith("https:")
    session_setup(app, EncryptedCookieStorage(key, cookie_name="sgw_session", secure=secure, httponly=True,
                                              samesite="Strict", max_age=8 * 3600))
    env = aiohttp_jinja2.setup(app, loader=jinja2.PackageLoader("gateway.http", "templates"), autoescape=True,
                               context_processors=[_context])
    _console_only(app, len(app.middlewares) - before)
    env.filters["thai_dt"] = thai_datetime
    env.filters["thai_date"] = thai_date
    # codes as a clerk reads them (ด่วนที่สุด, ลับ, ส่งถึงแล้ว), the code beside in small print
    env.filters["speed_th"] = lambda v: _coded(SPEED_TH, Speed, v)
    env.filters["secrecy_th"] = lambda v: _coded(SECRECY_TH, Secrecy, v)
    env.filters["status_th"] = lambda v: _coded(STATUS_TH, str, v)
    env.filters["route_th"] = lambda v: _coded(ROUTE_TH, str, v)
    env.globals["status_labels"] = STATUS_TH
    env.globals["route_labels"] = ROUTE_TH


def _console_only(app: web.Application, added: int) -> None:
    """Run the last ``added`` middlewares (the session's, the templates' context processors) for the
    console's paths only: the letter API, e-CMS, health and metrics never use a session or a template,
    and each of those middlewares was a coroutine layer and a look-up on every letter."""
    inner = list(app.middlewares[-added:])
    del app.middlewares[-added:]

    @web.middleware
    async def console_middlewares(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/console"):
            return await handler(request)
        for mw in reversed(inner):
            handler = functools.partial(mw, handler=handler)
        return await handler(request)

    app.middlewares.append(console_middlewares)


def _coded(table: Mapping[Any, str], kind: Any, value: Any) -> Markup | str:
    """The Thai label first, the code beside it: ``ด่วนมาก <span class="code">(very-urgent)</span>``;
    a value the table does not know is shown as it is, nothing as a dash."""
    code = getattr(value, "value", value)
    if code is None or code == "":
        return "–"
    try:
        label = table[kind(code)]
    except (ValueError, KeyError):
        return str(code)
    return Markup('{} <span class="code">({})</span>').format(label, code)


async def _context(request: web.Request) -> dict[str, object]:
    # aiohttp_jinja2 runs context processors for every request of the app: outside the console
    # (the letter API, e-CMS) touching the session would set a console cookie on each answer
    # and cost a Fernet encryption per letter (measured: 7% of the submit path's CPU).
    if not request.path.startswith("/console"):
        return {}
    session = await get_session(request)
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return {"me": session.get("user"), "csrf": session["csrf"], "path": request.path}


async def check_csrf(request: web.Request, form: Mapping[str, object]) -> None:
    """The form's token must be the session's (403 otherwise); one that cannot be a token at all (a NUL,
    text that is not ASCII: ``hmac.compare_digest`` refuses to compare it) is a bad request (400)."""
    given = params.optional(form, "csrf", "csrf") or ""
    session = await get_session(request)
    expected = session.get("csrf")
    if not expected or not hmac.compare_digest(given, expected):
        raise AuthError("the form was not sent from this console session (its CSRF token is missing or wrong); "
                        "open the page again and resend", code="auth.csrf")
