"""e-CMS letters and notifiers sent by a client (``CorrespondenceLetterOutboundRequest``).

* a letter: mapped to a native envelope (:mod:`gateway.core.ecmswire.mapping`) and
  ``Exchange.submit(channel="ecms", evidence=<the SOAP bytes>)``; the envelope goes as a
  :class:`gateway.intake.checks.BuiltEnvelope`, so intake checks the tree it was built as instead of
  parsing its bytes again. ProcessID = the native message id, which is a digest of the letter, so a
  client retry gets the original ProcessID; a resend after a withdrawal gets a new generation.
* a notifier: correlated by LetterID + CorrespondenceDate through ``Exchange.find_letter`` (the
  receiver answering; InvalidAcceptIDNotifier: the sender), then submitted as a native notifier to
  the other party. The answer carries ``processID`` beside ``ProcessID`` (``gateway/ecms/CODES.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import structlog
from lxml import etree

from gateway.core.ecmswire import soap
from gateway.core.ecmswire.building import build_letter_answer, build_notifier
from gateway.core.ecmswire.errors import EcmsError
from gateway.core.ecmswire.mapping import (
    letter_message_id,
    letter_to_envelope,
    notifier_message_id,
    notifier_to_envelope,
)
from gateway.core.ecmswire.reading import read_letter, read_notifier
from gateway.core.ecmswire.records import EcmsLetter, EcmsNotifier
from gateway.core.ecmswire.tables import NOTIFIER_KINDS
from gateway.core.envelope import NotifierKind, Secrecy
from gateway.core.errors import Conflict, LetterSentOtherwise
from gateway.core.lists import ECMS_CODE
from gateway.ecms.legacy import LegacySignatureReport, verify_letter_signature
from gateway.ecms.ports import Call, Context, Submitted
from gateway.intake.checks import BuiltEnvelope
from pki.errors import PkiError
from pki.trust import TrustStore

log = structlog.get_logger("gateway.ecms")


def _mentions_withdrawn(value: object) -> bool:
    if isinstance(value, str):
        return value == "withdrawn"
    if isinstance(value, dict):
        return any(_mentions_withdrawn(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_mentions_withdrawn(v) for v in value)
    return False


def agency_or_error(ctx: Context, code: str, field_name: str) -> None:
    if code not in ctx.directory:
        raise EcmsError(f"department {code} is not in the directory", code="recipient.unknown",
                        field=field_name)


class Sending:
    """``CorrespondenceLetterOutboundRequest``: a letter or a notifier from the caller."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def outbound(self, call: Call) -> etree._Element:
        gov_doc = call.req.body.find(f"{{{soap.RSM_NS}}}GovernmentDocument")
        if gov_doc is not None:
            return await self._send_letter(call, gov_doc)
        item = next(child for child in call.req.body if isinstance(child.tag, str)
                    and etree.QName(child).localname in NOTIFIER_KINDS)
        return await self._send_notifier(call, item)

    async def _send_letter(self, call: Call, gov_doc: etree._Element) -> etree._Element:
        caller, exchange = call.caller, self.ctx.exchange
        letter = read_letter(gov_doc)
        where = "GovernmentDocument/CorrespondenceLetter"
        if letter.sender.department != caller:
            raise EcmsError(f"SenderParty department {letter.sender.department} is not the caller {caller}",
                            code="auth.wrong_sender", field=f"{where}/SenderParty/DepartmentOrganization/ID")
        for i, r in enumerate(letter.receivers, start=1):  # a list's code (99xxx): checked at intake
            if not ECMS_CODE.match(r.department):
                agency_or_error(self.ctx, r.department, f"{where}/ReceiverParty[{i}]/DepartmentOrganization/ID")
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
            env = letter_to_envelope(letter, sender=caller, message_id=message_id, created_at=call.now,
                                     directory=self.ctx.directory)
            try:
                result = await exchange.submit(BuiltEnvelope(env), agency=caller, channel="ecms",
                                               evidence=call.data, resend_guard=first_id)
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
            status = await exchange.message_status(caller, result.message_id)
            if not _mentions_withdrawn(status):
                break  # a retry of the same letter: answer with the original ProcessID
        # the letter echoed without its files, in the whole SOAP envelope of the answer
        return build_letter_answer(call.req.response_name, letter, process_id=result.message_id, at=call.now)

    async def _check_signature(self, gov_doc: etree._Element, letter: EcmsLetter, caller: str) -> None:
        s = self.ctx.settings
        agency = self.ctx.directory.get(caller)
        report = verify_letter_signature(gov_doc, allow_sha1=s.allow_legacy_sha1,
                                         agency_fingerprints=agency.cert_fingerprints if agency else ())
        if report.present and report.intact and report.algorithm_allowed and s.require_trusted_signature \
                and self.ctx.trust is not None:
            report = await _trust_report(self.ctx.trust, report, caller)
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

    async def _send_notifier(self, call: Call, item: etree._Element) -> etree._Element:
        caller, exchange = call.caller, self.ctx.exchange
        n = read_notifier(item)
        if n.kind is NotifierKind.INVALID_REGISTRY_NUMBER:
            ref = await exchange.find_letter(letter_number=n.letter_id, letter_date=n.date, sender=caller)
            if ref is None:
                raise _no_letter(n, f"sent by {caller}")
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
            ref = await exchange.find_letter(letter_number=n.letter_id, letter_date=n.date, recipient=caller)
            if ref is None:
                raise _no_letter(n, f"received by {caller}")
            target = ref.sender
            answering = caller
        message_id = notifier_message_id(caller, target, n)
        env = notifier_to_envelope(n, sender=caller, recipient=target, message_id=message_id,
                                   created_at=call.now, ref_to_message_id=ref.message_id)
        result: Submitted
        try:
            result = await exchange.submit(BuiltEnvelope(env), agency=caller, channel="ecms", evidence=call.data)
        except Conflict as exc:
            if exc.code != "message.id_reused":
                raise
            result = _Retried(message_id)
        echo = EcmsNotifier(element=n.element, letter_id=n.letter_id, date=n.date, subject=n.subject,
                            accept_id=n.accept_id, accept_date=soap.format_time(call.now),
                            accept_department=answering)
        return soap.response(call.req.response_name, build_notifier(echo), process_id=result.message_id,
                             at=call.now, lowercase_alias=self.ctx.settings.lowercase_process_id_alias)


async def _trust_report(trust: TrustStore, report: LegacySignatureReport, caller: str) -> LegacySignatureReport:
    """A pinned fingerprint is not enough here: the legacy signer's certificate must chain to
    the gateway's trust anchors and be bound to the calling agency, as a native signer's is."""
    if report.certificate is None:
        return replace(report, trusted=False, reason="the signature carries no X509Certificate to validate")
    try:
        await trust.validate_signer(report.certificate, usage="document-signing")
        trust.check_agency(report.certificate, caller)
    except PkiError as exc:
        return replace(report, trusted=False, reason=f"{exc.code}: {exc}")
    return replace(report, trusted=True, reason=None)


def _no_letter(n: EcmsNotifier, whose: str) -> EcmsError:
    return EcmsError(f"no letter {n.letter_id} of {n.date.isoformat()} {whose}",
                     code="ecms.letter_not_found", field=f"{n.element}/LetterID")


@dataclass(frozen=True)
class _Retried:
    """A resubmission whose bytes differ only in CreatedAt: the same item, already stored."""

    message_id: str
    duplicate: bool = True

