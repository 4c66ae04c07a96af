"""The e-CMS SOAP endpoint: ``POST /ecms-ws01/service2``.

:class:`EcmsFacade` turns one SOAP request into calls on the gateway's
:class:`gateway.exchange.service.Exchange` and answers in e-CMS shapes; the aiohttp
handler only authenticates, bounds the read and passes bytes in.

Operations and how they map:

* ``CorrespondenceLetterOutboundRequest`` with a letter: mapped to a native
  envelope (:mod:`gateway.ecms.mapping`) and ``Exchange.submit(channel="ecms",
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
* look-ups from the directory and the code tables; ``TimeCheckRequest`` from the
  injected clock; ``OutboundStatusRequest`` from ``Exchange.outbound``.

Failures are ``ErrorDetail{ErrorCode, ErrorDescription}`` inside the
operation's answer, HTTP 200, because e-CMS clients (.NET WebRequest) lose the
body of a non-2xx answer. Requests that are not e-CMS at all (not XML, DTD,
not SOAP) get a SOAP 1.1 Fault carrying the same ErrorDetail with HTTP 500 (400
for a missing/unknown operation is not SOAP-conformant, so 500 as SOAP 1.1
says), and 413 when the body is over the limit.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from aiohttp import web
from lxml import etree

from gateway.core import envelope as native
from gateway.core import xml as gxml
from gateway.core.directory import Directory
from gateway.core.envelope_reader import read_envelope
from gateway.core.errors import Conflict, GatewayError, LetterSentOtherwise, NotFound
from gateway.core.parts import inline_external
from gateway.ecms import mapping, soap
from gateway.ecms.codes import EcmsError, describe, ecms_code_for
from gateway.ecms.legacy import verify_letter_signature
from gateway.intake.checks import BuiltEnvelope
from gateway.intake.limits import body_deadline_s

log = structlog.get_logger("gateway.ecms")

ECMS_PATH = "/ecms-ws01/service2"
BANGKOK = dt.timezone(dt.timedelta(hours=7), "Asia/Bangkok")


@dataclass(frozen=True)
class EcmsSettings:
    """Settings of the e-CMS facade. Under ``create_app`` the signature policy comes from the
    gateway's settings (``GATEWAY_ECMS_ACCEPT_UNSIGNED``, ``GATEWAY_ECMS_ALLOW_LEGACY_SHA1``,
    ``GATEWAY_ECMS_REQUIRE_TRUSTED_SIGNATURE``), tokens from the profile; the defaults here
    serve a facade built directly."""

    max_bytes: int = 64 * 1024 * 1024
    """Largest SOAP request read, in bytes (letters carry base64 PDFs)."""
    accept_unsigned: bool = True
    """Accept letters without a legacy ds:Signature (most e-CMS clients never sign)."""
    allow_legacy_sha1: bool = False
    """Legacy profile: accept rsa-sha1 / sha1 signatures over #Letter."""
    require_trusted_signature: bool = False
    """Refuse a present signature whose certificate is not trusted for the sending agency
    (otherwise it is recorded as untrusted and the letter is treated like an unsigned one).
    Trusted: validated by the facade's trust store when it has one (create_app passes the
    gateway's), else pinned to the agency in the directory."""
    allow_tokens: bool = True
    """Accept development bearer tokens (off in the production profile: certificates only)."""
    allow_url_token: bool = True
    """Accept the development token as ``?token=`` so that clients change only the URL."""
    lowercase_process_id_alias: bool = False
    """Also emit ``processID`` in outbound-notifier answers (one public client reads that)."""
    public_url: str = ""
    """The gateway's e-CMS URL, advertised as ECMS-URL by GetOrganizationList."""
    zone: dt.tzinfo = BANGKOK
    """Zone of ProcessTime / ECMSTime."""
    inbox_scan: int = 200
    """How many queued items InboundSpecialRequest looks through."""


@dataclass(frozen=True)
class LetterRef:
    """What ``Exchange.find_letter`` returns: the native letter a notifier answers."""

    message_id: str
    sender: str
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class OutboundItem:
    """One row of ``Exchange.outbound``: a sent item and its overall state."""

    message_id: str
    letter_number: str
    status: str


class EcmsExchange(Protocol):
    """The part of :class:`gateway.exchange.service.Exchange` the facade uses. ``find_letter``,
    ``withdraw``, ``outbound`` and ``submit(resend_guard=)`` are additions requested from the service."""

    directory: Directory

    async def submit(self, data: bytes, *, agency: str, channel: str = "native",
                     evidence: bytes | None = None, resend_guard: str | None = None) -> Any: ...
    async def inbox(self, agency: str, *, limit: int = 50, receipts: bool = True) -> list[Any]: ...
    async def ack(self, agency: str, delivery_id: uuid.UUID, *, receipt: bytes | None = None) -> None: ...
    async def message_status(self, sender: str, message_id: str) -> dict: ...
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


def _now(clock: Callable[[], dt.datetime], zone: dt.tzinfo) -> dt.datetime:
    return clock().astimezone(zone)


def _mentions_withdrawn(value: Any) -> bool:
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
                 trust: Any = None) -> None:
        self.exchange = exchange
        self.settings = settings or EcmsSettings()
        self.clock = clock
        #: The gateway's pki.trust.TrustStore (validate_signer, check_agency), or None.
        self.trust = trust

    @property
    def directory(self) -> Directory:
        return self.exchange.directory

    # ------------------------------------------------------------------ entry

    async def handle(self, data: bytes, *, caller: str | None) -> Answer:
        now = _now(self.clock, self.settings.zone)
        try:
            req = soap.parse_request(data, max_bytes=self.settings.max_bytes, validate=False)
        except EcmsError as exc:
            status = 413 if exc.ecms_code == "ECMS-102" else 500
            return Answer(status, soap.serialize(soap.envelope(soap.fault(exc.ecms_code, describe(exc)))),
                          error_codes=(exc.ecms_code,))
        try:
            if caller is None:
                raise EcmsError("authenticate with a bearer token or an agency client certificate",
                                ecms_code="ECMS-200", code="auth.required")
            soap.validate_operation(req)
            handler = getattr(self, "_op_" + req.operation)
            answer_el = await handler(req, caller, now, data)
        except GatewayError as exc:
            code = ecms_code_for(exc)
            if code in ("ECMS-500", "ECMS-503"):
                return self._server_fault(code, exc, req)
            log.info("ecms request refused", operation=req.operation, agency=caller, ecms_code=code, code=exc.code)
            answer_el = soap.response(req.response_name, process_id="", at=now, errors=[(code, describe(exc))])
            return Answer(200, soap.serialize(soap.envelope(answer_el)), req.operation, (code,))
        except Exception:
            log.exception("ecms request failed", operation=req.operation, agency=caller)
            return self._server_fault("ECMS-500", None, req)
        return Answer(200, soap.serialize(soap.envelope(answer_el)), req.operation)

    def _server_fault(self, code: str, exc: GatewayError | None, req: soap.SoapRequest) -> Answer:
        text = describe(exc) if exc is not None else "internal error; the request was not processed"
        return Answer(503 if code == "ECMS-503" else 500,
                      soap.serialize(soap.envelope(soap.fault(code, text, client=False))), req.operation, (code,))

    def _agency_or_error(self, code: str, field_name: str) -> None:
        if code not in self.directory:
            raise EcmsError(f"department {code} is not in the directory", ecms_code="ECMS-300",
                            code="recipient.unknown", field=field_name)

    # ------------------------------------------------------------------ outbound

    async def _op_CorrespondenceLetterOutboundRequest(self, req, caller, now, data):
        gov_doc = req.body.find(f"{{{soap.RSM_NS}}}GovernmentDocument")
        if gov_doc is not None:
            return await self._send_letter(req, gov_doc, caller, now, data)
        item = next(child for child in req.body if isinstance(child.tag, str)
                    and etree.QName(child).localname in mapping.NOTIFIER_KINDS)
        return await self._send_notifier(req, item, caller, now, data)

    async def _send_letter(self, req, gov_doc, caller, now, data):
        letter = mapping.read_letter(gov_doc)
        where = "GovernmentDocument/CorrespondenceLetter"
        if letter.sender.department != caller:
            raise EcmsError(f"SenderParty department {letter.sender.department} is not the caller {caller}",
                            ecms_code="ECMS-201", code="auth.wrong_sender",
                            field=f"{where}/SenderParty/DepartmentOrganization/ID")
        for i, r in enumerate(letter.receivers, start=1):
            self._agency_or_error(r.department, f"{where}/ReceiverParty[{i}]/DepartmentOrganization/ID")
        if letter.secrecy is native.Secrecy.TOP_SECRET:
            raise EcmsError("secrecy ลับที่สุด (top secret) is never carried electronically",
                            ecms_code="ECMS-303", code="policy.top_secret", field=f"{where}/SecretCode")
        await self._check_signature(gov_doc, letter, caller)
        # The same letter again (a retry) is answered by deduplication; a *different* letter under the
        # same number and date must wait for a withdrawal: the service checks that as it stores.
        first_id = mapping.letter_message_id(caller, letter)
        for generation in range(0, 50):
            message_id = mapping.letter_message_id(caller, letter, generation=generation) if generation \
                else first_id
            env = mapping.letter_to_envelope(letter, sender=caller, message_id=message_id, created_at=now,
                                             directory=self.directory)
            try:
                result = await self.exchange.submit(BuiltEnvelope(env), agency=caller, channel="ecms",
                                                    evidence=data, resend_guard=first_id)
            except LetterSentOtherwise as exc:
                raise EcmsError(f"letter {letter.id} of {letter.date} was already sent to {exc.recipient}; "
                                "withdraw it first (CorrespondenceDeleteGovernmentDocumentRequest)",
                                ecms_code="ECMS-306", code="ecms.already_sent",
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
        echo = mapping.build_government_document(_without_binaries(letter))
        return soap.response(req.response_name, echo, process_id=result.message_id, at=now)

    async def _check_signature(self, gov_doc, letter: mapping.EcmsLetter, caller: str) -> None:
        s = self.settings
        agency = self.directory.get(caller)
        report = verify_letter_signature(gov_doc, allow_sha1=s.allow_legacy_sha1,
                                         agency_fingerprints=agency.cert_fingerprints if agency else ())
        if report.present and report.intact and report.algorithm_allowed and s.require_trusted_signature \
                and self.trust is not None:
            report = await self._trust_report(report, caller)
        if not report.present:
            if not s.accept_unsigned:
                raise EcmsError("unsigned letters are refused by this gateway", ecms_code="ECMS-402",
                                code="signature.required", field="GovernmentDocument/GovernmentSignature")
            return
        if not report.algorithm_allowed:
            raise EcmsError(report.reason or "algorithm not allowed", ecms_code="ECMS-401",
                            code="signature.algorithm", field="GovernmentSignature/Signature/SignedInfo")
        if not report.intact:
            raise EcmsError(report.reason or "signature does not verify", ecms_code="ECMS-400",
                            code="signature.invalid", field="GovernmentSignature/Signature")
        if not report.trusted and (s.require_trusted_signature or not s.accept_unsigned):
            raise EcmsError(report.reason or "untrusted", ecms_code="ECMS-403", code="signature.untrusted",
                            field="GovernmentSignature/Signature/KeyInfo")
        log.info("ecms legacy signature intact", letter_number=letter.id, agency=caller, trusted=report.trusted,
                 sha1=report.sha1)

    async def _trust_report(self, report, caller: str):
        """A pinned fingerprint is not enough here: the legacy signer's certificate must chain to
        the gateway's trust anchors and be bound to the calling agency, as a native signer's is."""
        from dataclasses import replace

        from pki.errors import PkiError

        if report.certificate is None:
            return replace(report, trusted=False, reason="the signature carries no X509Certificate to validate")
        try:
            await self.trust.validate_signer(report.certificate, usage="document-signing")
            self.trust.check_agency(report.certificate, caller)
        except PkiError as exc:
            return replace(report, trusted=False, reason=f"{exc.code}: {exc}")
        return replace(report, trusted=True, reason=None)

    async def _send_notifier(self, req, item, caller, now, data):
        n = mapping.read_notifier(item)
        find = self._need("find_letter")
        if n.kind is native.NotifierKind.INVALID_REGISTRY_NUMBER:
            ref = await find(letter_number=n.letter_id, letter_date=n.date, sender=caller)
            if ref is None:
                raise self._no_letter(n, f"sent by {caller}")
            if n.accept_department:
                if n.accept_department not in ref.recipients:
                    raise EcmsError(f"{n.accept_department} did not receive letter {n.letter_id}",
                                    ecms_code="ECMS-308", code="ecms.ambiguous",
                                    field=f"{n.element}/AcceptDepartment/Code")
                target = n.accept_department
            elif len(ref.recipients) == 1:
                target = ref.recipients[0]
            else:
                raise EcmsError("the letter went to several agencies; name AcceptDepartment/Code",
                                ecms_code="ECMS-308", code="ecms.ambiguous", field=f"{n.element}/AcceptDepartment")
            answering = target
        else:
            ref = await find(letter_number=n.letter_id, letter_date=n.date, recipient=caller)
            if ref is None:
                raise self._no_letter(n, f"received by {caller}")
            target = ref.sender
            answering = caller
        message_id = mapping.notifier_message_id(caller, target, n)
        env = mapping.notifier_to_envelope(n, sender=caller, recipient=target, message_id=message_id,
                                           created_at=now, ref_to_message_id=ref.message_id)
        try:
            result = await self.exchange.submit(BuiltEnvelope(env), agency=caller, channel="ecms",
                                                evidence=data)
        except Conflict as exc:
            if exc.code != "message.id_reused":
                raise
            result = _Retried(message_id)
        echo = mapping.EcmsNotifier(element=n.element, letter_id=n.letter_id, date=n.date, subject=n.subject,
                                    accept_id=n.accept_id, accept_date=soap.format_time(now),
                                    accept_department=answering)
        return soap.response(req.response_name, mapping.build_notifier(echo), process_id=result.message_id,
                             at=now, lowercase_alias=self.settings.lowercase_process_id_alias)

    @staticmethod
    def _no_letter(n: mapping.EcmsNotifier, whose: str) -> EcmsError:
        return EcmsError(f"no letter {n.letter_id} of {n.date.isoformat()} {whose}", ecms_code="ECMS-305",
                         code="ecms.letter_not_found", field=f"{n.element}/LetterID")

    def _need(self, name: str):
        method = getattr(self.exchange, name, None)
        if method is None:
            raise EcmsError(f"this gateway's service does not offer {name} yet", ecms_code="ECMS-504",
                            code="ecms.not_supported")
        return method

    # ------------------------------------------------------------------ pull

    async def _item_element(self, item, caller: str) -> tuple[etree._Element, native.Envelope] | None:
        root = gxml.parse(item.envelope, what="envelope")  # stored, verified bytes
        env = read_envelope(root)
        if getattr(item, "parts", 0):  # e-CMS carries files inline: read those stored beside the envelope
            env = await inline_external(env, functools.partial(self.exchange.part_chunks, item.message_pk))
        if env.letter is not None:
            letter = mapping.envelope_to_letter(env, recipient=caller, directory=self.directory)
            return mapping.build_government_document(letter), env
        if env.notifier is not None:
            return mapping.build_notifier(mapping.envelope_to_notifier(env)), env
        return None  # neither letter nor notifier (receipts are left out by the inbox query)

    async def _op_CorrespondenceLetterInboundRequest(self, req, caller, now, data):
        # Delivery receipts have no e-CMS form: they are filtered out in SQL (before the LIMIT, so
        # any number of them never hides a letter) and stay in the agency's native inbox.
        for item in await self.exchange.inbox(caller, limit=50, receipts=False):
            found = await self._item_element(item, caller)
            if found is not None:
                return soap.response(req.response_name, found[0], process_id=str(item.delivery_id), at=now)
        return soap.U(req.response_name)  # empty: clients test InnerXml == ""

    async def _op_CorrespondenceLetterDeleteRequest(self, req, caller, now, data):
        text = (req.body.findtext("ProcessID") or "").strip()
        try:
            delivery_id = uuid.UUID(text)
        except ValueError:
            raise EcmsError(f"{text!r} is not a ProcessID of this gateway", ecms_code="ECMS-307",
                            code="not_found", field="ProcessID") from None
        try:
            await self.exchange.ack(caller, delivery_id)
        except NotFound:
            raise EcmsError(f"no queued item {text} for {caller}", ecms_code="ECMS-307", code="not_found",
                            field="ProcessID") from None
        return soap.response(req.response_name, process_id=text, at=now)

    async def _op_CorrespondenceLetterInboundSpecialRequest(self, req, caller, now, data):
        sel = next(child for child in req.body if isinstance(child.tag, str))
        kind = etree.QName(sel).localname
        number = (sel.findtext("LetterID") or "").strip()
        date = mapping.parse_date(sel.findtext("CorrespondenceDate"), f"{kind}/CorrespondenceDate")
        sender = (sel.findtext("SenderDepartment/Code") or "").strip()
        for item in await self.exchange.inbox(caller, limit=self.settings.inbox_scan, receipts=False):
            found = await self._item_element(item, caller)
            if found is None:
                continue
            el, env = found
            if kind == "GovernmentDocument":
                ok = env.letter is not None and env.letter.number == number and env.letter.date == date
            else:
                ok = (env.notifier is not None and mapping.NOTIFIER_ELEMENTS[env.notifier.kind] == kind
                      and env.notifier.letter_number == number and env.notifier.letter_date == date)
            if ok and (not sender or env.header.sender == sender):
                return soap.response(req.response_name, el, process_id=str(item.delivery_id), at=now)
        raise EcmsError(f"no queued {kind} for letter {number} of {date.isoformat()}", ecms_code="ECMS-307",
                        code="not_found", field=f"{kind}/LetterID")

    # ------------------------------------------------------------------ withdraw

    async def _op_CorrespondenceDeleteGovernmentDocumentRequest(self, req, caller, now, data):
        b = req.body
        number = (b.findtext("LetterID") or "").strip()
        date = mapping.parse_date(b.findtext("CorrespondenceDate"), "CorrespondenceDate")
        sender = (b.findtext("SenderDepartment/Code") or "").strip()
        accept = (b.findtext("AcceptDepartment/Code") or "").strip()
        if sender != caller:
            raise EcmsError(f"SenderDepartment {sender} is not the caller {caller}", ecms_code="ECMS-201",
                            code="auth.wrong_sender", field="SenderDepartment/Code")
        self._agency_or_error(accept, "AcceptDepartment/Code")
        withdrawn = await self._need("withdraw")(caller, letter_number=number, letter_date=date, recipient=accept)
        if not withdrawn:
            raise EcmsError(f"no letter {number} of {date.isoformat()} from {caller} to {accept}",
                            ecms_code="ECMS-305", code="ecms.letter_not_found", field="LetterID")
        return soap.response(req.response_name, soap.U.LetterID(number), process_id=number, at=now)

    # ------------------------------------------------------------------ look-ups

    async def _op_GetMinistryOrganizationList(self, req, caller, now, data):
        seen: dict[str, str] = {}
        for a in self.directory.ministries():
            seen.setdefault(a.ministry, a.name_th)
        rows = [soap.U.MinistryOrganizationList(soap.U("Th-Name", name), soap.U.MinistryID(code))
                for code, name in sorted(seen.items())]
        return soap.response(req.response_name, *rows, process_id=None, at=now)

    async def _op_GetOrganizationList(self, req, caller, now, data):
        rows = [soap.U.OrganizationList(soap.U("En-Name", a.name_en), soap.U("Th-Name", a.name_th),
                                        soap.U("ECMS-URL", self.settings.public_url), soap.U.OrganizationID(a.code))
                for a in self.directory.all() if a.active]
        return soap.response(req.response_name, *rows, process_id=None, at=now)

    async def _op_GetSecretCodes(self, req, caller, now, data):
        rows = [soap.U.SecretCode(soap.U.Code(c), soap.U.Name(mapping.SECRET_NAMES_TH[c]),
                                  soap.U.Description(v.value))
                for c, v in mapping.SECRET_CODES.items()]
        return soap.response(req.response_name, *rows, process_id=None, at=now)

    async def _op_GetSpeedCodes(self, req, caller, now, data):
        rows = [soap.U.SpeedCode(soap.U.Code(c), soap.U.Name(mapping.SPEED_NAMES_TH[c]), soap.U.Description(v.value))
                for c, v in mapping.SPEED_CODES.items()]
        return soap.response(req.response_name, *rows, process_id=None, at=now)

    async def _op_GetMimeCodes(self, req, caller, now, data):
        rows = [soap.U.MimeCode(soap.U.Code(m), soap.U.Extension(ext)) for m, ext in mapping.MIME_TYPES.items()]
        return soap.response(req.response_name, *rows, process_id=None, at=now)

    async def _op_TimeCheckRequest(self, req, caller, now, data):
        return soap.U(req.response_name, soap.U.ECMSTime(soap.format_time(now)))

    async def _op_OutboundStatusRequest(self, req, caller, now, data):
        items = await self._need("outbound")(caller, limit=100)
        rows = [soap.U.Outbound(soap.U.ProcessID(i.message_id), soap.U.LetterID(i.letter_number),
                                soap.U.ProcessStatus(i.status)) for i in items]
        return soap.response(req.response_name, *rows, process_id=None, at=now)


@dataclass(frozen=True)
class _Retried:
    """A resubmission whose bytes differ only in CreatedAt: the same item, already stored."""

    message_id: str
    duplicate: bool = True


def _without_binaries(letter: mapping.EcmsLetter) -> mapping.EcmsLetter:
    """The outbound answer echoes the letter's metadata; the files are not sent back."""
    from dataclasses import replace

    empty = lambda b: mapping.BinaryObject(b.mime_code, b"")  # noqa: E731
    return replace(letter, main_letter=empty(letter.main_letter) if letter.main_letter else None,
                   attachments=tuple(empty(a) for a in letter.attachments))


# --------------------------------------------------------------------------- aiohttp


def identify_caller(request: web.Request, directory: Directory, settings: EcmsSettings) -> str | None:
    """The calling agency: mutual-TLS certificate pinned in the directory, else a bearer
    token (header, or ``?token=`` when allowed: e-CMS clients can change only the URL)."""
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    if ssl_object is not None:
        der = ssl_object.getpeercert(binary_form=True)
        if der:
            agency = directory.agency_for_fingerprint(hashlib.sha256(der).hexdigest())
            if agency is not None:
                return agency
    if not settings.allow_tokens:
        return None
    auth = request.headers.get("Authorization", "")
    token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
    if token is None and settings.allow_url_token:
        token = request.query.get("token")
    if token:
        return directory.agency_for_token(token)
    return None


FACADE_KEY = web.AppKey("ecms_facade", EcmsFacade)


def _facade_from_app(settings: EcmsSettings | None):
    async def ctx(app: web.Application):
        from dataclasses import replace

        from gateway.core import appkeys as keys

        s = settings or EcmsSettings()
        gw = app.get(keys.SETTINGS)
        if gw is not None:
            # The signature policy is the gateway's (GATEWAY_ECMS_*), never the facade's defaults.
            s = replace(s, allow_tokens=gw.profile != "production",
                        max_bytes=min(s.max_bytes, gw.max_body_bytes),
                        public_url=s.public_url or (gw.public_url.rstrip("/") + ECMS_PATH if gw.public_url else ""),
                        accept_unsigned=gw.ecms_accept_unsigned, allow_legacy_sha1=gw.ecms_allow_legacy_sha1,
                        require_trusted_signature=gw.ecms_require_trusted_signature)
        clock = app.get(keys.CLOCK)
        trust = app.get(keys.TRUST)
        app[FACADE_KEY] = EcmsFacade(app[keys.EXCHANGE].for_ecms(), settings=s, trust=trust.store if trust is not None else None,
                                     **({"clock": clock.now} if clock is not None else {}))
        yield

    return ctx


async def handle(request: web.Request) -> web.StreamResponse:
    """Role: agency (client certificate or token mapped to its department code). The e-CMS SOAP
    1.1 endpoint; refusals are ErrorDetail answers as e-CMS clients expect."""
    facade = request.app[FACADE_KEY]
    limit = facade.settings.max_bytes
    if request.content_length is not None and request.content_length > limit:
        answer = Answer(413, soap.serialize(soap.envelope(soap.fault(
            "ECMS-102", f"the request is {request.content_length} bytes, the limit is {limit}"))))
    else:
        data = bytearray()
        try:
            async with asyncio.timeout(body_deadline_s(request.app, request.content_length, limit)):
                async for chunk in request.content.iter_chunked(64 * 1024):
                    data += chunk
                    if len(data) > limit:
                        answer = Answer(413, soap.serialize(soap.envelope(soap.fault(
                            "ECMS-102", f"the request is over the limit of {limit} bytes"))))
                        break
                else:
                    answer = None
        except TimeoutError:
            response = web.Response(status=408, body=soap.serialize(soap.envelope(soap.fault(
                "ECMS-106", "the request body did not arrive in time"))), content_type="text/xml", charset="utf-8")
            response.force_close()
            return response
        if answer is None:
            caller = identify_caller(request, facade.directory, facade.settings)
            answer = await facade.handle(bytes(data), caller=caller)
    return web.Response(status=answer.status, body=answer.body, content_type="text/xml", charset="utf-8")


def setup_routes(app: web.Application, facade: EcmsFacade | None = None, *,
                 exchange: EcmsExchange | None = None, settings: EcmsSettings | None = None) -> None:
    """Register ``POST /ecms-ws01/service2``. Pass a facade, or the exchange (and settings)
    to build one; with neither, the app must already hold :data:`FACADE_KEY`."""
    if facade is None and exchange is not None:
        facade = EcmsFacade(exchange, settings=settings)
    if facade is None and FACADE_KEY not in app:
        # Wired by create_app: the exchange exists only once cleanup_ctx has run.
        app.cleanup_ctx.append(_facade_from_app(settings))
    if facade is not None:
        app[FACADE_KEY] = facade
    app.router.add_post(ECMS_PATH, handle)
