"""Console pages. Each docstring names the roles that may open it."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web
from aiohttp_session import get_session, new_session
from cryptography import x509
from multidict import MultiDictProxy

from gateway.audit import live, timeline
from gateway.audit.signing import load_certificate
from gateway.core import appkeys as keys
from gateway.core.clock import BANGKOK
from gateway.core.errors import AuthError, GatewayError, NotFound
from gateway.http import appstate, params
from gateway.http.console import check_csrf
from gateway.http.console.errors import page_for
from gateway.intake.limits import Throttled
from gateway.storage import lists as lists_store
from gateway.storage import ltv as ltv_store
from gateway.storage import search, users
from gateway.storage.search import LetterFilter
from gateway.storage.users import Role
from pki import thaidate

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
        # the path as it came, percent-encoded: a decoded one may hold what a Location header cannot
        raise web.HTTPFound("/console/login?" + urlencode({"next": request.rel_url.raw_path_qs})
                            if request.method == "GET" else "/console/login")
    if user.role.value not in roles:
        raise AuthError(f"this page needs the role {' or '.join(roles)}", code="auth.forbidden")
    return user


async def _form(request: web.Request) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    form = await request.post()
    await check_csrf(request, form)
    return form


def _safe_next(source: Mapping[str, object]) -> str:
    """Where to go after logging in: a console path of ``source``'s ``next`` (checked), else the letters."""
    value = params.optional(source, "next", "next")
    return value if value and value.startswith("/console/") and not value.startswith("//") else "/console/letters"


@aiohttp_jinja2.template("login.html")
async def login_page(request: web.Request) -> Page:
    """Public. The login form."""
    return {"next": _safe_next(request.query), "error": None}


async def login(request: web.Request) -> web.Response:
    """Public. Check the password; start a fresh session (no fixation)."""
    form = await _form(request)
    username = params.optional(form, "username", "username") or ""
    password = params.optional(form, "password", "password") or ""
    after, address = _safe_next(form), request.remote or "-"
    throttle = appstate.login_throttle(request.app)
    try:
        throttle.check(username, address)
    except Throttled as exc:
        response = aiohttp_jinja2.render_template("login.html", request, {
            "next": after, "error": True, "throttled": True}, status=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    user = await users.authenticate_password(request.app[keys.POOL], username, password)
    if user is None:
        throttle.failed(username, address)
        return aiohttp_jinja2.render_template("login.html", request, {"next": after, "error": True}, status=401)
    throttle.succeeded(username)
    session = await new_session(request)
    session["user"] = {"username": user.username, "role": user.role.value, "agency": user.agency}
    session["csrf"] = secrets.token_urlsafe(32)
    raise web.HTTPFound(after)


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


#: The letter search's fields as the form labels them: a refusal names the field in Thai.
SEARCH_FIELDS = {"subject": "เรื่อง", "number": "ที่", "agency": "หน่วยงาน", "since": "ตั้งแต่", "until": "ถึง",
                 "status": "สถานะ", "type": "ประเภท", "after_at": "หน้าถัดไป", "after_pk": "หน้าถัดไป"}


def _day(q: Mapping[str, str], field: str, *, end: bool = False) -> dt.datetime | None:
    """A date typed by a person (:func:`pki.thaidate.parse_date`: Gregorian 2026-11-22 or Buddhist era
    2569-11-22) as the start of that Bangkok day, or of the next one (``end``); a day that does not
    exist or that PostgreSQL cannot hold is refused in Thai, naming the field."""
    value = params.optional(q, field, "day")
    if value is None:
        return None
    try:
        start = dt.datetime.combine(thaidate.parse_date(value), dt.time(), BANGKOK)
        t = start + dt.timedelta(days=1) if end else start
        t.astimezone(dt.UTC)  # PostgreSQL's range, as params.in_range
    except thaidate.DateError as exc:
        raise GatewayError(f"{exc.thai} ({exc.english})", code="request.invalid", field=field) from None
    except OverflowError:
        raise GatewayError("วันที่นี้อยู่นอกช่วงที่ค้นได้ (ค.ศ. 1 ถึง 9999) (the date is out of range)",
                           code="request.invalid", field=field) from None
    return t


def _letter_search(q: Mapping[str, str], user: users.User) -> tuple[LetterFilter, tuple[dt.datetime, int] | None]:
    agency = user.agency if user.role is Role.AGENCY else params.optional(q, "agency", "agency")
    f = params.letter_filter(q, agency=agency, since=_day(q, "since"), until=_day(q, "until", end=True))
    return f, params.letter_keyset(q.get("after_at"), q.get("after_pk"))


def _search_refused(request: web.Request, user: users.User, exc: GatewayError) -> web.Response:
    """The search form again, with the refusal above it naming the field (400)."""
    status, heading_th, heading_en = page_for(exc.code)
    field = exc.field or ""
    error = {"heading_th": heading_th, "heading_en": heading_en, "label": SEARCH_FIELDS.get(field, field),
             "field": field, "message": exc.message, "code": exc.code}
    return aiohttp_jinja2.render_template("letters.html", request, {
        "rows": [], "q": request.query, "next_q": None, "user": user, "directory": request.app[keys.DIRECTORY],
        "error": error}, status=status)


@aiohttp_jinja2.template("letters.html")
async def letters_page(request: web.Request) -> Page | web.Response:
    """Agency (its own letters), operator, auditor, admin. Letter search with keyset pages."""
    user = await need(request, *EVERYONE)
    q = request.query
    try:
        f, after = _letter_search(q, user)
    except GatewayError as exc:
        if not exc.code.startswith("request."):
            raise
        return _search_refused(request, user, exc)
    rows = await search.letters(request.app[keys.POOL], f, after=after, limit=PAGE + 1)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    next_q = None
    if more:
        nq = {k: v for k, v in q.items() if k not in ("after_at", "after_pk")}
        nq.update(after_at=rows[-1]["accepted_at"].isoformat(), after_pk=str(rows[-1]["pk"]))
        next_q = nq
    return {"rows": rows, "q": q, "next_q": next_q, "user": user,
            "directory": request.app[keys.DIRECTORY], "error": None}


@aiohttp_jinja2.template("letter.html")
async def letter_page(request: web.Request) -> Page:
    """Agency (sender or recipient only), operator, auditor, admin. The timeline of one letter."""
    user = await need(request, *EVERYONE)
    pool = request.app[keys.POOL]
    pk = params.parse_bigint(request.match_info["pk"], "pk")
    msg = await search.message(pool, pk)
    if msg is None or (user.role is Role.AGENCY
                       and (user.agency is None or not await search.visible_to(pool, pk, user.agency))):
        raise NotFound("no such letter", code="message.not_found")
    steps, dels = await timeline.build(pool, msg)
    progress = await lists_store.progress(pool, pk)
    return {"m": msg, "steps": steps, "deliveries": dels, "user": user, "directory": request.app[keys.DIRECTORY],
            "progress": progress}


@aiohttp_jinja2.template("queues.html")
async def queues_page(request: web.Request) -> Page:
    """Operator, auditor, admin. Queue depth and backoff state per destination."""
    user = await need(request, *STAFF)
    rows = await search.queue_by_destination(request.app[keys.POOL])
    now = request.app[keys.CLOCK].now()
    pending, oldest = await ltv_store.pending_stats(request.app[keys.POOL])
    return {"rows": rows, "now": now, "user": user, "directory": request.app[keys.DIRECTORY],
            "pending": pending, "pending_oldest": oldest,
            "pending_age_min": int((now - oldest).total_seconds() // 60) if oldest else 0}


@aiohttp_jinja2.template("dead.html")
async def dead_page(request: web.Request) -> Page:
    """Operator, auditor (read only), admin. Dead letters; operators and admins can requeue."""
    user = await need(request, *STAFF)
    q = request.query
    after = params.dead_keyset(q.get("after_at"), q.get("after_id"))
    done = params.delivery_id(params.optional(q, "requeued", "delivery_id"), "requeued")
    rows = await search.dead_letters(request.app[keys.POOL], after=after, limit=PAGE + 1)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    next_q = {"after_at": rows[-1]["created_at"].isoformat(), "after_id": str(rows[-1]["id"])} if more else None
    return {"rows": rows, "next_q": next_q, "user": user, "can_requeue": user.role in (Role.OPERATOR, Role.ADMIN),
            "done": str(done) if done else None}


async def requeue(request: web.Request) -> web.Response:
    """Operator, admin. Requeue a dead (or waiting) delivery; an audit event names the operator."""
    user = await need(request, Role.OPERATOR.value, Role.ADMIN.value)
    await _form(request)
    delivery_id = params.path_delivery_id(request.match_info)
    await appstate.exchange(request.app).operators.requeue(delivery_id, actor=f"user:{user.username}")
    raise web.HTTPFound(f"/console/dead?requeued={delivery_id}")


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
