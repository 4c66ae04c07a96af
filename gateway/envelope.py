"""The native envelope (standard v1) as frozen records, read from and built to XML.

:func:`read_envelope` takes a tree that has already been parsed by
:func:`gateway.xml.parse` and validated against ``envelope-v1.xsd``; it never
re-parses bytes, so what it returns describes exactly the tree that was checked
(and, once signatures are verified, the tree whose signature was checked).

:func:`build_envelope` writes an envelope with lxml's element builder; it is used
by the CLI, the e-CMS mapping and the tests. Nothing here formats XML by hand.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import hashlib
from dataclasses import dataclass, field
from typing import Union

from lxml import etree
from lxml.builder import ElementMaker

from gateway.errors import EnvelopeError
from gateway.xml import ENVELOPE_NS

_NS = {"env": ENVELOPE_NS}
E = ElementMaker(namespace=ENVELOPE_NS, nsmap={None: ENVELOPE_NS})


class MessageType(str, enum.Enum):
    LETTER = "letter"
    NOTIFIER = "notifier"
    RECEIPT = "receipt"


class Speed(str, enum.Enum):
    """ชั้นความเร็ว."""

    NORMAL = "normal"
    URGENT = "urgent"  # ด่วน
    VERY_URGENT = "very-urgent"  # ด่วนมาก
    MOST_URGENT = "most-urgent"  # ด่วนที่สุด


class Secrecy(str, enum.Enum):
    """ชั้นความลับ."""

    NORMAL = "normal"
    CONFIDENTIAL = "confidential"  # ลับ
    SECRET = "secret"  # ลับมาก
    TOP_SECRET = "top-secret"  # ลับที่สุด: never carried by the gateway


class NotifierKind(str, enum.Enum):
    RECEIVED = "received"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    INVALID = "invalid"
    INVALID_REGISTRY_NUMBER = "invalid-registry-number"


SPEED_TH = {Speed.NORMAL: "ปกติ", Speed.URGENT: "ด่วน", Speed.VERY_URGENT: "ด่วนมาก",
            Speed.MOST_URGENT: "ด่วนที่สุด"}
SECRECY_TH = {Secrecy.NORMAL: "ปกติ", Secrecy.CONFIDENTIAL: "ลับ", Secrecy.SECRET: "ลับมาก",
              Secrecy.TOP_SECRET: "ลับที่สุด"}


@dataclass(frozen=True)
class Header:
    message_id: str
    """Sender-chosen id, unique per sender: the deduplication key."""
    message_type: MessageType
    created_at: dt.datetime
    """When the sender created the envelope (always zone-aware)."""
    sender: str
    """Sending agency code."""
    recipients: tuple[str, ...]
    """Recipient agency codes, in the order given, without repeats."""
    conversation_id: str | None = None
    ref_to_message_id: str | None = None


@dataclass(frozen=True)
class LetterReference:
    """อ้างถึง: an earlier letter this one refers to."""

    number: str
    date: dt.date
    subject: str | None = None


@dataclass(frozen=True)
class Letter:
    """หนังสือราชการ: the fields the correspondence regulation gives a letter."""

    number: str
    """ที่."""
    date: dt.date
    subject: str
    """เรื่อง."""
    addressee: str
    """เรียน."""
    speed: Speed
    secrecy: Secrecy
    signer_name: str
    signer_position: str
    references: tuple[LetterReference, ...] = ()
    enclosures: tuple[str, ...] = ()
    """สิ่งที่ส่งมาด้วย."""
    body: str | None = None
    id: str = "Letter"


@dataclass(frozen=True)
class Notifier:
    """A business answer about a letter (received, accepted with registry number, ...)."""

    kind: NotifierKind
    letter_number: str
    letter_date: dt.date
    subject: str | None = None
    registry_number: str | None = None
    """เลขทะเบียนรับ, with kind ``accepted``."""
    registered_at: dt.datetime | None = None
    reason: str | None = None
    id: str = "Notifier"


@dataclass(frozen=True)
class Receipt:
    """A receipt the gateway issues: ``submission`` or ``delivery``."""

    kind: str
    message_id: str
    sender: str
    sha256: str
    at: dt.datetime
    recipient: str | None = None
    delivery_id: str | None = None
    id: str = "Receipt"


@dataclass(frozen=True)
class Attachment:
    id: str
    file_name: str
    mime_type: str
    content: bytes
    role: str = "enclosure"

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


Body = Union[Letter, Notifier, Receipt]


@dataclass(frozen=True)
class Envelope:
    header: Header
    body: Body
    attachments: tuple[Attachment, ...] = field(default=())

    @property
    def letter(self) -> Letter | None:
        return self.body if isinstance(self.body, Letter) else None

    @property
    def notifier(self) -> Notifier | None:
        return self.body if isinstance(self.body, Notifier) else None


# --------------------------------------------------------------------------- reading


def _text(el: etree._Element, name: str) -> str | None:
    child = el.find(f"env:{name}", _NS)
    return None if child is None else (child.text or "")


def _req(el: etree._Element, name: str) -> str:
    value = _text(el, name)
    if value is None:  # only reachable for trees that skipped validation
        raise EnvelopeError(f"{name} is required", code="envelope.schema_invalid", field=name)
    return value


def _datetime(value: str, field_name: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise EnvelopeError(f"not a date-time: {value!r}", code="envelope.schema_invalid",
                            field=field_name) from None
    if parsed.tzinfo is None:
        raise EnvelopeError("date-time needs a zone", code="envelope.schema_invalid", field=field_name)
    return parsed


def _date(value: str, field_name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise EnvelopeError(f"not a date: {value!r}", code="envelope.schema_invalid",
                            field=field_name) from None


def read_header(root: etree._Element) -> Header:
    h = root.find("env:Header", _NS)
    if h is None:
        raise EnvelopeError("Header is required", code="envelope.schema_invalid", field="Header")
    recipients: list[str] = []
    for r in h.iterfind("env:Recipients/env:Recipient", _NS):
        code = (r.text or "").strip()
        if code not in recipients:
            recipients.append(code)
    return Header(
        message_id=_req(h, "MessageId"),
        message_type=MessageType(_req(h, "MessageType")),
        created_at=_datetime(_req(h, "CreatedAt"), "Header/CreatedAt"),
        sender=_req(h, "Sender").strip(),
        recipients=tuple(recipients),
        conversation_id=_text(h, "ConversationId"),
        ref_to_message_id=_text(h, "RefToMessageId"),
    )


def read_letter(el: etree._Element) -> Letter:
    refs = tuple(
        LetterReference(number=_req(r, "Number"), date=_date(_req(r, "Date"), "Letter/References/Reference/Date"),
                        subject=_text(r, "Subject"))
        for r in el.iterfind("env:References/env:Reference", _NS)
    )
    return Letter(
        number=_req(el, "Number"),
        date=_date(_req(el, "Date"), "Letter/Date"),
        subject=_req(el, "Subject"),
        addressee=_req(el, "Addressee"),
        speed=Speed(_req(el, "Speed")),
        secrecy=Secrecy(_req(el, "Secrecy")),
        signer_name=_req(el.find("env:Signer", _NS), "Name"),
        signer_position=_req(el.find("env:Signer", _NS), "Position"),
        references=refs,
        enclosures=tuple(e.text or "" for e in el.iterfind("env:Enclosures/env:Enclosure", _NS)),
        body=_text(el, "Body"),
        id=el.get("Id", "Letter"),
    )


def read_notifier(el: etree._Element) -> Notifier:
    registered = _text(el, "RegisteredAt")
    return Notifier(
        kind=NotifierKind(_req(el, "Kind")),
        letter_number=_req(el, "LetterNumber"),
        letter_date=_date(_req(el, "LetterDate"), "Notifier/LetterDate"),
        subject=_text(el, "Subject"),
        registry_number=_text(el, "RegistryNumber"),
        registered_at=_datetime(registered, "Notifier/RegisteredAt") if registered else None,
        reason=_text(el, "Reason"),
        id=el.get("Id", "Notifier"),
    )


def read_receipt(el: etree._Element) -> Receipt:
    return Receipt(
        kind=_req(el, "Kind"),
        message_id=_req(el, "MessageId"),
        sender=_req(el, "Sender"),
        sha256=_req(el, "Sha256"),
        at=_datetime(_req(el, "At"), "Receipt/At"),
        recipient=_text(el, "Recipient"),
        delivery_id=_text(el, "DeliveryId"),
        id=el.get("Id", "Receipt"),
    )


def read_attachments(root: etree._Element) -> tuple[Attachment, ...]:
    """Decode every attachment and check its declared size and SHA-256.

    Codes: ``attachment.base64_invalid``, ``attachment.size_mismatch``,
    ``attachment.digest_mismatch``; ``field`` names the attachment by position.
    """
    out = []
    for i, a in enumerate(root.iterfind("env:Attachments/env:Attachment", _NS), start=1):
        where = f"Attachments/Attachment[{i}]"
        try:
            content = base64.b64decode(_req(a, "Content"), validate=False)
        except (binascii.Error, ValueError):
            raise EnvelopeError("content is not valid base64", code="attachment.base64_invalid",
                                field=f"{where}/Content", status=422) from None
        declared_size = int(_req(a, "Size"))
        if declared_size != len(content):
            raise EnvelopeError(f"declared size {declared_size} but content has {len(content)} bytes",
                                code="attachment.size_mismatch", field=f"{where}/Size", status=422)
        digest = hashlib.sha256(content).hexdigest()
        if digest != _req(a, "Sha256"):
            raise EnvelopeError("SHA-256 of the content does not match the declared digest",
                                code="attachment.digest_mismatch", field=f"{where}/Sha256", status=422)
        out.append(Attachment(id=a.get("Id", ""), file_name=_req(a, "FileName"), mime_type=_req(a, "MimeType"),
                              content=content, role=a.get("role", "enclosure")))
    return tuple(out)


def read_envelope(root: etree._Element) -> Envelope:
    """Read a parsed, schema-valid envelope tree into records (attachments checked)."""
    header = read_header(root)
    el = root.find("env:Letter", _NS)
    body: Body
    if el is not None:
        body = read_letter(el)
    elif (el := root.find("env:Notifier", _NS)) is not None:
        body = read_notifier(el)
    elif (el := root.find("env:Receipt", _NS)) is not None:
        body = read_receipt(el)
    else:
        raise EnvelopeError("a Letter, Notifier or Receipt is required", code="envelope.schema_invalid",
                            field="Letter")
    return Envelope(header=header, body=body, attachments=read_attachments(root))


# --------------------------------------------------------------------------- building


def _iso(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("date-times in envelopes must be zone-aware")
    return value.isoformat()


def _opt(name: str, value: str | None) -> list[etree._Element]:
    return [] if value is None else [getattr(E, name)(value)]


def build_header(h: Header) -> etree._Element:
    return E.Header(
        E.MessageId(h.message_id),
        *_opt("ConversationId", h.conversation_id),
        *_opt("RefToMessageId", h.ref_to_message_id),
        E.MessageType(h.message_type.value),
        E.CreatedAt(_iso(h.created_at)),
        E.Sender(h.sender),
        E.Recipients(*[E.Recipient(r) for r in h.recipients]),
    )


def build_body(body: Body) -> etree._Element:
    if isinstance(body, Letter):
        parts: list = [E.Number(body.number), E.Date(body.date.isoformat()), E.Subject(body.subject),
                       E.Addressee(body.addressee)]
        if body.references:
            parts.append(E.References(*[
                E.Reference(E.Number(r.number), E.Date(r.date.isoformat()), *_opt("Subject", r.subject))
                for r in body.references]))
        if body.enclosures:
            parts.append(E.Enclosures(*[E.Enclosure(t) for t in body.enclosures]))
        parts += [E.Speed(body.speed.value), E.Secrecy(body.secrecy.value), *_opt("Body", body.body),
                  E.Signer(E.Name(body.signer_name), E.Position(body.signer_position))]
        return E.Letter(*parts, Id=body.id)
    if isinstance(body, Notifier):
        return E.Notifier(
            E.Kind(body.kind.value), E.LetterNumber(body.letter_number), E.LetterDate(body.letter_date.isoformat()),
            *_opt("Subject", body.subject), *_opt("RegistryNumber", body.registry_number),
            *_opt("RegisteredAt", _iso(body.registered_at) if body.registered_at else None),
            *_opt("Reason", body.reason), Id=body.id)
    return E.Receipt(
        E.Kind(body.kind), E.MessageId(body.message_id), E.Sender(body.sender),
        *_opt("Recipient", body.recipient), *_opt("DeliveryId", body.delivery_id),
        E.Sha256(body.sha256), E.At(_iso(body.at)), Id=body.id)


def build_attachment(a: Attachment) -> etree._Element:
    return E.Attachment(
        E.FileName(a.file_name), E.MimeType(a.mime_type), E.Size(str(a.size)), E.Sha256(a.sha256),
        E.Content(base64.b64encode(a.content).decode("ascii")), Id=a.id, role=a.role)


def build_envelope_tree(env: Envelope) -> etree._Element:
    children = [build_header(env.header), build_body(env.body)]
    if env.attachments:
        children.append(E.Attachments(*[build_attachment(a) for a in env.attachments]))
    return E.Envelope(*children, version="1")


def build_envelope(env: Envelope) -> bytes:
    """Serialise an envelope (unsigned) as UTF-8 XML bytes."""
    return etree.tostring(build_envelope_tree(env), xml_declaration=True, encoding="UTF-8")
