"""The e-CMS facade: one SOAP request in, one SOAP answer out.

:class:`EcmsFacade` parses and checks one SOAP request, runs its operation and answers in e-CMS
shapes; the aiohttp endpoint (:mod:`gateway.ecms.endpoint`) only authenticates
(:mod:`gateway.ecms.auth`), bounds the read and passes bytes in. The operations live by role:
:mod:`gateway.ecms.sending` (letters and notifiers out), :mod:`gateway.ecms.queue` (pull, delete,
ask again, withdraw, outbound status), :mod:`gateway.ecms.lookups` (directory, code tables, clock);
what they share is :mod:`gateway.ecms.ports`. The wire format (SOAP, reading, building, mapping to
native envelopes) is :mod:`gateway.core.ecmswire`, shared with the legacy-node adapter.

Failures are ``ErrorDetail{ErrorCode, ErrorDescription}`` with HTTP 200, because e-CMS clients
(.NET ``WebRequest.GetResponse``) throw on any other status and never read the body: inside the
operation's answer when the operation is known, else (not XML, truncated, DTD, not SOAP, no known
operation) inside a SOAP 1.1 ``Fault``'s ``detail``, still HTTP 200. A client that sends a
``SOAPAction`` header (a generated SOAP stack, which reads faults from HTTP 500) gets the Fault
over HTTP 500 as SOAP 1.1 says; neither public client sends one (``gateway/ecms/CODES.md``). A body
over the limit is 413. Every domain error (``GatewayError``, ``PkiError``) is translated by the one
table in :mod:`gateway.ecms.codes`; anything else is a bug: ECMS-500 (HTTP 500), logged with its
traceback and counted in ``gateway_unhandled_errors_total{edge="ecms"}``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import structlog
from lxml import etree

from adapters.errors import AdapterError
from gateway.core.directory import Directory
from gateway.core.ecmswire import soap
from gateway.core.ecmswire.empties import without_blank_optionals
from gateway.core.ecmswire.errors import EcmsError
from gateway.core.errors import GatewayError
from gateway.core.metrics import Metrics
from gateway.ecms.codes import to_wire
from gateway.ecms.lookups import LOOKUPS
from gateway.ecms.ports import Call, Context, EcmsExchange, Operation, QueuedItem, Submitted
from gateway.ecms.queue import Queue
from gateway.ecms.sending import Sending
from gateway.ecms.settings import ECMS_PATH, EcmsSettings
from gateway.exchange.service import DATABASE_UNAVAILABLE
from pki.errors import PkiError
from pki.trust import TrustStore

__all__ = ["Answer", "EcmsExchange", "EcmsFacade", "QueuedItem", "Submitted"]

log = structlog.get_logger("gateway.ecms")


@dataclass
class Answer:
    status: int
    body: bytes
    operation: str | None = None
    error_codes: tuple[str, ...] = ()


class EcmsFacade:
    """One SOAP request in, one SOAP answer out."""

    def __init__(self, exchange: EcmsExchange, *, settings: EcmsSettings | None = None,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
                 trust: TrustStore | None = None, metrics: Metrics | None = None) -> None:
        self.exchange = exchange
        self.settings = settings or EcmsSettings()
        self.clock = clock
        #: The gateway's trust store (validates a legacy signer when the policy asks), or None.
        self.trust = trust
        self.metrics = metrics or Metrics()
        ctx = Context(exchange, self.settings, trust)
        sending, queue = Sending(ctx), Queue(ctx)
        self.operations: dict[str, Operation] = {
            "CorrespondenceLetterOutboundRequest": sending.outbound,
            "CorrespondenceLetterInboundRequest": queue.inbound,
            "CorrespondenceLetterDeleteRequest": queue.delete,
            "CorrespondenceLetterInboundSpecialRequest": queue.inbound_special,
            "CorrespondenceDeleteGovernmentDocumentRequest": queue.withdraw,
            "OutboundStatusRequest": queue.outbound_status,
        }

    @property
    def directory(self) -> Directory:
        return self.exchange.directory

    async def handle(self, data: bytes, *, caller: str | None, endpoint_url: str = "",
                     soap_fault: bool = False) -> Answer:
        """Answer one request. ``endpoint_url``: where the caller reached the facade (advertised as
        ECMS-URL when no public URL is configured); ``soap_fault``: the client asked for SOAP 1.1
        faults over HTTP 500 (it sent a ``SOAPAction`` header)."""
        now = self.clock().astimezone(self.settings.zone)
        try:
            req = soap.parse_request(data, max_bytes=self.settings.max_bytes, validate=False)
        except GatewayError as exc:  # not e-CMS at all: a SOAP Fault with the ErrorDetail
            wire = to_wire(exc)
            status = 413 if wire.code == "ECMS-102" else 500 if soap_fault else 200
            log.info("ecms request unreadable", agency=caller, ecms_code=wire.code, code=exc.code)
            return Answer(status, soap.serialize(soap.envelope(soap.fault(wire.code, wire.description))),
                          error_codes=(wire.code,))
        except Exception:
            return self._unhandled(None, caller)
        try:
            if caller is None:
                raise EcmsError("authenticate with a bearer token or an agency client certificate",
                                code="auth.required")
            without_blank_optionals(req.body, lambda: soap.validate_operation(req))
            answer_el = await self._run(Call(req, caller, now, data, endpoint_url))
        except asyncpg.DataError as exc:  # bad input the edge let through: the client's, not a bug
            log.warning("input reached the database unchecked", edge="ecms", operation=req.operation,
                        error=ascii(f"{type(exc).__name__}: {exc}"))
            self.metrics.input_safety_net.labels(edge="ecms").inc()
            return self._refusal(req, now, EcmsError("a field holds a value the database cannot take",
                                                     code="ecms.schema_invalid", field=req.operation), caller)
        except DATABASE_UNAVAILABLE as exc:
            log.warning("database unavailable", operation=req.operation, error=f"{type(exc).__name__}: {exc}")
            return self._server_fault("ECMS-503", "the database is not reachable right now; retry later",
                                      req.operation)
        except (GatewayError, PkiError, AdapterError) as exc:
            return self._refusal(req, now, exc, caller)
        except Exception:
            return self._unhandled(req.operation, caller)
        return Answer(200, soap.serialize(soap.enveloped(answer_el)), req.operation)

    def _refusal(self, req: soap.SoapRequest, now: dt.datetime, exc: GatewayError | PkiError | AdapterError,
                 caller: str | None) -> Answer:
        """A domain error as the operation's answer with its ErrorDetail (ECMS-503: a server fault)."""
        wire = to_wire(exc)
        if wire.code == "ECMS-503":
            return self._server_fault(wire.code, wire.description, req.operation)
        log.info("ecms request refused", operation=req.operation, agency=caller, ecms_code=wire.code,
                 code=exc.code)
        answer_el = soap.response(req.response_name, process_id="", at=now, errors=[(wire.code, wire.description)])
        return Answer(200, soap.serialize(soap.envelope(answer_el)), req.operation, (wire.code,))

    async def _run(self, call: Call) -> etree._Element:
        lookup = LOOKUPS.get(call.req.operation)
        if lookup is not None:
            url = self.settings.public_url or call.endpoint_url or ECMS_PATH
            return lookup(call.req.response_name, self.directory, self.settings, call.now, url)
        return await self.operations[call.req.operation](call)

    def _unhandled(self, operation: str | None, caller: str | None) -> Answer:
        """Not a domain error: a bug. Logged with its traceback (call from an ``except`` block),
        counted, and answered ECMS-500; never turned into a refusal of the client's request."""
        log.exception("ecms request failed", operation=operation, agency=caller)
        self.metrics.unhandled.labels(edge="ecms").inc()
        return self._server_fault("ECMS-500", "internal error; the request was not processed", operation)

    @staticmethod
    def _server_fault(code: str, description: str, operation: str | None) -> Answer:
        return Answer(503 if code == "ECMS-503" else 500,
                      soap.serialize(soap.envelope(soap.fault(code, description, client=False))), operation,
                      (code,))
