"""e-CMS letters and notifiers mapped to and from the native envelope.

Mapping an e-CMS letter to the native Letter (นอกจากที่ระบุ, nothing is dropped
silently; what the native v1 XSD cannot hold is listed in :data:`NOT_CARRIED`
and proposed to the lead as optional fields):

* ID → Number, CorrespondenceDate → Date, Subject → Subject;
* SpeedCode / SecretCode → Speed / Secrecy (:mod:`gateway.core.ecmswire.tables`);
* SenderParty/DepartmentOrganization/ID → Header/Sender (5-digit codes as-is),
  each ReceiverParty/DepartmentOrganization/ID → Header/Recipients/Recipient, except a
  distribution list's pseudo-organization code (``99xxx``, :data:`gateway.core.lists.ECMS_CODE`)
  → Header/Recipients/RecipientList (see ``gateway/ecms/CODES.md``);
* ReceiverParty/JobTitle (else its names, else the agency's Thai name) → Addressee (เรียน);
* GovernmentSignature/SignerParty names and Title (else SenderParty names and
  JobTitle) → Signer/Name ("given family") and Signer/Position;
* ReferenceCorrespondence → References; Attachment (text) → Enclosures;
  Description → Body;
* SenderParty / ReceiverParty names and JobTitle → Letter/Parties; SendDate → SentAt;
  GovernmentSignature TypeCode and ds:Signature → LegacySignature (evidence, as received);
* MainLetterBinaryObject → Attachment role="main" (``main.<ext>``),
  AttachmentBinaryObject → role="enclosure" (``attachment-<n>.<ext>``), mimeCode → MimeType.

The native MessageId of an e-CMS item is a digest of the item (:func:`letter_message_id`,
:func:`notifier_message_id`): e-CMS has no usable transport id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Final

from gateway.core.directory import Directory
from gateway.core.ecmswire.records import BinaryObject, EcmsLetter, EcmsNotifier, Party, Reference, Signer
from gateway.core.ecmswire.tables import MIME_TYPES, NOTIFIER_ELEMENTS, SECRET_CODES, SPEED_CODES
from gateway.core.envelope import (
    Attachment,
    Envelope,
    Header,
    Letter,
    LetterReference,
    MessageType,
    Notifier,
    NotifierKind,
)
from gateway.core.envelope import (
    LegacySignature as NativeLegacySignature,
)
from gateway.core.envelope import (
    Party as NativeParty,
)
from gateway.core.lists import ECMS_CODE

#: e-CMS data that does not travel on (always kept in the stored SOAP evidence). Parties' names and
#: job titles, SendDate and the GovernmentSignature travel in Letter/Parties, SentAt, LegacySignature.
NOT_CARRIED: Final = (
    "unknown SpeedCode/SecretCode spellings (normalised to 001..004)",
    "the legacy ds:Signature towards e-CMS receivers (carried to native ones as Letter/LegacySignature; "
    "it covers the original SOAP, kept as evidence, and would not verify over a rebuilt letter)",
)


def _split_name(full: str) -> tuple[str, str]:
    given, _, family = full.strip().partition(" ")
    return given, family.strip()


def _clip(text: str, limit: int = 1000) -> str:
    return text if len(text) <= limit else text[:limit]


def _enclosures(text: str) -> tuple[str, ...]:
    if not text.strip():
        return ()
    if len(text) <= 1000:
        return (text,)
    return tuple(_clip(line) for line in text.splitlines() if line.strip())


def _addressee(letter: EcmsLetter, directory: Directory | None) -> str:
    for r in letter.receivers:
        if r.job_title.strip():
            return _clip(r.job_title.strip())
    for r in letter.receivers:
        if r.full_name:
            return _clip(r.full_name)
    first = letter.receivers[0].department
    agency = directory.get(first) if directory is not None else None
    return agency.name_th if agency is not None else first


def _signer_fields(letter: EcmsLetter, directory: Directory | None) -> tuple[str, str]:
    s = letter.signer
    name = (s.full_name if s else "") or letter.sender.full_name
    position = ((s.title.strip() if s else "") or letter.sender.job_title.strip())
    if not name:
        agency = directory.get(letter.sender.department) if directory is not None else None
        name = agency.name_th if agency is not None else letter.sender.department
    return _clip(name), _clip(position or "-")


def letter_message_id(sender: str, letter: EcmsLetter, *, generation: int = 0) -> str:
    """Deterministic native MessageId for an e-CMS letter.

    e-CMS has no usable transport id (clients send empty or free-text MessageIDs), so the
    id is a digest of what makes the letter *this* letter: sender, receivers, number, date,
    subject and the files. A client that retries after a timeout sends the same letter and
    gets the original ProcessID back (the gateway deduplicates on sender + message id);
    ``generation`` > 0 names a resend after a withdrawal.
    """
    h = hashlib.sha256()
    for part in (sender, ",".join(sorted({r.department for r in letter.receivers})), letter.id,
                 letter.date.isoformat(), letter.subject):
        h.update(part.encode("utf-8") + b"\x00")
    for obj in ((letter.main_letter,) if letter.main_letter else ()) + letter.attachments:
        h.update(hashlib.sha256(obj.content).digest())
    suffix = f".r{generation}" if generation else ""
    return f"ecms.{h.hexdigest()[:40]}{suffix}"


def notifier_message_id(sender: str, recipient: str, n: EcmsNotifier) -> str:
    """Deterministic MessageId for a notifier: a retried notifier is the same notifier."""
    h = hashlib.sha256()
    for part in (sender, recipient, n.element, n.letter_id, n.date.isoformat(), n.accept_id):
        h.update(part.encode("utf-8") + b"\x00")
    return f"ecms.n.{h.hexdigest()[:40]}"


def letter_to_envelope(letter: EcmsLetter, *, sender: str, message_id: str, created_at: dt.datetime,
                       directory: Directory | None = None) -> Envelope:
    """The native envelope for an e-CMS letter (unsigned; the gateway seals what it forwards)."""
    codes = tuple(dict.fromkeys(r.department for r in letter.receivers))
    recipients = tuple(c for c in codes if not ECMS_CODE.match(c))
    recipient_lists = tuple(c for c in codes if ECMS_CODE.match(c))
    signer_name, signer_position = _signer_fields(letter, directory)
    native = Letter(
        number=_clip(letter.id), date=letter.date, subject=_clip(letter.subject),
        addressee=_addressee(letter, directory), speed=letter.speed, secrecy=letter.secrecy,
        signer_name=signer_name, signer_position=signer_position,
        references=tuple(LetterReference(number=_clip(r.id), date=r.date, subject=_clip(r.subject) or None)
                         for r in letter.references),
        enclosures=_enclosures(letter.attachment_text),
        body=letter.description if letter.description.strip() else None,
        sender_party=_native_party(letter.sender),
        receiver_parties=tuple(p for p in (_native_party(r) for r in letter.receivers) if p is not None),
        sent_at=_clip(letter.send_date) or None,
        legacy_signature=(NativeLegacySignature(type_code=_clip(letter.signature_type) or None,
                                                signature=letter.signature_xml or None)
                          if letter.signature_type or letter.signature_xml else None),
    )
    files: list[Attachment] = []
    if letter.main_letter is not None:
        m = letter.main_letter
        files.append(Attachment(id="main", file_name=f"main.{MIME_TYPES.get(m.mime_code, 'bin')}",
                                mime_type=m.mime_code, content=m.content, role="main"))
    for i, a in enumerate(letter.attachments, start=1):
        files.append(Attachment(id=f"att{i}",
                                file_name=f"attachment-{i}.{MIME_TYPES.get(a.mime_code, 'bin')}",
                                mime_type=a.mime_code, content=a.content, role="enclosure"))
    header = Header(message_id=message_id, message_type=MessageType.LETTER, created_at=created_at,
                    sender=sender, recipients=recipients, conversation_id=message_id,
                    recipient_lists=recipient_lists)
    return Envelope(header=header, body=native, attachments=tuple(files))


def _native_party(p: Party) -> NativeParty | None:
    """The names and job title the client gave, if it gave any (the agency code alone is in the header)."""
    given, family, title = (_clip(v.strip()) or None for v in (p.given_name, p.family_name, p.job_title))
    if not (given or family or title):
        return None
    return NativeParty(agency=p.department, given_name=given, family_name=family, job_title=title)


def envelope_to_letter(env: Envelope, *, recipient: str | None = None,
                       directory: Directory | None = None) -> EcmsLetter:
    """The e-CMS letter for a native letter envelope, as one receiver (or all) will see it."""
    letter = env.letter
    if letter is None:
        raise ValueError("not a letter envelope")
    h = env.header
    given, family = _split_name(letter.signer_name)
    sp = letter.sender_party
    sender = (Party(department=h.sender, given_name=sp.given_name or "", family_name=sp.family_name or "",
                    job_title=sp.job_title or "", ministry=h.sender[:2]) if sp is not None
              else Party(department=h.sender, given_name=given, family_name=family,
                         job_title=letter.signer_position, ministry=h.sender[:2]))
    named = {p.agency: p for p in letter.receiver_parties}

    def receiver(code: str) -> Party:
        p = named.get(code)
        if p is None:
            return Party(department=code, job_title=letter.addressee, ministry=code[:2])
        return Party(department=code, given_name=p.given_name or "", family_name=p.family_name or "",
                     job_title=p.job_title or letter.addressee, ministry=code[:2])

    receivers = tuple(receiver(r) for r in ((recipient,) if recipient else h.recipients))
    main = next((a for a in env.attachments if a.role == "main"), None)
    others = tuple(a for a in env.attachments if a is not main)
    speed = {v: k for k, v in SPEED_CODES.items()}[letter.speed]
    secret = {v: k for k, v in SECRET_CODES.items()}[letter.secrecy]
    return EcmsLetter(
        id=letter.number, date=letter.date, subject=letter.subject, speed_code=speed, secret_code=secret,
        sender=sender, receivers=receivers,
        references=tuple(Reference(id=r.number, date=r.date, subject=r.subject or "")
                         for r in letter.references),
        attachment_text="\n".join(letter.enclosures),
        send_date=letter.sent_at or h.created_at.replace(microsecond=0).isoformat(),
        description=letter.body or "",
        main_letter=BinaryObject(main.mime_type, main.content) if main else None,
        attachments=tuple(BinaryObject(a.mime_type, a.content) for a in others),
        # the legacy ds:Signature is not re-embedded: it covered the original SOAP letter and would not
        # verify over this rebuilt one; the gateway's seal and the kept evidence stand for it
        signature_type=letter.legacy_signature.type_code or "" if letter.legacy_signature else "",
        signer=Signer(given_name=given, family_name=family, title=letter.signer_position,
                      ministry=h.sender[:2], department=h.sender),
    )


def notifier_to_envelope(n: EcmsNotifier, *, sender: str, recipient: str, message_id: str,
                         created_at: dt.datetime, ref_to_message_id: str | None = None) -> Envelope:
    """The native notifier envelope for an e-CMS notifier sent by ``sender`` to ``recipient``."""
    registered_at = None
    if n.kind is NotifierKind.ACCEPTED:
        registered_at = created_at
        if n.accept_date:
            try:
                parsed = dt.datetime.fromisoformat(n.accept_date.replace("Z", "+00:00"))
                registered_at = parsed if parsed.tzinfo else parsed.replace(tzinfo=created_at.tzinfo)
            except ValueError:
                pass  # informative only; the gateway's time stands
    native = Notifier(
        kind=n.kind, letter_number=_clip(n.letter_id), letter_date=n.date, subject=_clip(n.subject) or None,
        registry_number=_clip(n.accept_id) if n.accept_id else None, registered_at=registered_at)
    header = Header(message_id=message_id, message_type=MessageType.NOTIFIER, created_at=created_at,
                    sender=sender, recipients=(recipient,), conversation_id=ref_to_message_id,
                    ref_to_message_id=ref_to_message_id)
    return Envelope(header=header, body=native)


def envelope_to_notifier(env: Envelope) -> EcmsNotifier:
    """The e-CMS notifier for a native notifier envelope. AcceptDepartment is the letter's receiving
    department (the one that registers it): who sent the notifier, except for InvalidAcceptIDNotifier,
    which the letter's sender sends *to* that department (as the answer to its sender says too)."""
    n = env.notifier
    if n is None:
        raise ValueError("not a notifier envelope")
    at = n.registered_at or env.header.created_at
    accepting = (env.header.recipients[0] if n.kind is NotifierKind.INVALID_REGISTRY_NUMBER and env.header.recipients
                 else env.header.sender)
    return EcmsNotifier(
        element=NOTIFIER_ELEMENTS[n.kind], letter_id=n.letter_number, date=n.letter_date,
        subject=n.subject or "", accept_id=n.registry_number or "",
        accept_date=at.replace(microsecond=0).isoformat(), accept_department=accepting)
