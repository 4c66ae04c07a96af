"""The e-CMS SOAP endpoint on aiohttp: ``POST /ecms-ws01/service2`` and, with a URL key,
``POST /ecms/<key>/ecms-ws01/service2``.

Reads the body within the size limit and the body deadline, names the caller and how it was let in
(:func:`gateway.ecms.auth.identify_caller`, :mod:`gateway.core.admission`) and hands the bytes to
the :class:`gateway.ecms.handler.EcmsFacade`, which :func:`setup_routes` builds from the app's
exchange, settings, clock, trust store and metrics when the app starts. A refused credential (an
unknown key or network, a key over plain HTTP) is answered here, in the operation's answer with
its ErrorDetail as e-CMS clients read it; the caller travels beside the facade's calls
(:func:`gateway.core.admission.admitted_as`) so that each letter records how it came in.

The same handlers serve the legacy listener (:mod:`gateway.http.legacy_listener`), whose app
says so in :data:`LISTENER_KEY`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from gateway.core import appkeys as keys
from gateway.core.admission import KeyThrottle, Listener, admitted_as
from gateway.core.ecmswire import soap
from gateway.core.errors import GatewayError
from gateway.core.signing import Trust
from gateway.ecms.auth import identify_caller
from gateway.ecms.codes import to_wire
from gateway.ecms.handler import Answer, EcmsExchange, EcmsFacade
from gateway.ecms.settings import ECMS_PATH, EcmsSettings, from_gateway
from gateway.exchange.service import Exchange
from gateway.intake.limits import body_deadline_s

FACADE_KEY = web.AppKey("ecms_facade", EcmsFacade)
#: Which listener an app is (absent: the main one).
LISTENER_KEY = web.AppKey("ecms_listener", Listener)
#: Unknown URL keys per address (shared by the main and the legacy listener of a process).
THROTTLE_KEY = web.AppKey("ecms_key_throttle", KeyThrottle)
#: The path with a URL key in it (the key is the second segment; it is never logged: admission.redact_path).
KEYED_PATH = "/ecms/{key}" + ECMS_PATH


def facade_context(settings: EcmsSettings | None) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context that builds the facade once the app's exchange exists (its narrow port,
    :meth:`gateway.exchange.service.Exchange.for_ecms`; a test may put any ``EcmsExchange``)."""
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        s = settings or EcmsSettings()
        gw = app.get(keys.SETTINGS)
        if gw is not None:
            s = from_gateway(s, gw)
        exchange = app[keys.EXCHANGE]
        if isinstance(exchange, Exchange):
            exchange = exchange.for_ecms()
        if not isinstance(exchange, EcmsExchange):  # the key is typed object (core cannot name the service)
            raise TypeError(f"the app's exchange ({type(exchange).__name__}) lacks what the e-CMS "
                            "facade uses")
        trust = app.get(keys.TRUST)
        clock = app.get(keys.CLOCK)
        app.setdefault(THROTTLE_KEY, KeyThrottle())
        app[FACADE_KEY] = EcmsFacade(exchange, settings=s,
                                     trust=trust.store if isinstance(trust, Trust) else None,
                                     metrics=app.get(keys.METRICS),
                                     **({"clock": clock.now} if clock is not None else {}))
        yield

    return ctx


def _fault(status: int, code: str, description: str) -> Answer:
    return Answer(status, soap.serialize(soap.envelope(soap.fault(code, description))))


async def _refused(facade: EcmsFacade, data: bytes, exc: GatewayError) -> Answer:
    """A refused credential as the operation's answer with its ErrorDetail (what is not e-CMS at all
    gets the facade's own answer for it)."""
    try:
        req = soap.parse_request(data, max_bytes=facade.settings.max_bytes, validate=False)
    except GatewayError:
        return await facade.handle(data, caller=None)
    wire = to_wire(exc)
    now = facade.clock().astimezone(facade.settings.zone)
    answer_el = soap.response(req.response_name, process_id="", at=now, errors=[(wire.code, wire.description)])
    return Answer(200, soap.serialize(soap.envelope(answer_el)), req.operation, (wire.code,))


async def handle(request: web.Request) -> web.StreamResponse:
    """Role: agency (client certificate, token, or on the legacy listener its source network, mapped
    to its department code). The e-CMS SOAP 1.1 endpoint; refusals are ErrorDetail answers as e-CMS
    clients expect."""
    return await _serve(request, None)


async def handle_keyed(request: web.Request) -> web.StreamResponse:
    """Role: agency (the URL key in the path, over TLS only, mapped to its department code). The e-CMS
    SOAP 1.1 endpoint for clients that can change only their URL."""
    return await _serve(request, request.match_info["key"])


async def _body(request: web.Request, limit: int) -> bytes | Answer | web.Response:
    """The request body within ``limit`` and the body deadline; else the answer to send instead."""
    if request.content_length is not None and request.content_length > limit:
        return _fault(413, "ECMS-102", f"the request is {request.content_length} bytes, the limit is {limit}")
    if request.content.is_eof():  # all of it arrived with the headers (most letters): nothing to wait for
        data = await request.content.read()
        return data if len(data) <= limit else _fault(413, "ECMS-102", f"the request is over the limit of {limit} bytes")
    buffer = bytearray()
    try:
        async with asyncio.timeout(body_deadline_s(request.app, request.content_length, limit)):
            async for chunk in request.content.iter_chunked(64 * 1024):
                buffer += chunk
                if len(buffer) > limit:
                    return _fault(413, "ECMS-102", f"the request is over the limit of {limit} bytes")
    except TimeoutError:
        response = web.Response(status=408, body=soap.serialize(soap.envelope(soap.fault(
            "ECMS-106", "the request body did not arrive in time"))), content_type="text/xml", charset="utf-8")
        response.force_close()
        return response
    return bytes(buffer)


async def _serve(request: web.Request, key: str | None) -> web.StreamResponse:
    facade = request.app[FACADE_KEY]
    data = await _body(request, facade.settings.max_bytes)
    if isinstance(data, web.Response):
        return data
    if isinstance(data, Answer):
        answer = data
    else:
        try:
            caller = await identify_caller(request, facade.directory, facade.settings, facade.trust, key=key,
                                           listener=request.app.get(LISTENER_KEY, Listener.MAIN),
                                           throttle=request.app.get(THROTTLE_KEY), now=facade.clock())
        except GatewayError as exc:
            answer = await _refused(facade, data, exc)
        else:
            if key is not None and caller is not None:
                data = without_key(data, key)
            with admitted_as(caller):
                answer = await facade.handle(data, caller=caller.agency if caller else None,
                                             endpoint_url=f"{request.scheme}://{request.host}{ECMS_PATH}",
                                             soap_fault="SOAPAction" in request.headers)
    return web.Response(status=answer.status, body=answer.body, content_type="text/xml", charset="utf-8")


def without_key(data: bytes, key: str) -> bytes:
    """The request with its URL key replaced by ``***`` (as :func:`gateway.core.admission.redact_path` does in
    a path). Real clients write the URL they were configured with, key and all, into ``wsa:To``; the
    request is kept as the letter's evidence, exported to auditors, and a key must be kept nowhere. Only
    that header is affected in practice: a key (256 random bits) in a letter's text or base64 is not a
    coincidence to plan for, and a ``#Letter`` signature does not cover the SOAP header."""
    return data.replace(key.encode("ascii", "replace"), b"***") if key else data


def setup_routes(app: web.Application, facade: EcmsFacade | None = None, *,
                 exchange: EcmsExchange | None = None, settings: EcmsSettings | None = None) -> None:
    """Register ``POST /ecms-ws01/service2`` and its URL-key twin. Pass a facade, or the exchange (and
    settings) to build one; with neither, the app must already hold :data:`FACADE_KEY`."""
    if facade is None and exchange is not None:
        facade = EcmsFacade(exchange, settings=settings)
    if facade is None and FACADE_KEY not in app:
        # Wired by create_app: the exchange exists only once cleanup_ctx has run.
        app.cleanup_ctx.append(facade_context(settings))
    if facade is not None:
        app[FACADE_KEY] = facade
    app.setdefault(THROTTLE_KEY, KeyThrottle())
    app.router.add_post(ECMS_PATH, handle)
    app.router.add_post(KEYED_PATH, handle_keyed)
