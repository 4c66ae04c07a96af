"""e-CMS letters and notifiers as records, read from / built to XML, and mapped to
and from the native envelope.

Reading takes an element already checked by :func:`gateway.ecms.soap.parse_request`
(schema-valid); the business checks the schema cannot express (dates, code
tables, base64) raise :class:`EcmsError` with a stable code and the field.

Code tables (answered by GetSpeedCodes / GetSecretCodes, accepted on input
together with the one-digit forms, the Thai names and the native names; an
empty code means normal):

=====  =====================  ==========================
code   SpeedCode              SecretCode
=====  =====================  ==========================
001    ปกติ (normal)           ปกติ (normal)
002    ด่วน (urgent)            ลับ (confidential)
003    ด่วนมาก (very-urgent)     ลับมาก (secret)
004    ด่วนที่สุด (most-urgent)   ลับที่สุด (top-secret: refused)
=====  =====================  ==========================

Mapping an e-CMS letter to the native Letter (นอกจากที่ระบุ, nothing is dropped
silently; what the native v1 XSD cannot hold is listed in :data:`NOT_CARRIED`
and proposed to the lead as optional fields):

* ID → Number, CorrespondenceDate → Date, Subject → Subject;
* SpeedCode / SecretCode → Speed / Secrecy (table above);
* SenderParty/DepartmentOrganization/ID → Header/Sender (5-digit codes as-is),
  each ReceiverParty/DepartmentOrganization/ID → Header/Recipients;
* ReceiverParty/JobTitle (else its names, else the agency's Thai name) → Addressee (เรียน);
* GovernmentSignature/SignerParty names and Title (else SenderParty names and
  JobTitle) → Signer/Name ("given family") and Signer/Position;
* ReferenceCorrespondence → References; Attachment (text) → Enclosures;
  Description → Body;
* SenderParty / ReceiverParty names and JobTitle → Letter/Parties; SendDate → SentAt;
  GovernmentSignature TypeCode and ds:Signature → LegacySignature (evidence, as received);
* MainLetterBinaryObject → Attachment role="main" (``main.<ext>``),
  AttachmentBinaryObject → role="enclosure" (``attachment-<n>.<ext>``), mimeCode → MimeType.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Final

from lxml import etree

from gateway.core.directory import Directory
from gateway.core.envelope import (
    Attachment,
    Envelope,
    Header,
    Letter,
    LetterReference,
    MessageType,
    Notifier,
    NotifierKind,
    Secrecy,
    Speed,
)
from gateway.core.envelope import (
    LegacySignature as NativeLegacySignature,
)
from gateway.core.envelope import (
    Party as NativeParty,
)
from gateway.ecms.codes import EcmsError
from gateway.ecms.soap import RAM, RAM_NS, RSM_NS, child  # noqa: F401 - RAM: callers build with mapping.RAM

_R = f"{{{RAM_NS}}}"

SPEED_CODES: Final[dict[str, Speed]] = {
    "001": Speed.NORMAL, "002": Speed.URGENT, "003": Speed.VERY_URGENT, "004": Speed.MOST_URGENT}
SECRET_CODES: Final[dict[str, Secrecy]] = {
    "001": Secrecy.NORMAL, "002": Secrecy.CONFIDENTIAL, "003": Secrecy.SECRET, "004": Secrecy.TOP_SECRET}
SPEED_NAMES_TH: Final = {"001": "ปกติ", "002": "ด่วน", "003": "ด่วนมาก", "004": "ด่วนที่สุด"}
SECRET_NAMES_TH: Final = {"001": "ปกติ", "002": "ลับ", "003": "ลับมาก", "004": "ลับที่สุด"}

#: e-CMS notifier element <-> native notifier kind.
NOTIFIER_KINDS: Final[dict[str, NotifierKind]] = {
    "ReceiveLetterNotifier": NotifierKind.RECEIVED,
    "AcceptLetterNotifier": NotifierKind.ACCEPTED,
    "RejectLetterNotifier": NotifierKind.REJECTED,
    "InvalidLetterNotifier": NotifierKind.INVALID,
    "InvalidAcceptIDNotifier": NotifierKind.INVALID_REGISTRY_NUMBER,
}
NOTIFIER_ELEMENTS: Final = {kind: name for name, kind in NOTIFIER_KINDS.items()}

#: MIME types named in GetMimeCodes, with the file extension used for native FileName.
MIME_TYPES: Final[dict[str, str]] = {
    "application/pdf": "pdf",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/tiff": "tif",
    "text/plain": "txt",
    "application/zip": "zip",
    "application/octet-stream": "bin",
}
_EXT_TO_MIME: Final = {ext: mime for mime, ext in MIME_TYPES.items()} | {"jpeg": "image/jpeg", "tiff": "image/tiff"}
_MIME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+\-]*/[a-z0-9][a-z0-9!#$&^_.+\-]*$")

#: e-CMS data that does not travel on (always kept in the stored SOAP evidence). Parties' names and
#: job titles, SendDate and the GovernmentSignature travel in Letter/Parties, SentAt, LegacySignature.
NOT_CARRIED: Final = (
    "unknown SpeedCode/SecretCode spellings (normalised to 001..004)",
    "the legacy ds:Signature towards e-CMS receivers (carried to native ones as Letter/LegacySignature; "
    "it covers the original SOAP, kept as evidence, and would not verify over a rebuilt letter)",
)


@dataclass(frozen=True)
class Party:
    """SenderParty / ReceiverParty."""

    department: str
    """DepartmentOrganization/ID: the agency code."""
    given_name: str = ""
    family_name: str = ""
    job_title: str = ""
    ministry: str = ""
    """MinistryOrganization/ID as sent (informative; derived from ``department`` on output)."""

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.given_name.strip(), self.family_name.strip()) if p)


@dataclass(frozen=True)
class Signer:
    """GovernmentSignature/SignerParty (either client shape)."""

    given_name: str = ""
    family_name: str = ""
    title: str = ""
    ministry: str = ""
    department: str = ""

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.given_name.strip(), self.family_name.strip()) if p)


@dataclass(frozen=True)
class BinaryObject:
    mime_code: str
    """MIME type (normalised to lower case type/subtype)."""
    content: bytes


@dataclass(frozen=True)
class Reference:
    id: str
    date: dt.date
    subject: str = ""


@dataclass(frozen=True)
class EcmsLetter:
    """ram:CorrespondenceLetter plus the GovernmentSignature around it."""

    id: str
    """ที่ (letter number)."""
    date: dt.date
    subject: str
    speed_code: str
    """Normalised 001..004."""
    secret_code: str
    """Normalised 001..004."""
    sender: Party
    receivers: tuple[Party, ...]
    references: tuple[Reference, ...] = ()
    attachment_text: str = ""
    """ram:Attachment: enclosures as text (สิ่งที่ส่งมาด้วย)."""
    send_date: str = ""
    description: str = ""
    main_letter: BinaryObject | None = None
    attachments: tuple[BinaryObject, ...] = ()
    signature_type: str = ""
    signer: Signer | None = None
    has_signature: bool = False
    """A ds:Signature was present (verified separately, see :mod:`gateway.ecms.legacy`)."""
    signature_xml: bytes = b""
    """That ds:Signature element's bytes as received (carried to native receivers as evidence)."""

    @property
    def speed(self) -> Speed:
        return SPEED_CODES[self.speed_code]

    @property
    def secrecy(self) -> Secrecy:
        return SECRET_CODES[self.secret_code]


@dataclass(frozen=True)
class EcmsNotifier:
    """One of the five e-CMS business notifiers."""

    element: str
    """ReceiveLetterNotifier, AcceptLetterNotifier, RejectLetterNotifier,
    InvalidLetterNotifier or InvalidAcceptIDNotifier."""
    letter_id: str
    date: dt.date
    subject: str = ""
    accept_id: str = ""
    """AcceptID (registry number) for Accept / InvalidAcceptID."""
    accept_date: str = ""
    accept_department: str = ""
    """AcceptDepartment/Code: the agency that sent the notifier (on output), or the party
    named by the client (on input)."""
    sender_department: str = ""

    @property
    def kind(self) -> NotifierKind:
        return NOTIFIER_KINDS[self.element]


# --------------------------------------------------------------------------- small parsers


def parse_date(value: str | None, field_name: str) -> dt.date:
    """yyyy-MM-dd (optionally with a time part); a Buddhist-era year (> 2400) is converted."""
    text = (value or "").strip()
    m = re.match(r"^(\d{4})-(\d{2})-(\d{2})(?:T.*)?$", text)
    if not m:
        raise EcmsError(f"{text!r} is not a date (yyyy-MM-dd)", ecms_code="ECMS-301", code="ecms.invalid_date",
                        field=field_name)
    year, month, day = (int(g) for g in m.groups())
    if year > 2400:
        year -= 543
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise EcmsError(f"{text!r} is not a calendar date", ecms_code="ECMS-301", code="ecms.invalid_date",
                        field=field_name) from None


def _norm_code(value: str | None, table: dict, names_th: dict[str, str], field_name: str) -> str:
    text = (value or "").strip()
    if not text:
        return "001"
    if text.isdigit() and 1 <= int(text) <= 4:
        return f"{int(text):03d}"
    for code, name in names_th.items():
        if text == name:
            return code
    for code, enum_value in table.items():
        if text.lower() == enum_value.value:
            return code
    raise EcmsError(f"{text!r} is not a known code (001-004)", ecms_code="ECMS-302", code="ecms.invalid_code",
                    field=field_name)


def speed_code(value: str | None, field_name: str = "SpeedCode") -> str:
    return _norm_code(value, SPEED_CODES, SPEED_NAMES_TH, field_name)


def secret_code(value: str | None, field_name: str = "SecretCode") -> str:
    return _norm_code(value, SECRET_CODES, SECRET_NAMES_TH, field_name)


def normalise_mime(value: str | None) -> str:
    text = (value or "").strip().lower()
    if _MIME_RE.match(text):
        return text
    if text.lstrip(".") in _EXT_TO_MIME:
        return _EXT_TO_MIME[text.lstrip(".")]
    return "application/octet-stream"


def decode_base64(text: str | None, field_name: str) -> bytes:
    compact = "".join((text or "").split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise EcmsError("not valid base64", ecms_code="ECMS-304", code="ecms.invalid_binary",
                        field=field_name) from None


# --------------------------------------------------------------------------- reading XML


class _Children:
    """The direct children of one element by tag, indexed in one pass.

    ``find`` goes through ElementPath, several times the cost of iterating the
    children once, and reading a letter takes about forty look-ups (a profile of
    the e-CMS letter path had ``read_letter`` at a tenth of the request). A
    multi-step path keeps ElementPath's meaning: the first match under *any* of
    the elements of the previous step.
    """

    __slots__ = ("_by_tag",)

    def __init__(self, el: etree._Element | None) -> None:
        by_tag: dict[object, list[etree._Element]] = {}
        if el is not None:
            for child in el:
                by_tag.setdefault(child.tag, []).append(child)
        self._by_tag = by_tag

    def all(self, tag: str) -> list[etree._Element]:
        return self._by_tag.get(tag, [])

    def first(self, tag: str, *path: str) -> etree._Element | None:
        level = self._by_tag.get(tag)
        for step in path:
            level = [c for p in level or () for c in p.iterchildren(step)]
        return level[0] if level else None

    def text(self, tag: str, *path: str) -> str:
        child = self.first(tag, *path)
        return "" if child is None else (child.text or "")


def _party(el: etree._Element | None) -> Party:
    k = _Children(el)
    return Party(
        department=k.text(f"{_R}DepartmentOrganization", f"{_R}ID").strip(),
        given_name=k.text(f"{_R}GivenName"), family_name=k.text(f"{_R}FamilyName"),
        job_title=k.text(f"{_R}JobTitle"), ministry=k.text(f"{_R}MinistryOrganization", f"{_R}ID").strip(),
    )


def _signer(el: etree._Element) -> Signer:
    k = _Children(el)
    return Signer(
        given_name=k.text(f"{_R}GivenName"), family_name=k.text(f"{_R}FamilyName"),
        title=k.text(f"{_R}Title") or k.text(f"{_R}JobTitle"),
        ministry=(k.text(f"{_R}MinistryCode") or k.text(f"{_R}MinistryOrganization", f"{_R}ID")).strip(),
        department=(k.text(f"{_R}DepartmentCode") or k.text(f"{_R}DepartmentOrganization", f"{_R}ID")).strip(),
    )


def find_government_signature(gov_doc: etree._Element) -> etree._Element | None:
    """The GovernmentSignature: sibling of the letter (standard) or inside it (seen in one client)."""
    k = _Children(gov_doc)
    sig = k.first(f"{_R}GovernmentSignature")
    if sig is None:
        sig = k.first(f"{_R}CorrespondenceLetter", f"{_R}GovernmentSignature")
    return sig


def read_letter(gov_doc: etree._Element) -> EcmsLetter:
    """Read rsm:GovernmentDocument (schema-valid) into an :class:`EcmsLetter`."""
    letter_el = _Children(gov_doc).first(f"{_R}CorrespondenceLetter")
    k = _Children(letter_el)
    where = "GovernmentDocument/CorrespondenceLetter"
    refs = []
    for i, r in enumerate(k.all(f"{_R}ReferenceCorrespondence"), start=1):
        rk = _Children(r)
        refs.append(Reference(id=rk.text(f"{_R}ID").strip(),
                              date=parse_date(rk.text(f"{_R}CorrespondenceDate"),
                                              f"{where}/ReferenceCorrespondence[{i}]/CorrespondenceDate"),
                              subject=rk.text(f"{_R}Subject")))
    main_el = k.first(f"{_R}MainLetterBinaryObject")
    main = None
    if main_el is not None and "".join((main_el.text or "").split()):
        main = BinaryObject(normalise_mime(main_el.get("mimeCode")),
                            decode_base64(main_el.text, f"{where}/MainLetterBinaryObject"))
    attachments = []
    for i, a in enumerate(k.all(f"{_R}AttachmentBinaryObject"), start=1):
        if not "".join((a.text or "").split()):
            continue  # clients emit empty placeholders
        attachments.append(BinaryObject(normalise_mime(a.get("mimeCode")),
                                        decode_base64(a.text, f"{where}/AttachmentBinaryObject[{i}]")))
    sig = find_government_signature(gov_doc)
    sk = _Children(sig)
    signer_el = sk.first(f"{_R}SignerParty")
    ds_sig = sk.first("{http://www.w3.org/2000/09/xmldsig#}Signature")
    return EcmsLetter(
        id=k.text(f"{_R}ID").strip(),
        date=parse_date(k.text(f"{_R}CorrespondenceDate"), f"{where}/CorrespondenceDate"),
        subject=k.text(f"{_R}Subject").strip(),
        speed_code=speed_code(k.text(f"{_R}SpeedCode"), f"{where}/SpeedCode"),
        secret_code=secret_code(k.text(f"{_R}SecretCode"), f"{where}/SecretCode"),
        sender=_party(k.first(f"{_R}SenderParty")),
        receivers=tuple(_party(p) for p in k.all(f"{_R}ReceiverParty")),
        references=tuple(refs),
        attachment_text=k.text(f"{_R}Attachment"),
        send_date=k.text(f"{_R}SendDate").strip(),
        description=k.text(f"{_R}Description"),
        main_letter=main,
        attachments=tuple(attachments),
        signature_type=sk.text(f"{_R}TypeCode").strip() if sig is not None else "",
        signer=_signer(signer_el) if signer_el is not None else None,
        has_signature=ds_sig is not None,
        signature_xml=etree.tostring(ds_sig, with_tail=False) if ds_sig is not None else b"",
    )


def read_notifier(el: etree._Element) -> EcmsNotifier:
    """Read an unqualified notifier element (schema-valid)."""
    name = etree.QName(el).localname
    k = _Children(el)
    return EcmsNotifier(
        element=name,
        letter_id=k.text("LetterID").strip(),
        date=parse_date(k.text("CorrespondenceDate"), f"{name}/CorrespondenceDate"),
        subject=k.text("Subject"),
        accept_id=k.text("AcceptID").strip(),
        accept_date=k.text("AcceptDate").strip(),
        accept_department=k.text("AcceptDepartment", "Code").strip(),
        sender_department=k.text("SenderDepartment", "Code").strip(),
    )


# --------------------------------------------------------------------------- building XML


def _party_el(parent: etree._Element, tag: str, p: Party) -> None:
    el = child(parent, f"{_R}{tag}")
    child(el, f"{_R}GivenName", p.given_name)
    child(el, f"{_R}FamilyName", p.family_name)
    child(el, f"{_R}JobTitle", p.job_title)
    child(child(el, f"{_R}MinistryOrganization"), f"{_R}ID", p.department[:2])
    child(child(el, f"{_R}DepartmentOrganization"), f"{_R}ID", p.department)


def build_government_document(letter: EcmsLetter, *, signature: etree._Element | None = None) -> etree._Element:
    """rsm:GovernmentDocument in the element order clients read (ram:ID first: clients take
    the first ``ram:ID`` in the answer as the letter number).

    Built with :func:`gateway.ecms.soap.child` (every letter answer echoes one; see
    :mod:`gateway.ecms.soap` for why not the ElementMakers)."""
    doc = etree.Element(f"{{{RSM_NS}}}GovernmentDocument", nsmap={"rsm": RSM_NS, "ram": RAM_NS})
    el = child(doc, f"{_R}CorrespondenceLetter", attrib={"ID": "Letter"})
    child(el, f"{_R}ID", letter.id)
    child(el, f"{_R}CorrespondenceDate", letter.date.isoformat())
    child(el, f"{_R}Subject", letter.subject)
    child(el, f"{_R}SecretCode", letter.secret_code)
    child(el, f"{_R}SpeedCode", letter.speed_code)
    _party_el(el, "SenderParty", letter.sender)
    for r in letter.receivers:
        _party_el(el, "ReceiverParty", r)
    for r in letter.references:
        ref = child(el, f"{_R}ReferenceCorrespondence")
        child(ref, f"{_R}ID", r.id)
        child(ref, f"{_R}CorrespondenceDate", r.date.isoformat())
        child(ref, f"{_R}Subject", r.subject)
    child(el, f"{_R}Attachment", letter.attachment_text)
    child(el, f"{_R}SendDate", letter.send_date)
    child(el, f"{_R}Description", letter.description)
    main = letter.main_letter
    child(el, f"{_R}MainLetterBinaryObject", base64.b64encode(main.content).decode("ascii") if main else "",
          attrib={"mimeCode": main.mime_code if main else ""})
    for a in letter.attachments:
        child(el, f"{_R}AttachmentBinaryObject", base64.b64encode(a.content).decode("ascii"),
              attrib={"mimeCode": a.mime_code})
    s = letter.signer
    if s is not None or signature is not None or letter.signature_type:
        s = s or Signer()
        sig = child(doc, f"{_R}GovernmentSignature")
        child(sig, f"{_R}TypeCode", letter.signature_type)
        signer = child(sig, f"{_R}SignerParty")
        for tag, value in (("GivenName", s.given_name), ("FamilyName", s.family_name), ("Title", s.title),
                           ("MinistryCode", s.ministry), ("DepartmentCode", s.department)):
            child(signer, f"{_R}{tag}", value)
        if signature is not None:
            sig.append(signature)
    return doc


def build_notifier(n: EcmsNotifier) -> etree._Element:
    """A notifier as answered to clients: LetterID, [AcceptID], CorrespondenceDate, Subject,
    AcceptDate, AcceptDepartment/Code."""
    el = etree.Element(n.element)
    child(el, "LetterID", n.letter_id)
    if n.element in ("AcceptLetterNotifier", "InvalidAcceptIDNotifier"):
        child(el, "AcceptID", n.accept_id)
    child(el, "CorrespondenceDate", n.date.isoformat())
    child(el, "Subject", n.subject)
    child(el, "AcceptDate", n.accept_date)
    child(child(el, "AcceptDepartment"), "Code", n.accept_department)
    return el


# --------------------------------------------------------------------------- native mapping


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
    recipients = tuple(dict.fromkeys(r.department for r in letter.receivers))
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
        files.append(Attachment(id=f"att{i}", file_name=f"attachment-{i}.{MIME_TYPES.get(a.mime_code, 'bin')}",
                                mime_type=a.mime_code, content=a.content, role="enclosure"))
    header = Header(message_id=message_id, message_type=MessageType.LETTER, created_at=created_at,
                    sender=sender, recipients=recipients, conversation_id=message_id)
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
        references=tuple(Reference(id=r.number, date=r.date, subject=r.subject or "") for r in letter.references),
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
    """The e-CMS notifier for a native notifier envelope (AcceptDepartment = who sent it)."""
    n = env.notifier
    if n is None:
        raise ValueError("not a notifier envelope")
    at = n.registered_at or env.header.created_at
    return EcmsNotifier(
        element=NOTIFIER_ELEMENTS[n.kind], letter_id=n.letter_number, date=n.letter_date,
        subject=n.subject or "", accept_id=n.registry_number or "",
        accept_date=at.replace(microsecond=0).isoformat(), accept_department=env.header.sender)
