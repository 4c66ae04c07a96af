"""The native envelope (standard v1) as frozen records, read from and built to XML.

:func:`read_envelope` takes a tree that has already been parsed by
:func:`gateway.core.xml.parse` and validated against ``envelope-v1.xsd``; it never
re-parses bytes, so what it returns describes exactly the tree that was checked
(and, once signatures are verified, the tree whose signature was checked).

:func:`build_envelope` writes an envelope with lxml's element builder
(``SubElement``; :data:`E`, an ElementMaker, is kept for small documents such as
acknowledgements); it is used by the CLI, the e-CMS mapping, receipts and the
tests. Nothing here formats XML by hand.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import functools
import hashlib
from dataclasses import dataclass, field

from lxml import etree
from lxml.builder import ElementMaker

from gateway.core.errors import EnvelopeError
from gateway.core.xml import ENVELOPE_NS

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
class Party:
    """A person on a letter as the sending system names them (e-CMS SenderParty / ReceiverParty)."""

    agency: str
    given_name: str | None = None
    family_name: str | None = None
    job_title: str | None = None


@dataclass(frozen=True)
class LegacySignature:
    """An e-CMS author's signature as it arrived: evidence about the original SOAP letter
    (kept by the gateway), not a signature of the native envelope."""

    type_code: str | None = None
    signature: bytes | None = None
    """The ds:Signature element's bytes as received."""


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
    sender_party: Party | None = None
    receiver_parties: tuple[Party, ...] = ()
    sent_at: str | None = None
    """When the sending system says it sent the letter, as it wrote it (e-CMS SendDate)."""
    legacy_signature: LegacySignature | None = None


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
    """The decoded file; empty for an external attachment."""
    role: str = "enclosure"
    external: bool = False
    """True: the file travels as a MIME part (``ContentRef`` ``cid:<id>``), not inside the XML;
    ``size`` and ``sha256`` are then the declared values, which the author's signature covers."""
    declared_size: int | None = None
    declared_sha256: str | None = None

    @property
    def size(self) -> int:
        return self.declared_size if self.external else len(self.content)

    @property
    def sha256(self) -> str:
        return self.declared_sha256 if self.external else hashlib.sha256(self.content).hexdigest()

    @property
    def content_ref(self) -> str:
        return f"cid:{self.id}"

    @classmethod
    def external_part(cls, *, id: str, file_name: str, mime_type: str, size: int, sha256: str,
                      role: str = "enclosure") -> Attachment:
        """An attachment whose content is sent as the MIME part ``<id>`` of a multipart/related request."""
        return cls(id=id, file_name=file_name, mime_type=mime_type, content=b"", role=role, external=True,
                   declared_size=size, declared_sha256=sha256)


Body = Letter | Notifier | Receipt


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


@functools.cache
def _q(path: str) -> str:
    """``"A/B"`` -> Clark names (``{ns}A/{ns}B``)."""
    return "/".join(f"{{{ENVELOPE_NS}}}{part}" for part in path.split("/"))


class _Kids:
    """Direct children of an element by local name, indexed in one pass.

    lxml's ``find`` goes through ElementPath (~4 us a call); iterating children
    is ~0.3 us. Reading an envelope does dozens of look-ups per letter, so this
    is on the hot path.
    """

    __slots__ = ("el", "first")

    def __init__(self, el: etree._Element) -> None:
        self.el = el
        first: dict[str, etree._Element] = {}
        prefix = f"{{{ENVELOPE_NS}}}"
        for child in el:
            tag = child.tag
            if isinstance(tag, str) and tag.startswith(prefix):
                first.setdefault(tag[len(prefix):], child)
        self.first = first

    def get(self, name: str) -> etree._Element | None:
        return self.first.get(name)

    def all(self, name: str) -> list[etree._Element]:
        tag = _q(name)
        return [c for c in self.el if c.tag == tag]


def _text(kids: _Kids, name: str) -> str | None:
    child = kids.first.get(name)
    return None if child is None else (child.text or "")


def _req(kids: _Kids, name: str) -> str:
    value = _text(kids, name)
    if value is None:  # only reachable for trees that skipped validation
        raise EnvelopeError(f"{name} is required", code="envelope.schema_invalid", field=name)
    return value


def _sub(kids: _Kids, name: str) -> _Kids:
    child = kids.get(name)
    if child is None:
        raise EnvelopeError(f"{name} is required", code="envelope.schema_invalid", field=name)
    return _Kids(child)


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
    h = _sub(_Kids(root), "Header")
    recipients: list[str] = []
    rec = h.get("Recipients")
    for r in ([] if rec is None else _Kids(rec).all("Recipient")):
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
    k = _Kids(el)
    refs_el, encl_el = k.get("References"), k.get("Enclosures")
    refs = []
    for r in ([] if refs_el is None else _Kids(refs_el).all("Reference")):
        rk = _Kids(r)
        refs.append(LetterReference(number=_req(rk, "Number"),
                                    date=_date(_req(rk, "Date"), "Letter/References/Reference/Date"),
                                    subject=_text(rk, "Subject")))
    signer = _sub(k, "Signer")
    sender_party, receiver_parties = None, ()
    if (parties := k.get("Parties")) is not None:
        pk = _Kids(parties)
        sender_party = _read_party(pk.get("SenderParty"))
        receiver_parties = tuple(_read_party(p) for p in pk.all("ReceiverParty"))
    legacy = None
    if (ls := k.get("LegacySignature")) is not None:
        lk = _Kids(ls)
        sig = _text(lk, "Signature")
        legacy = LegacySignature(type_code=_text(lk, "TypeCode"),
                                 signature=base64.b64decode(sig) if sig else None)
    return Letter(
        number=_req(k, "Number"),
        date=_date(_req(k, "Date"), "Letter/Date"),
        subject=_req(k, "Subject"),
        addressee=_req(k, "Addressee"),
        speed=Speed(_req(k, "Speed")),
        secrecy=Secrecy(_req(k, "Secrecy")),
        signer_name=_req(signer, "Name"),
        signer_position=_req(signer, "Position"),
        references=tuple(refs),
        enclosures=tuple(e.text or "" for e in ([] if encl_el is None else _Kids(encl_el).all("Enclosure"))),
        body=_text(k, "Body"),
        id=el.get("Id", "Letter"),
        sender_party=sender_party,
        receiver_parties=receiver_parties,
        sent_at=_text(k, "SentAt"),
        legacy_signature=legacy,
    )


def _read_party(el: etree._Element | None) -> Party | None:
    if el is None:
        return None
    k = _Kids(el)
    return Party(agency=el.get("agency", ""), given_name=_text(k, "GivenName"), family_name=_text(k, "FamilyName"),
                 job_title=_text(k, "JobTitle"))


def read_notifier(el: etree._Element) -> Notifier:
    k = _Kids(el)
    registered = _text(k, "RegisteredAt")
    return Notifier(
        kind=NotifierKind(_req(k, "Kind")),
        letter_number=_req(k, "LetterNumber"),
        letter_date=_date(_req(k, "LetterDate"), "Notifier/LetterDate"),
        subject=_text(k, "Subject"),
        registry_number=_text(k, "RegistryNumber"),
        registered_at=_datetime(registered, "Notifier/RegisteredAt") if registered else None,
        reason=_text(k, "Reason"),
        id=el.get("Id", "Notifier"),
    )


def read_receipt(el: etree._Element) -> Receipt:
    k = _Kids(el)
    return Receipt(
        kind=_req(k, "Kind"),
        message_id=_req(k, "MessageId"),
        sender=_req(k, "Sender"),
        sha256=_req(k, "Sha256"),
        at=_datetime(_req(k, "At"), "Receipt/At"),
        recipient=_text(k, "Recipient"),
        delivery_id=_text(k, "DeliveryId"),
        id=el.get("Id", "Receipt"),
    )


def read_attachments(root: etree._Element) -> tuple[Attachment, ...]:
    """Decode every attachment and check its declared size and SHA-256.

    Codes: ``attachment.base64_invalid``, ``attachment.size_mismatch``,
    ``attachment.digest_mismatch``; ``field`` names the attachment by position.
    """
    out = []
    container = _Kids(root).get("Attachments")
    for i, a in enumerate([] if container is None else _Kids(container).all("Attachment"), start=1):
        where = f"Attachments/Attachment[{i}]"
        k = _Kids(a)
        ref = _text(k, "ContentRef")
        if ref is not None:
            if ref != f"cid:{a.get('Id', '')}":
                raise EnvelopeError(f"ContentRef must be cid: followed by the Attachment's Id, not {ref!r}",
                                    code="attachment.content_ref_invalid", field=f"{where}/ContentRef",
                                    status=422)
            out.append(Attachment.external_part(
                id=a.get("Id", ""), file_name=_req(k, "FileName"), mime_type=_req(k, "MimeType"),
                size=int(_req(k, "Size")), sha256=_req(k, "Sha256"), role=a.get("role", "enclosure")))
            continue
        try:
            # Strict: only XML white space may sit between base64 characters (libxml2's
            # base64Binary check lets any other character through, and a lenient decoder would
            # drop it, so two readers of the same bytes could see different files).
            text = _req(k, "Content").encode("ascii")
            try:
                content = base64.b64decode(text, validate=True)
            except binascii.Error:  # line-wrapped base64 (MIME style) is fine
                content = base64.b64decode(text.translate(None, b" \t\r\n"), validate=True)
        except (binascii.Error, ValueError):
            raise EnvelopeError("content is not valid base64", code="attachment.base64_invalid",
                                field=f"{where}/Content", status=422) from None
        try:
            declared_size = int(_req(k, "Size"))
        except ValueError:  # xs:nonNegativeInteger has no length limit; int() refuses > 4300 digits
            declared_size = -1
        if declared_size != len(content):
            raise EnvelopeError(f"declared size {_req(k, 'Size')[:40]} but content has {len(content)} bytes",
                                code="attachment.size_mismatch", field=f"{where}/Size", status=422)
        digest = hashlib.sha256(content).hexdigest()
        if digest != _req(k, "Sha256"):
            raise EnvelopeError("SHA-256 of the content does not match the declared digest",
                                code="attachment.digest_mismatch", field=f"{where}/Sha256", status=422)
        out.append(Attachment(id=a.get("Id", ""), file_name=_req(k, "FileName"), mime_type=_req(k, "MimeType"),
                              content=content, role=a.get("role", "enclosure")))
    return tuple(out)


def read_envelope(root: etree._Element) -> Envelope:
    """Read a parsed, schema-valid envelope tree into records (attachments checked)."""
    header = read_header(root)
    k = _Kids(root)
    body: Body
    if (el := k.get("Letter")) is not None:
        body = read_letter(el)
    elif (el := k.get("Notifier")) is not None:
        body = read_notifier(el)
    elif (el := k.get("Receipt")) is not None:
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


_N = f"{{{ENVELOPE_NS}}}"


def _add(parent: etree._Element, name: str, text: str | None = None, **attrib: str) -> etree._Element:
    """Append ``<name>`` (envelope namespace) to ``parent``; ``text`` "" writes ``<name></name>``."""
    el = etree.SubElement(parent, _N + name, attrib or None)
    if text is not None:
        el.text = text
    return el


def _add_opt(parent: etree._Element, name: str, value: str | None) -> None:
    if value is not None:
        _add(parent, name, value)


def _start(parent: etree._Element | None, name: str, **attrib: str) -> etree._Element:
    """``<name>`` under ``parent``, or as the root of a new tree."""
    if parent is None:
        return etree.Element(_N + name, attrib or None, nsmap={None: ENVELOPE_NS})
    return _add(parent, name, **attrib)


def build_header(h: Header, parent: etree._Element | None = None) -> etree._Element:
    el = _start(parent, "Header")
    _add(el, "MessageId", h.message_id)
    _add_opt(el, "ConversationId", h.conversation_id)
    _add_opt(el, "RefToMessageId", h.ref_to_message_id)
    _add(el, "MessageType", h.message_type.value)
    _add(el, "CreatedAt", _iso(h.created_at))
    _add(el, "Sender", h.sender)
    recipients = _add(el, "Recipients")
    for r in h.recipients:
        _add(recipients, "Recipient", r)
    return el


def build_body(body: Body, parent: etree._Element | None = None) -> etree._Element:
    if isinstance(body, Letter):
        el = _start(parent, "Letter", Id=body.id)
        _add(el, "Number", body.number)
        _add(el, "Date", body.date.isoformat())
        _add(el, "Subject", body.subject)
        _add(el, "Addressee", body.addressee)
        if body.references:
            refs = _add(el, "References")
            for r in body.references:
                ref = _add(refs, "Reference")
                _add(ref, "Number", r.number)
                _add(ref, "Date", r.date.isoformat())
                _add_opt(ref, "Subject", r.subject)
        if body.enclosures:
            encl = _add(el, "Enclosures")
            for t in body.enclosures:
                _add(encl, "Enclosure", t)
        _add(el, "Speed", body.speed.value)
        _add(el, "Secrecy", body.secrecy.value)
        _add_opt(el, "Body", body.body)
        signer = _add(el, "Signer")
        _add(signer, "Name", body.signer_name)
        _add(signer, "Position", body.signer_position)
        if body.sender_party is not None or body.receiver_parties:
            parties = _add(el, "Parties")
            if body.sender_party is not None:
                _build_party(parties, "SenderParty", body.sender_party)
            for p in body.receiver_parties:
                _build_party(parties, "ReceiverParty", p)
        _add_opt(el, "SentAt", body.sent_at)
        if body.legacy_signature is not None:
            ls = body.legacy_signature
            legacy = _add(el, "LegacySignature")
            _add_opt(legacy, "TypeCode", ls.type_code)
            _add_opt(legacy, "Signature", base64.b64encode(ls.signature).decode("ascii") if ls.signature else None)
        return el
    if isinstance(body, Notifier):
        el = _start(parent, "Notifier", Id=body.id)
        _add(el, "Kind", body.kind.value)
        _add(el, "LetterNumber", body.letter_number)
        _add(el, "LetterDate", body.letter_date.isoformat())
        _add_opt(el, "Subject", body.subject)
        _add_opt(el, "RegistryNumber", body.registry_number)
        _add_opt(el, "RegisteredAt", _iso(body.registered_at) if body.registered_at else None)
        _add_opt(el, "Reason", body.reason)
        return el
    el = _start(parent, "Receipt", Id=body.id)
    _add(el, "Kind", body.kind)
    _add(el, "MessageId", body.message_id)
    _add(el, "Sender", body.sender)
    _add_opt(el, "Recipient", body.recipient)
    _add_opt(el, "DeliveryId", body.delivery_id)
    _add(el, "Sha256", body.sha256)
    _add(el, "At", _iso(body.at))
    return el


def _build_party(parent: etree._Element, tag: str, p: Party) -> None:
    el = _add(parent, tag, agency=p.agency)
    _add_opt(el, "GivenName", p.given_name)
    _add_opt(el, "FamilyName", p.family_name)
    _add_opt(el, "JobTitle", p.job_title)


def build_attachment(a: Attachment, parent: etree._Element | None = None) -> etree._Element:
    el = _start(parent, "Attachment", Id=a.id, role=a.role)
    _add(el, "FileName", a.file_name)
    _add(el, "MimeType", a.mime_type)
    _add(el, "Size", str(a.size))
    _add(el, "Sha256", a.sha256)
    if a.external:
        _add(el, "ContentRef", a.content_ref)
    else:
        _add(el, "Content", base64.b64encode(a.content).decode("ascii"))
    return el


def build_envelope_tree(env: Envelope) -> etree._Element:
    """The envelope as an element tree, each element made in place (``SubElement``): an
    ElementMaker call makes a document per element and moves it on append, and building
    was the largest part of the e-CMS letter path and of every receipt."""
    root = _start(None, "Envelope", version="1")
    build_header(env.header, root)
    build_body(env.body, root)
    if env.attachments:
        container = _add(root, "Attachments")
        for a in env.attachments:
            build_attachment(a, container)
    return root


def build_envelope(env: Envelope) -> bytes:
    """Serialise an envelope (unsigned) as UTF-8 XML bytes."""
    return etree.tostring(build_envelope_tree(env), xml_declaration=True, encoding="UTF-8")
