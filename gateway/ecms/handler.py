"""The e-CMS operations: one SOAP request in, one SOAP answer out.

:class:`EcmsFacade` turns one SOAP request into calls on the gateway's exchange
(through :class:`EcmsExchange`) and answers in e-CMS shapes; the aiohttp endpoint
(:mod:`gateway.ecms.endpoint`) only authenticates (:mod:`gateway.ecms.auth`), bounds the
read and passes bytes in. The wire format (SOAP, reading, building, mapping to native
envelopes) is :mod:`gateway.core.ecmswire`, shared with the legacy-node adapter.

Operations and how they map:

* ``CorrespondenceLetterOutboundRequest`` with a letter: mapped to a native
  envelope (:mod:`gateway.core.ecmswire.mapping`) and ``Exchange.submit(channel="ecms",
  evidence=<the SOAP bytes>)``; the envelope goes as a
  :class:`gateway.intake.checks.BuiltEnvelope`, so intake checks the tree it was built
  as instead of parsing its bytes again. ProcessID = the native message id, which is a
  digest of the letter, so a client retry gets the original ProcessID.
* ... with a notifier: correlated by LetterID + CorrespondenceDate through
  ``Exchange.find_letter`` (the receiver answering; InvalidAcceptIDNotifier: the
  sender), then submitted as a native notifier to the other party.
* ``CorrespondenceLetterInboundRequest``: the oldest queued item of the caller,
  ProcessID = the delivery id; an empty answer element when nothing is queued
  (clients test ``InnerXml == ""``).
* ``CorrespondenceLetterDeleteRequest``: ``Exchange.ack``; another agency's
  ProcessID is not found (ECMS-307).
* ``CorrespondenceLetterInboundSpecialRequest``: the queued item matching kind,
  letter number, date and departments.
* ``CorrespondenceDeleteGovernmentDocumentRequest``: ``Exchange.withdraw``.
* look-ups from the directory and the code tables and ``TimeCheckRequest`` from the
  injected clock (:mod:`gateway.ecms.lookups`); ``OutboundStatusRequest`` from ``Exchange.outbound``.

Failures are ``ErrorDetail{ErrorCode, ErrorDescription}`` inside the
operation's answer, HTTP 200, because e-CMS clients (.NET WebRequest) lose the
body of a non-2xx answer. Requests that are not e-CMS at all (not XML, DTD,
not SOAP) get a SOAP 1.1 Fault carrying the same ErrorDetail with HTTP 500 (400
for a missing/unknown operation is not SOAP-conformant, so 500 as SOAP 1.1
says), and 413 when the body is over the limit. Every domain error (``GatewayError``,
``PkiError``) is translated by the one table in :mod:`gateway.ecms.codes`; anything
else is a bug: ECMS-500 (HTTP 500), logged with its traceback and counted in
``gateway_unhandled_errors_total{edge="ecms"}``.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import asyncpg
import structlog
from lxml import etree

from adapters.errors import AdapterError
from gateway.core import xml as gxml
from gateway.core.directory import Directory
from gateway.core.ecmswire import soap
from gateway.core.ecmswire.building import build_government_document, build_notifier
from gateway.core.ecmswire.errors import EcmsError
from gateway.core.ecmswire.mapping import (
    envelope_to_letter,
    envelope_to_notifier,
    letter_message_id,
    letter_to_envelope,
    notifier_message_id,
    notifier_to_envelope,
)
from gateway.core.ecmswire.reading import parse_date, read_letter, read_notifier
from gateway.core.ecmswire.records import BinaryObject, EcmsLetter, EcmsNotifier
from gateway.core.ecmswire.tables import NOTIFIER_ELEMENTS, NOTIFIER_KINDS
from gateway.core.envelope import Envelope, NotifierKind, Secrecy
from gateway.core.envelope_reader import read_envelope
from gateway.core.errors import Conflict, GatewayError, LetterSentOtherwise, NotFound
from gateway.core.lists import ECMS_CODE
from gateway.core.metrics import Metrics
from gateway.core.parts import inline_external
from gateway.ecms.codes import to_wire
from gateway.ecms.legacy import LegacySignatureReport, verify_letter_signature
from gateway.ecms.lookups import LOOKUPS
from gateway.ecms.settings import EcmsSettings
from gateway.exchange.records import LetterRef, OutboundItem
from gateway.exchange.service import DATABASE_UNAVAILABLE
from gateway.intake.checks import BuiltEnvelope
from pki.errors import PkiError
from pki.trust import TrustStore

log = structlog.get_logger("gateway.ecms")


class Submitted(Protocol):
    """What ``submit`` answers with (the facade reads these two)."""

    @property
    def message_id(self) -> str: ...
    @property
    def duplicate(self) -> bool: ...


class QueuedItem(Protocol):
    """One item of ``inbox`` (the facade reads these)."""

    @property
    def delivery_id(self) -> uuid.UUID: ...
    @property
    def envelope(self) -> bytes: ...
    @property
    def message_pk(self) -> int: ...
    @property
    def parts(self) -> int: ...


@runtime_checkable
class EcmsExchange(Protocol):
    """The part of :class:`gateway.exchange.service.Exchange` the facade uses. ``find_letter``,
    ``withdraw``, ``outbound`` and ``submit(resend_guard=)`` are additions requested from the service."""

    directory: Directory

    async def submit(self, data: bytes, *, agency: str, channel: str = "native",
                     evidence: bytes | None = None, resend_guard: str | None = None) -> Submitted: ...
    async def inbox(self, agency: str, *, limit: int = 50, receipts: bool = True) -> Sequence[QueuedItem]: ...
    def part_chunks(self, message_pk: int, content_id: str) -> AsyncIterator[bytes]: ...
    async def ack(self, agency: str, delivery_id: uuid.UUID, *, ack: bytes | None = None) -> str: ...
    async def message_status(self, sender: str, message_id: str) -> dict[str, Any]: ...
    async def find_letter(self, *, letter_number: str, letter_date: dt.date, sender: str | None = None,
                          recipient: str | None = None) -> LetterRef | None: ...
    async def withdraw(self, sender: str, *, letter_number: str, letter_date: dt.date,
                       recipient: str) -> int: ...
    async def outbound(self, sender: str, *, limit: int = 100) -> Sequence[OutboundItem]: ...


@dataclass
class Answer:
    status: int
    body: bytes
    operation: str | None = None
    error_codes: tuple[str, ...] = ()


#: One operation: (request, calling agency, request time, the request's bytes) -> answer element.
Operation = Callable[[soap.SoapRequest, str, dt.datetime, bytes], Awaitable[etree._Element]]


def _mentions_withdrawn(value: object) -> bool:
    if isinstance(value, str):
        return value == "withdrawn"
    if isinstance(value, dict):
        return any(_mentions_withdrawn(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_mentions_withdrawn(v) for v in value)
    return False


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
        self.operations: dict[str, Operation] = {
            "CorrespondenceLetterOutboundRequest": self._outbound,
            "CorrespondenceLetterInboundRequest": self._inbound,
            "CorrespondenceLetterDeleteRequest": self._delete,
            "CorrespondenceLetterInboundSpecialRequest": self._inbound_special,
            "CorrespondenceDeleteGovernmentDocumentRequest": self._withdraw,
            "OutboundStatusRequest": self._outbound_status,
        }

    @property
    def directory(self) -> Directory:
        return self.exchange.directory

    # ------------------------------------------------------------------ entry

    async def handle(self, data: bytes, *, caller: str | None) -> Answer:
        now = self.clock().astimezone(self.settings.zone)
        try:
            req = soap.parse_request(data, max_bytes=self.settings.max_bytes, validate=False)
        except GatewayError as exc:  # not e-CMS at all: a SOAP Fault
            wire = to_wire(exc)
            return Answer(413 if wire.code == "ECMS-102" else 500,
                          soap.serialize(soap.envelope(soap.fault(wire.code, wire.description))),
                          error_codes=(wire.code,))
        except Exception:
            return self._unhandled(None, caller)
        try:
            if caller is None:
                raise EcmsError("authenticate with a bearer token or an agency client certificate",
                                code="auth.required")
            soap.validate_operation(req)
            answer_el = await self._run(req, caller, now, data)
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
        return Answer(200, soap.serialize(soap.envelope(answer_el)), req.operation)

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

    async def _run(self, req: soap.SoapRequest, caller: str, now: dt.datetime, data: bytes) -> etree._Element:
        lookup = LOOKUPS.get(req.operation)
        if lookup is not None:
            return lookup(req.response_name, self.directory, self.settings, now)
        return await self.operations[req.operation](req, caller, now, data)

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

    def _agency_or_error(self, code: str, field_name: str) -> None:
        if code not in self.directory:
            raise EcmsError(f"department {code} is not in the directory", code="recipient.unknown",
                            field=field_name)

    # ------------------------------------------------------------------ outbound

    async def _outbound(self, req: soap.SoapRequest, caller: str, now: dt.datetime,
                        data: bytes) -> etree._Element:
        gov_doc = req.body.find(f"{{{soap.RSM_NS}}}GovernmentDocument")
        if gov_doc is not None:
            return await self._send_letter(req, gov_doc, caller, now, data)
        item = next(child for child in req.body if isinstance(child.tag, str)
                    and etree.QName(child).localname in NOTIFIER_KINDS)
        return await self._send_notifier(req, item, caller, now, data)

    async def _send_letter(self, req: soap.SoapRequest, gov_doc: etree._Element, caller: str,
                           now: dt.datetime, data: bytes) -> etree._Element:
        letter = read_letter(gov_doc)
        where = "GovernmentDocument/CorrespondenceLetter"
        if letter.sender.department != caller:
            raise EcmsError(f"SenderParty department {letter.sender.department} is not the caller {caller}",
                            code="auth.wrong_sender", field=f"{where}/SenderParty/DepartmentOrganization/ID")
        for i, r in enumerate(letter.receivers, start=1):  # a list's code (99xxx): checked at intake
            if not ECMS_CODE.match(r.department):
                self._agency_or_error(r.department, f"{where}/ReceiverParty[{i}]/DepartmentOrganization/ID")
        if letter.secrecy is Secrecy.TOP_SECRET:
            raise EcmsError("secrecy ลับที่สุด (top secret) is never carried electronically",
                            code="policy.top_secret", field=f"{where}/SecretCode")
        await self._check_signature(gov_doc, letter, caller)
        # The same letter again (a retry) is answered by deduplication; a *different* letter under the
        # same number and date must wait for a withdrawal: the service checks that as it stores.
        first_id = letter_message_id(caller, letter)
        result: Submitted
        for generation in range(0, 50):
            message_id = letter_message_id(caller, letter, generation=generation) if generation else first_id
            env = letter_to_envelope(letter, sender=caller, message_id=message_id, created_at=now,
                                     directory=self.directory)
            try:
                result = await self.exchange.submit(BuiltEnvelope(env), agency=caller, channel="ecms",
                                                    evidence=data, resend_guard=first_id)
            except LetterSentOtherwise as exc:
                raise EcmsError(f"letter {letter.id} of {letter.date} was already sent to {exc.recipient}; "
                                "withdraw it first (CorrespondenceDeleteGovernmentDocumentRequest)",
                                code="ecms.already_sent",
                                field="GovernmentDocument/CorrespondenceLetter/ID") from None
            except Conflict as exc:
                # The envelope of a retry differs from the stored one only in CreatedAt:
                # the same letter, so answer with the original ProcessID.
                if exc.code != "message.id_reused":
                    raise
                result = _Retried(message_id)
            if not result.duplicate:
                break
            status = await self.exchange.message_status(caller, result.message_id)
            if not _mentions_withdrawn(status):
                break  # a retry of the same letter: answer with the original ProcessID
        echo = build_government_document(_without_binaries(letter))
        return soap.response(req.response_name, echo, process_id=result.message_id, at=now)

    async def _check_signature(self, gov_doc: etree._Element, letter: EcmsLetter, caller: str) -> None:
        s = self.settings
        agency = self.directory.get(caller)
        report = verify_letter_signature(gov_doc, allow_sha1=s.allow_legacy_sha1,
                                         agency_fingerprints=agency.cert_fingerprints if agency else ())
        if report.present and report.intact and report.algorithm_allowed and s.require_trusted_signature \
                and self.trust is not None:
            report = await self._trust_report(self.trust, report, caller)
        if not report.present:
            if not s.accept_unsigned:
                raise EcmsError("unsigned letters are refused by this gateway", code="signature.required",
                                field="GovernmentDocument/GovernmentSignature")
            return
        if not report.algorithm_allowed:
            raise EcmsError(report.reason or "algorithm not allowed", code="signature.algorithm",
                            field="GovernmentSignature/Signature/SignedInfo")
        if not report.intact:
            raise EcmsError(report.reason or "signature does not verify", code="signature.invalid",
                            field="GovernmentSignature/Signature")
        if not report.trusted and (s.require_trusted_signature or not s.accept_unsigned):
            raise EcmsError(report.reason or "untrusted", code="signature.untrusted",
                            field="GovernmentSignature/Signature/KeyInfo")
        log.info("ecms legacy signature intact", letter_number=letter.id, agency=caller,
                 trusted=report.trusted, sha1=report.sha1)

    @staticmethod
    async def _trust_report(trust: TrustStore, report: LegacySignatureReport,
                            caller: str) -> LegacySignatureReport:
        """A pinned fingerprint is not enough here: the legacy signer's certificate must chain to
        the gateway's trust anchors and be bound to the calling agency, as a native signer's is."""
        if report.certificate is None:
            return replace(report, trusted=False,
                           reason="the signature carries no X509Certificate to validate")
        try:
            await trust.validate_signer(report.certificate, usage="document-signing")
            trust.check_agency(report.certificate, caller)
        except PkiError as exc:
            return replace(report, trusted=False, reason=f"{exc.code}: {exc}")
        return replace(report, trusted=True, reason=None)

    async def _send_notifier(self, req: soap.SoapRequest, item: etree._Element, caller: str, now: dt.datetime,
                             data: bytes) -> etree._Element:
        n = read_notifier(item)
        if n.kind is NotifierKind.INVALID_REGISTRY_NUMBER:
            ref = await self.exchange.find_letter(letter_number=n.letter_id, letter_date=n.date,
                                                  sender=caller)
            if ref is None:
                raise self._no_letter(n, f"sent by {caller}")
            if n.accept_department:
                if n.accept_department not in ref.recipients:
                    raise EcmsError(f"{n.accept_department} did not receive letter {n.letter_id}",
                                    code="ecms.ambiguous", field=f"{n.element}/AcceptDepartment/Code")
                target = n.accept_department
            elif len(ref.recipients) == 1:
                target = ref.recipients[0]
            else:
                raise EcmsError("the letter went to several agencies; name AcceptDepartment/Code",
                                code="ecms.ambiguous", field=f"{n.element}/AcceptDepartment")
            answering = target
        else:
            ref = await self.exchange.find_letter(letter_number=n.letter_id, letter_date=n.date,
                                                  recipient=caller)
            if ref is None:
                raise self._no_letter(n, f"received by {caller}")
            target = ref.sender
            answering = caller
        message_id = notifier_message_id(caller, target, n)
        env = notifier_to_envelope(n, sender=caller, recipient=target, message_id=message_id,
                                   created_at=now, ref_to_message_id=ref.message_id)
        result: Submitted
        try:
            result = await self.exchange.submit(BuiltEnvelope(env), agency=caller, channel="ecms",
                                                evidence=data)
        except Conflict as exc:
            if exc.code != "message.id_reused":
                raise
            result = _Retried(message_id)
        echo = EcmsNotifier(element=n.element, letter_id=n.letter_id, date=n.date, subject=n.subject,
                            accept_id=n.accept_id, accept_date=soap.format_time(now),
                            accept_department=answering)
        return soap.response(req.response_name, build_notifier(echo), process_id=result.message_id,
                             at=now, lowercase_alias=self.settings.lowercase_process_id_alias)

    @staticmethod
    def _no_letter(n: EcmsNotifier, whose: str) -> EcmsError:
        return EcmsError(f"no letter {n.letter_id} of {n.date.isoformat()} {whose}",
                         code="ecms.letter_not_found", field=f"{n.element}/LetterID")

    # ------------------------------------------------------------------ pull

    async def _item_element(self, item: QueuedItem, caller: str) -> tuple[etree._Element, Envelope] | None:
        root = gxml.parse(item.envelope, what="envelope")  # stored, verified bytes
        env = read_envelope(root)
        if item.parts:  # e-CMS carries files inline: read those stored beside the envelope
            env = await inline_external(env, functools.partial(self.exchange.part_chunks, item.message_pk))
        if env.letter is not None:
            letter = envelope_to_letter(env, recipient=caller, directory=self.directory)
            return build_government_document(letter), env
        if env.notifier is not None:
            return build_notifier(envelope_to_notifier(env)), env
        return None  # neither letter nor notifier (receipts are left out by the inbox query)

    async def _inbound(self, req: soap.SoapRequest, caller: str, now: dt.datetime,
                       data: bytes) -> etree._Element:
        # Delivery receipts have no e-CMS form: they are filtered out in SQL (before the LIMIT, so
        # any number of them never hides a letter) and stay in the agency's native inbox.
        for item in await self.exchange.inbox(caller, limit=50, receipts=False):
            found = await self._item_element(item, caller)
            if found is not None:
                return soap.response(req.response_name, found[0], process_id=str(item.delivery_id), at=now)
        return soap.U(req.response_name)  # empty: clients test InnerXml == ""

    async def _delete(self, req: soap.SoapRequest, caller: str, now: dt.datetime,
                      data: bytes) -> etree._Element:
        text = (req.body.findtext("ProcessID") or "").strip()
        try:
            delivery_id = uuid.UUID(text)
        except ValueError:
            raise EcmsError(f"{text!r} is not a ProcessID of this gateway", code="not_found",
                            field="ProcessID") from None
        try:
            await self.exchange.ack(caller, delivery_id)
        except NotFound:
            raise EcmsError(f"no queued item {text} for {caller}", code="not_found",
                            field="ProcessID") from None
        return soap.response(req.response_name, process_id=text, at=now)

    async def _inbound_special(self, req: soap.SoapRequest, caller: str, now: dt.datetime,
                               data: bytes) -> etree._Element:
        sel = next(child for child in req.body if isinstance(child.tag, str))
        kind = etree.QName(sel).localname
        number = (sel.findtext("LetterID") or "").strip()
        date = parse_date(sel.findtext("CorrespondenceDate"), f"{kind}/CorrespondenceDate")
        sender = (sel.findtext("SenderDepartment/Code") or "").strip()
        for item in await self.exchange.inbox(caller, limit=self.settings.inbox_scan, receipts=False):
            found = await self._item_element(item, caller)
            if found is None:
                continue
            el, env = found
            if kind == "GovernmentDocument":
                ok = env.letter is not None and env.letter.number == number and env.letter.date == date
            else:
                ok = (env.notifier is not None and NOTIFIER_ELEMENTS[env.notifier.kind] == kind
                      and env.notifier.letter_number == number and env.notifier.letter_date == date)
            if ok and (not sender or env.header.sender == sender):
                return soap.response(req.response_name, el, process_id=str(item.delivery_id), at=now)
        raise EcmsError(f"no queued {kind} for letter {number} of {date.isoformat()}", code="not_found",
                        field=f"{kind}/LetterID")

    # ------------------------------------------------------------------ withdraw and status

    async def _withdraw(self, req: soap.SoapRequest, caller: str, now: dt.datetime,
                        data: bytes) -> etree._Element:
        b = req.body
        number = (b.findtext("LetterID") or "").strip()
        date = parse_date(b.findtext("CorrespondenceDate"), "CorrespondenceDate")
        sender = (b.findtext("SenderDepartment/Code") or "").strip()
        accept = (b.findtext("AcceptDepartment/Code") or "").strip()
        if sender != caller:
            raise EcmsError(f"SenderDepartment {sender} is not the caller {caller}", code="auth.wrong_sender",
                            field="SenderDepartment/Code")
        self._agency_or_error(accept, "AcceptDepartment/Code")
        withdrawn = await self.exchange.withdraw(caller, letter_number=number, letter_date=date,
                                                 recipient=accept)
        if not withdrawn:
            raise EcmsError(f"no letter {number} of {date.isoformat()} from {caller} to {accept}",
                            code="ecms.letter_not_found", field="LetterID")
        return soap.response(req.response_name, soap.U.LetterID(number), process_id=number, at=now)

    async def _outbound_status(self, req: soap.SoapRequest, caller: str, now: dt.datetime,
                               data: bytes) -> etree._Element:
        items = await self.exchange.outbound(caller, limit=100)
        rows = [soap.U.Outbound(soap.U.ProcessID(i.message_id), soap.U.LetterID(i.letter_number),
                                soap.U.ProcessStatus(i.status)) for i in items]
        return soap.response(req.response_name, *rows, process_id=None, at=now)


@dataclass(frozen=True)
class _Retried:
    """A resubmission whose bytes differ only in CreatedAt: the same item, already stored."""

    message_id: str
    duplicate: bool = True


def _without_binaries(letter: EcmsLetter) -> EcmsLetter:
    """The outbound answer echoes the letter's metadata; the files are not sent back."""

    def empty(b: BinaryObject) -> BinaryObject:
        return BinaryObject(b.mime_code, b"")

    return replace(letter, main_letter=empty(letter.main_letter) if letter.main_letter else None,
                   attachments=tuple(empty(a) for a in letter.attachments))
