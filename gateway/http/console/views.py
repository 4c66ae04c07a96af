"""Console pages. Each docstring names the roles that may open it."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid

import aiohttp_jinja2
from aiohttp import web
from aiohttp_session import get_session, new_session
from cryptography import x509
from multidict import MultiDictProxy

from gateway.audit import live, timeline
from gateway.audit.signing import load_certificate
from gateway.core import appkeys as keys
from gateway.core.clock import BANGKOK
from gateway.core.errors import GatewayError
from gateway.http import appstate, params
from gateway.http.console import check_csrf
from gateway.intake.limits import Throttled
from gateway.storage import search, users
from gateway.storage.users import Role

Page = dict[str, object]
"""What a page handler gives its template."""
STAFF = (Role.OPERATOR.value, Role.AUDITOR.value, Role.ADMIN.value)
EVERYONE = (Role.AGENCY.value, *STAFF)
PAGE = 50


async def need(request: web.Request, *roles: str) -> users.User:
    """The logged-in user if their role is one of ``roles``; login redirect or 403 otherwise."""
    session = await get_session(request)
    name = (session.get("user") or {}).get("username")
    user = await users.get(request.app[keys.POOL], name) if name else None
    if user is None or user.disabled:
        session.pop("user", None)
        raise web.HTTPFound(f"/console/login?next={request.path_qs}" if request.method == "GET" else "/console/login")
    if user.role.value not in roles:
        raise web.HTTPForbidden(text=f"this page needs the role {' or '.join(roles)}")
    return user


async def _form(request: web.Request) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    form = await request.post()
    await check_csrf(request, form)
    return form


def _safe_next(value: object) -> str:
    return value if isinstance(value, str) and value.startswith("/console/") and not value.startswith("//") else "/console/letters"


@aiohttp_jinja2.template("login.html")
async def login_page(request: web.Request) -> Page:
    """Public. The login form."""
    return {"next": _safe_next(request.query.get("next")), "error": None}


async def login(request: web.Request) -> web.Response:
    """Public. Check the password; start a fresh session (no fixation)."""
    form = await _form(request)
    username, address = str(form.get("username", "")), request.remote or "-"
    throttle = appstate.login_throttle(request.app)
    try:
        throttle.check(username, address)
    except Throttled as exc:
        response = aiohttp_jinja2.render_template("login.html", request, {
            "next": _safe_next(form.get("next")), "error": True, "throttled": True}, status=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    user = await users.authenticate_password(request.app[keys.POOL], username, str(form.get("password", "")))
    if user is None:
        throttle.failed(username, address)
        return aiohttp_jinja2.render_template("login.html", request, {
            "next": _safe_next(form.get("next")), "error": True}, status=401)
    throttle.succeeded(username)
    session = await new_session(request)
    session["user"] = {"username": user.username, "role": user.role.value, "agency": user.agency}
    session["csrf"] = secrets.token_urlsafe(32)
    raise web.HTTPFound(_safe_next(form.get("next")))


async def logout(request: web.Request) -> web.Response:
    """Any logged-in role. End the session."""
    await _form(request)
    session = await get_session(request)
    session.invalidate()
    raise web.HTTPFound("/console/login")


async def index(request: web.Request) -> web.Response:
    """Any logged-in role. Goes to the letter search."""
    await need(request, *EVERYONE)
    raise web.HTTPFound("/console/letters")


def _parse_day(value: str | None, *, end: bool = False) -> dt.datetime | None:
    """A date typed by a person: Gregorian (2026-11-22) or Buddhist era (2569-11-22), Bangkok day."""
    if not value:
        return None
    try:
        d = dt.date.fromisoformat(value.strip())
    except ValueError:
        raise GatewayError(f"{value!r} is not a date (YYYY-MM-DD)", code="request.invalid", field="date") from None
    if d.year > 2400:
        d = d.replace(year=d.year - 543)
    start = dt.datetime.combine(d, dt.time(), BANGKOK)
    return start + dt.timedelta(days=1) if end else start


@aiohttp_jinja2.template("letters.html")
async def letters_page(request: web.Request) -> Page:
    """Agency (its own letters), operator, auditor, admin. Letter search with keyset pages."""
    user = await need(request, *EVERYONE)
    q = request.query
    agency = user.agency if user.role is Role.AGENCY else (q.get("agency") or None)
    f = params.letter_filter(q, agency=agency, since=_parse_day(q.get("since")),
                             until=_parse_day(q.get("until"), end=True))
    after = params.letter_keyset(q.get("after_at"), q.get("after_pk"))
    rows = await search.letters(request.app[keys.POOL], f, after=after, limit=PAGE + 1)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    next_q = None
    if more:
        nq = {k: v for k, v in q.items() if k not in ("after_at", "after_pk")}
        nq.update(after_at=rows[-1]["accepted_at"].isoformat(), after_pk=str(rows[-1]["pk"]))
        next_q = nq
    return {"rows": rows, "q": q, "next_q": next_q, "user": user,
            "directory": request.app[keys.DIRECTORY]}


@aiohttp_jinja2.template("letter.html")
async def letter_page(request: web.Request) -> Page:
    """Agency (sender or recipient only), operator, auditor, admin. The timeline of one letter."""
    user = await need(request, *EVERYONE)
    pool = request.app[keys.POOL]
    pk = params.parse_bigint(request.match_info["pk"], "pk")
    msg = await search.message(pool, pk)
    if msg is None or (user.role is Role.AGENCY
                       and (user.agency is None or not await search.visible_to(pool, pk, user.agency))):
        raise web.HTTPNotFound(text="no such letter")
    steps, dels = await timeline.build(pool, msg)
    return {"m": msg, "steps": steps, "deliveries": dels, "user": user, "directory": request.app[keys.DIRECTORY]}


@aiohttp_jinja2.template("queues.html")
async def queues_page(request: web.Request) -> Page:
    """Operator, auditor, admin. Queue depth and backoff state per destination."""
    user = await need(request, *STAFF)
    rows = await search.queue_by_destination(request.app[keys.POOL])
    now = request.app[keys.CLOCK].now()
    return {"rows": rows, "now": now, "user": user, "directory": request.app[keys.DIRECTORY]}


@aiohttp_jinja2.template("dead.html")
async def dead_page(request: web.Request) -> Page:
    """Operator, auditor (read only), admin. Dead letters; operators and admins can requeue."""
    user = await need(request, *STAFF)
    q = request.query
    after = params.dead_keyset(q.get("after_at"), q.get("after_id"))
    rows = await search.dead_letters(request.app[keys.POOL], after=after, limit=PAGE + 1)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    next_q = {"after_at": rows[-1]["created_at"].isoformat(), "after_id": str(rows[-1]["id"])} if more else None
    return {"rows": rows, "next_q": next_q, "user": user, "can_requeue": user.role in (Role.OPERATOR, Role.ADMIN),
            "done": q.get("requeued")}


async def requeue(request: web.Request) -> web.Response:
    """Operator, admin. Requeue a dead (or waiting) delivery; an audit event names the operator."""
    user = await need(request, Role.OPERATOR.value, Role.ADMIN.value)
    await _form(request)
    try:
        delivery_id = uuid.UUID(request.match_info["delivery_id"])
    except ValueError:
        raise web.HTTPNotFound(text="no such delivery") from None
    await appstate.exchange(request.app).operators.requeue(delivery_id, actor=f"user:{user.username}")
    raise web.HTTPFound(f"/console/dead?requeued={delivery_id}")


@aiohttp_jinja2.template("directory.html")
async def directory_page(request: web.Request) -> Page:
    """Operator, auditor, admin. The agency directory (ทำเนียบหน่วยงาน) and routes."""
    user = await need(request, *STAFF)
    q = (request.query.get("q") or "").strip()
    agencies = [a for a in request.app[keys.DIRECTORY].all()
                if not q or q in a.code or q in a.name_th or q.lower() in a.name_en.lower()]
    return {"agencies": agencies[:500], "total": len(agencies), "q": q, "user": user}


@aiohttp_jinja2.template("audit.html")
async def audit_page(request: web.Request) -> Page:
    """Operator, auditor, admin. Audit chain status; auditors and admins can run a verification."""
    user = await need(request, *STAFF)
    st = await live.status(request.app[keys.POOL])
    job = appstate.verify_job(request.app)
    can_verify = user.role in (Role.AUDITOR, Role.ADMIN)
    return {"st": st, "user": user, "job": job, "report": job.report if can_verify else None,
            "can_verify": can_verify, "no_cert": can_verify and _audit_certificate(request.app) is None}


async def audit_verify(request: web.Request) -> web.Response:
    """Auditor, admin. Start verifying the live chain against the gateway certificate (in the background)."""

    user = await need(request, Role.AUDITOR.value, Role.ADMIN.value)
    await _form(request)
    cert = _audit_certificate(request.app)
    if cert is not None:  # in the background: the page shows progress, then the report
        appstate.verify_job(request.app).start(request.app[keys.POOL], cert, by=user.username,
                                             now=request.app[keys.CLOCK].now)
    raise web.HTTPSeeOther("/console/audit")


def _audit_certificate(app: web.Application) -> x509.Certificate | None:
    signer = app.get(keys.AUDIT_SIGNER)
    if signer is not None:
        return signer.certificate
    settings = app[keys.SETTINGS]
    if settings.audit_cert_path:
        return load_certificate(settings.audit_cert_path.read_bytes())
    return None
