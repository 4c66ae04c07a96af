"""The HTTP API (``/v1``), health, readiness and metrics.

Handlers are thin: authenticate, read the request within its limits, call the
:class:`gateway.exchange.service.Exchange`, shape the answer. Every error leaves as a
JSON body ``{"code", "field"?, "message"}`` with a 4xx for the client's faults;
a 500 means a bug and is logged with the request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import json
import os
import re
import time
from collections.abc import AsyncIterator, Iterable

import asyncpg
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from adapters.push import check_ack
from gateway.core import appkeys as keys
from gateway.core import parts
from gateway.core.admission import redact_path
from gateway.core.errors import EnvelopeError, GatewayError, NotFound, Unavailable
from gateway.core.logging import log_context
from gateway.core.parts import PartInfo
from gateway.http import appstate, auth, params
from gateway.http.console.errors import error_page
from gateway.http.errors import DOMAIN_ERRORS, DomainError, status_for
from gateway.intake.limits import body_deadline_s
from gateway.storage import db, gauges
from gateway.storage.deliveries import InboxItem

log = structlog.get_logger(__name__)

#: The envelope's media types (README: application/xml; text/xml is its RFC 7303 alias). Parameters such
#: as charset are allowed; other types, ``+xml`` ones included (image/svg+xml...), are not an envelope.
XML_TYPES = ("application/xml", "text/xml")
#: A client's X-Request-Id is echoed only if it is short printable ASCII; any other gets a new id.
_REQUEST_ID = re.compile(r"[!-~]{1,64}")
#: ``uuid.UUID(version=4)``'s masks: the variant's two bits (10) and the version's four (0100).
_UUID4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID4_SET = (0x8000 << 48) | (4 << 76)


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


def error_response(exc: DomainError, request_id: str) -> web.Response:
    """A domain error as the native API answers it: ``{"code", "field"?, "message", "request_id"}``
    with the status of :func:`gateway.http.errors.status_for`."""
    return _error_answer(exc.to_dict(), status_for(exc.code), request_id,
                         retry_after=getattr(exc, "retry_after", None))


def _error_answer(body: dict[str, str], status: int, request_id: str, *,
                  retry_after: int | None = None) -> web.Response:
    headers = {"X-Request-Id": request_id}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="saraban-gateway"'
    if status in (429, 503):
        headers["Retry-After"] = str(retry_after or 2)
    return web.json_response({**body, "request_id": request_id}, status=status, headers=headers,
                             dumps=lambda d: json.dumps(d, ensure_ascii=False))


def request_id_of(request: web.Request) -> str:
    """The client's X-Request-Id if it is 1..64 printable ASCII characters, else a new one: the id
    is echoed in a header and in error bodies, and a header is bytes the client chose (aiohttp
    reads bytes that are not UTF-8 as surrogates, which no answer can encode)."""
    given = request.headers.get("X-Request-Id")
    return given if given is not None and _REQUEST_ID.fullmatch(given) else new_request_id()


class _Random16:
    """16 bytes of ``os.urandom`` at a time, drawn from the kernel a page at a time: one ``getrandom`` system
    call per 256 request ids instead of one per request. The pool is dropped in a forked child, so two
    processes never hand out the same bytes."""

    __slots__ = ("_pool", "_at")
    PAGE = 4096

    def __init__(self) -> None:
        self._pool = b""
        self._at = self.PAGE

    def take(self) -> bytes:
        at = self._at
        if at >= self.PAGE:
            self._pool, at = os.urandom(self.PAGE), 0
        self._at = at + 16
        return self._pool[at:at + 16]

    def drop(self) -> None:
        self._pool, self._at = b"", self.PAGE


_RANDOM16 = _Random16()
os.register_at_fork(after_in_child=_RANDOM16.drop)


def new_request_id() -> str:
    """``uuid.uuid4().hex``: see :func:`uuid4_hex` (its bytes from ``os.urandom``, see :class:`_Random16`)."""
    return uuid4_hex(_RANDOM16.take())


def uuid4_hex(random16: bytes) -> str:
    """``uuid.UUID(bytes=random16, version=4).hex``, the same bits (version 4, RFC 4122 variant) without
    building a ``UUID`` object (its checks were most of the cost of a request id)."""
    return f"{int.from_bytes(random16) & _UUID4_CLEAR | _UUID4_SET:032x}"


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The API's and the console's one exit for errors. A domain error answers in the edge's form
    (JSON here, a page in the console); anything else is a bug: 500, logged with its traceback and
    counted in ``gateway_unhandled_errors_total``.

    The database refusing a value (``asyncpg.DataError``: a NUL, a time out of range...) is a
    client's bad input that :mod:`gateway.http.params` should have caught: it answers 400
    ``request.invalid``, is logged as a warning and counted in ``gateway_input_safety_net_total``
    (a safety net; the tests require it never to be hit)."""
    request_id = request_id_of(request)
    path = request.path
    console = path.startswith("/console")
    # (a URL key in an e-CMS path is never logged: redact_path)
    with log_context(request_id=request_id, path=redact_path(path), method=request.method):
        try:
            response = await handler(request)
        except DOMAIN_ERRORS as exc:
            log.info("request refused", code=exc.code, field=exc.field, status=status_for(exc.code))
            if console:
                return await error_page(request, exc, request_id)
            response = error_response(exc, request_id)
            if exc.code == "request.timeout":  # the rest of the body may still be trickling in: do not wait
                response.force_close()
            return response
        except web.HTTPRequestEntityTooLarge:
            # (aiohttp's exception does not keep the limit as an attribute: reading exc.max_size
            # raised AttributeError here, and aiohttp answered a chunked oversized body with 500)
            limit = request.app[keys.SETTINGS].max_body_bytes
            too_large = EnvelopeError(f"the body is larger than {limit} bytes", code="request.too_large")
            if console:
                return await error_page(request, too_large, request_id)
            return error_response(too_large, request_id)
        except web.HTTPException as exc:  # aiohttp's own answers (no route, wrong method): keep the status
            if exc.status >= 400 and exc.content_type != "application/json":
                code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, f"http.{exc.status}")
                if console and code in ("not_found", "method_not_allowed"):
                    return await error_page(request, GatewayError(exc.reason, code=code), request_id, exc.status)
                if not console:
                    return _error_answer({"code": code, "message": exc.reason}, exc.status, request_id)
            raise
        except asyncpg.DataError as exc:  # bad input the edge let through: the client's, not a bug
            edge = "console" if console else "api"
            log.warning("input reached the database unchecked", edge=edge, error=ascii(f"{type(exc).__name__}: {exc}"))
            request.app[keys.METRICS].input_safety_net.labels(edge=edge).inc()
            refused = EnvelopeError("a parameter holds a value the database cannot take", code="request.invalid")
            if console:
                return await error_page(request, refused, request_id)
            return error_response(refused, request_id)
        except db.TRANSIENT_ERRORS as exc:  # the database is restarting or failing over: retry, not a bug
            log.warning("database unavailable", error=f"{type(exc).__name__}: {exc}")
            unavailable = Unavailable("the database is not reachable right now; retry later",
                                      code="unavailable.database")
            if console:
                return await error_page(request, unavailable, request_id)
            return error_response(unavailable, request_id)
        except Exception:
            log.exception("unhandled error")
            request.app[keys.METRICS].unhandled.labels(edge="console" if console else "api").inc()
            return _error_answer({"code": "internal", "message": "internal error; it has been logged"}, 500,
                                 request_id)
        response.headers["X-Request-Id"] = request_id
        return response


@contextlib.asynccontextmanager
async def body_deadline(request: web.Request, largest: int) -> AsyncIterator[None]:
    """Bound the time a client takes to send its body (:func:`gateway.intake.limits.body_deadline_s`).
    A trickled body (slowloris) gets 408 ``request.timeout`` and the connection is closed."""
    seconds = body_deadline_s(request.app, request.content_length, largest)
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise EnvelopeError(f"the body did not arrive within {seconds:.0f} s", code="request.timeout",
                            field="body") from None


async def read_body(request: web.Request, *, what: str = "request") -> bytes:
    limit = request.app[keys.SETTINGS].max_body_bytes
    declared = request.content_length
    if declared is not None and declared > limit:
        raise EnvelopeError(f"the body is {declared} bytes, the limit is {limit}", code=f"{what}.too_large")
    try:
        content = request.content
        if content.is_eof():
            # the parser has the whole body already (a letter usually arrives with its headers): reading
            # cannot wait, so no deadline is armed (a timer and two context managers, 8% of the HTTP stage),
            # and it is taken as it lies (request.read() loops over it chunk by chunk into a bytearray and
            # copies that). The same limit as request.read(), the same answer (request.too_large).
            body = content.read_nowait()
            if len(body) > limit:
                raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
            return body
        async with body_deadline(request, limit):
            return await request.read()
    except ConnectionResetError:  # fewer bytes than Content-Length, then the client went away
        raise EnvelopeError("the connection closed before the whole body arrived", code="request.incomplete",
                            field="Content-Length") from None


def _require_xml(request: web.Request) -> None:
    ctype = request.content_type  # the media type only, lower case, without its parameters
    if ctype not in XML_TYPES:
        shown = ascii(ctype) if ctype and request.headers.get("Content-Type") else "missing"
        raise EnvelopeError(f"Content-Type must be application/xml (or text/xml), not {shown}",
                            code="request.unsupported_media_type", field="Content-Type")


# ---------------------------------------------------------------------------- messages


async def submit_message(request: web.Request) -> web.Response:
    """Role: agency. Submit an envelope; 202 with a signed receipt, 200 for a repeat."""
    agency = await auth.require_agency(request)
    app = request.app
    exchange = appstate.exchange(app)
    if parts.is_related(request):  # files beside the envelope, streamed to the spool (gateway.core.parts)
        settings = app[keys.SETTINGS]
        if exchange.accept.admission is not None:  # refuse before reading a large body, not after
            await exchange.accept.admission.check_queue()
        async with body_deadline(request, settings.max_letter_bytes):
            body, spool = await parts.read_related(request, parts.Limits(
                max_envelope_bytes=settings.max_body_bytes, max_part_bytes=settings.max_part_bytes,
                max_total_bytes=settings.max_letter_bytes), spool_dir=settings.spool_path)
    else:
        _require_xml(request)
        body, spool = await read_body(request, what="envelope"), None
    t0 = time.perf_counter()
    try:
        with log_context(agency=agency):
            result = await exchange.accept.submit(body, agency=agency,
                                           parts=spool.parts if spool is not None else None)
    finally:
        if spool is not None:
            spool.close()
    app[keys.METRICS].submit_seconds.observe(time.perf_counter() - t0)
    return web.Response(
        body=result.receipt, status=200 if result.duplicate else 202, content_type="application/xml",
        charset="utf-8",
        headers={"Location": f"/v1/messages/{result.message_id}", "X-Saraban-Sha256": result.sha256,
                 "X-Saraban-Duplicate": "true" if result.duplicate else "false"})


async def message_status(request: web.Request) -> web.Response:
    """Role: agency (the sender). A summary over every recipient, then status per recipient, a page at a time."""
    agency = await auth.require_agency(request)
    message_id = params.required(request.match_info, "message_id", "message_id")
    after = params.optional(request.query, "after", "agency")
    limit = params.limit(request.query, default=100, top=1000)
    return _json(await appstate.exchange(request.app).status.message_status(agency, message_id, after=after,
                                                                            limit=limit))


#: At most as many recipients as an envelope may name (schemas/envelope-v1.xsd).
MAX_RECIPIENTS = 5000


def _recipients(body: object) -> list[str] | None:
    """The ``recipients`` of a withdrawal body: None (all), or a list of agency codes."""
    if not isinstance(body, dict):
        raise EnvelopeError("body must be JSON like {\"recipients\": [\"1550100000\"]}", code="request.invalid",
                            field="body")
    recipients = body.get("recipients")
    if recipients is None:
        return None
    if not isinstance(recipients, list) or len(recipients) > MAX_RECIPIENTS:
        raise EnvelopeError(f"recipients must be a list of at most {MAX_RECIPIENTS} agency codes",
                            code="request.invalid", field="recipients")
    return [params.check(r, "recipients", "agency") for r in recipients]


async def withdraw_message(request: web.Request) -> web.Response:
    """Role: agency (the sender). Withdraw a letter from all or some recipients (JSON body
    ``{"recipients": [...]}`` optional), e.g. after a rejection, before sending it again."""
    agency = await auth.require_agency(request)
    message_id = params.required(request.match_info, "message_id", "message_id")
    recipients = None
    if request.can_read_body:
        try:
            body = json.loads(await read_body(request) or b"{}")
        except ValueError:  # not JSON, or not UTF-8
            raise EnvelopeError("body must be JSON like {\"recipients\": [\"1550100000\"]}",
                                code="request.invalid", field="body") from None
        recipients = _recipients(body)
    exchange = appstate.exchange(request.app)
    count = await exchange.withdrawals.withdraw_message(agency, message_id, recipients)
    return _json({"withdrawn": count, "status": await exchange.status.message_status(agency, message_id)})


async def stamped_letter(request: web.Request) -> web.Response:
    """Role: agency (the letter's sender, or that recipient). The main PDF with the recipient's
    receiving stamp (ตรารับ: registry number, Buddhist-era date, time)."""
    agency = await auth.require_agency(request)
    message_id = params.required(request.match_info, "message_id", "message_id")
    recipient = params.required(request.match_info, "recipient", "agency")
    pdf = await appstate.exchange(request.app).stamps.stamped_letter(agency, message_id, recipient)
    return web.Response(body=pdf, content_type="application/pdf")


# ---------------------------------------------------------------------------- pull inbox


async def inbox(request: web.Request) -> web.Response:
    """Role: agency. Unacknowledged items for the calling agency, oldest first."""
    agency = await auth.require_agency(request)
    limit = params.limit(request.query, default=50, top=500)
    exchange = appstate.exchange(request.app)
    items = await exchange.inbox.inbox(agency, limit=limit)
    out = []
    for i in items:
        entry: dict[str, object] = {"delivery_id": str(i.delivery_id), "message_id": i.message_id, "sender": i.sender,
                 "recipient": i.recipient, "type": i.message_type, "queued_at": i.queued_at.isoformat(),
                 "href": f"/v1/inbox/{i.delivery_id}"}
        if i.parts:
            entry["parts"] = _part_links(i, await exchange.inbox.parts_of(i))
        out.append(entry)
    return _json({"items": out})


def _part_links(item: InboxItem, infos: Iterable[PartInfo]) -> list[dict[str, object]]:
    return [{"content_id": p.content_id, "content_type": p.content_type, "size": p.size, "sha256": p.sha256,
             "href": f"/v1/inbox/{item.delivery_id}/parts/{p.content_id}"} for p in infos]


async def inbox_item(request: web.Request) -> web.Response:
    """Role: agency. The sealed envelope of one inbox item."""
    agency = await auth.require_agency(request)
    exchange = appstate.exchange(request.app)
    item = await exchange.inbox.inbox_item(agency, params.path_delivery_id(request.match_info))
    headers = {"X-Saraban-Delivery-Id": str(item.delivery_id), "X-Saraban-Message-Id": item.message_id,
               "X-Saraban-Sender": item.sender, "X-Saraban-Recipient": item.recipient}
    if item.parts:  # one Link per file that travels beside the envelope
        headers["Link"] = ", ".join(f'<{p["href"]}>; rel="item"; anchor="cid:{p["content_id"]}"'
                                    for p in _part_links(item, await exchange.inbox.parts_of(item)))
    return web.Response(body=item.envelope, content_type="application/xml", charset="utf-8", headers=headers)


async def inbox_part(request: web.Request) -> web.StreamResponse:
    """Role: agency. One file of an inbox item that travels beside its envelope (``ContentRef``
    ``cid:<content_id>``), streamed; ``X-Saraban-Sha256`` is its SHA-256 as the envelope declares it.
    Its Content-Type and Content-Disposition (``attachment``, the file name per RFC 6266) are the
    signed ``MimeType`` and ``FileName`` read from the envelope the recipient verifies, never
    anything the sender's request said beside it."""
    agency = await auth.require_agency(request)
    delivery_id = params.path_delivery_id(request.match_info)
    cid = params.required(request.match_info, "content_id", "content_id")
    exchange = appstate.exchange(request.app)
    item = await exchange.inbox.inbox_item(agency, delivery_id)
    found = await exchange.inbox.part_of(item, cid)
    if found is None:
        raise NotFound(f"delivery {item.delivery_id} has no part {cid}", code="inbox.part_not_found",
                       field="content_id")
    info, signed = found
    response = web.StreamResponse(headers={
        "Content-Type": signed.mime_type, "Content-Disposition": signed.content_disposition,
        "X-Content-Type-Options": "nosniff", "X-Saraban-Sha256": info.sha256,
        "X-Saraban-Delivery-Id": str(item.delivery_id)})
    response.content_length = info.size
    await response.prepare(request)
    async for chunk in exchange.inbox.part_chunks(item.message_pk, cid):
        await response.write(chunk)
    await response.write_eof()
    return response


async def inbox_ack(request: web.Request) -> web.Response:
    """Role: agency. Acknowledge an inbox item (optionally with a DeliveryAck document)."""
    agency = await auth.require_agency(request)
    delivery_id = params.path_delivery_id(request.match_info)
    body = await read_body(request, what="ack")
    ack = None
    if body:
        problem = check_ack(body, str(delivery_id))
        if problem is not None:
            raise EnvelopeError(f"not a DeliveryAck for this delivery: {problem}", code="ack.invalid",
                                field="body")
        ack = body
    state = await appstate.exchange(request.app).inbox.ack(agency, delivery_id, ack=ack)
    return _json({"delivery_id": str(delivery_id), "status": state})


# ---------------------------------------------------------------------------- operations


async def healthz(request: web.Request) -> web.Response:
    """Public. The process is alive."""
    return _json({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Public. The database answers and its schema is current."""
    pool = request.app[keys.POOL]
    try:
        async with pool.acquire(timeout=2) as conn:
            await conn.fetchval(db.queries["ping"])
            # storage.db.pending_migrations is annotated with Connection; a pool's proxy is one at run time
            pending = await db.pending_migrations(conn)
    except Exception as exc:
        return _json({"status": "unavailable", "database": f"{type(exc).__name__}"}, status=503)
    if pending:
        return _json({"status": "unavailable", "migrations_pending": pending}, status=503)
    return _json({"status": "ready", "seal": request.app[keys.SEALER].description})


async def metrics(request: web.Request) -> web.Response:
    """Public on the operations network (Prometheus text). Counters summed over every worker process;
    shared state (queues, circuits, audit lag, the database itself) read from the database, cached a
    few seconds (:mod:`gateway.core.metrics`)."""
    m = request.app[keys.METRICS]
    pool, clock = request.app[keys.POOL], request.app[keys.CLOCK]
    state = await m.state.get(lambda: gauges.read(pool, clock.now()))
    return web.Response(body=m.render(state),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def openapi(request: web.Request) -> web.Response:
    """Public. The OpenAPI 3.1 document of this API."""
    text = importlib.resources.files("gateway.http").joinpath("openapi.json").read_bytes()
    return web.Response(body=text, content_type="application/json", charset="utf-8")
