"""Reading the native envelope: a parsed, schema-valid tree -> :mod:`gateway.core.envelope` records.

:func:`read_envelope` takes a tree that has already been parsed by
:func:`gateway.core.xml.parse` and validated against ``envelope-v1.xsd``; it never
re-parses bytes, so what it returns describes exactly the tree that was checked
(and, once signatures are verified, the tree whose signature was checked).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping

from lxml import etree

from gateway.core.envelope import (
    Attachment,
    Body,
    Envelope,
    Header,
    LegacySignature,
    Letter,
    LetterReference,
    MessageType,
    Notifier,
    NotifierKind,
    Party,
    Receipt,
    Secrecy,
    Speed,
)
from gateway.core.errors import EnvelopeError
from gateway.core.xml import ENVELOPE_NS
from pki.digests import check_content

_NS = f"{{{ENVELOPE_NS}}}"


class _Kids:
    """Direct children of an element by name, indexed in one pass: the first child of each name.

    lxml's ``find`` goes through ElementPath (~4 us a call); one pass over the children, in C
    (``iterchildren``), costs about a microsecond a child, most of it lxml making the element
    and its Clark name. The index is keyed by Clark name, so a child in another namespace (or a
    comment or processing instruction, whose ``tag`` is a function) is a key no look-up asks for.
    Reading an envelope does dozens of look-ups per letter, so this is on the hot path.
    """

    __slots__ = ("el", "first")

    def __init__(self, el: etree._Element) -> None:
        self.el = el
        # last to first: the first child of a name is the one that stays
        self.first: dict[object, etree._Element] = {child.tag: child for child in el.iterchildren(reversed=True)}

    def get(self, name: str) -> etree._Element | None:
        return self.first.get(_NS + name)

    def all(self, name: str) -> list[etree._Element]:
        return list(self.el.iterchildren(_NS + name))


def _text(kids: _Kids, name: str) -> str | None:
    child = kids.first.get(_NS + name)
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
    return _read_header(_Kids(root))


_RECIPIENT, _RECIPIENT_LIST = _NS + "Recipient", _NS + "RecipientList"


def _read_header(top: _Kids) -> Header:
    h = _sub(top, "Header")
    recipients: list[str] = []
    lists: list[str] = []
    rec = h.get("Recipients")
    if rec is not None:  # one pass over both kinds (each list keeps its own order)
        for r in rec.iterchildren(_RECIPIENT, _RECIPIENT_LIST):
            value, into = (r.text or "").strip(), recipients if r.tag == _RECIPIENT else lists
            if value not in into:
                into.append(value)
    return Header(
        message_id=_req(h, "MessageId"),
        message_type=MessageType(_req(h, "MessageType")),
        created_at=_datetime(_req(h, "CreatedAt"), "Header/CreatedAt"),
        sender=_req(h, "Sender").strip(),
        recipients=tuple(recipients),
        conversation_id=_text(h, "ConversationId"),
        ref_to_message_id=_text(h, "RefToMessageId"),
        recipient_lists=tuple(lists),
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
    sender_party: Party | None = None
    receiver_parties: tuple[Party, ...] = ()
    if (parties := k.get("Parties")) is not None:
        pk = _Kids(parties)
        if (sp := pk.get("SenderParty")) is not None:
            sender_party = _read_party(sp)
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


def _read_party(el: etree._Element) -> Party:
    k = _Kids(el)
    return Party(agency=el.get("agency", ""), given_name=_text(k, "GivenName"),
                 family_name=_text(k, "FamilyName"), job_title=_text(k, "JobTitle"))


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


def read_attachments(root: etree._Element, decoded: Mapping[str, bytes] | None = None) -> tuple[Attachment, ...]:
    """Decode every attachment and check its declared size and SHA-256.

    Codes: ``attachment.base64_invalid``, and (pki.digests, Size or Sha256)
    ``attachment.digest_mismatch``; ``field`` names the attachment by position.
    ``decoded``: contents by Id that were already decoded from this very tree's Content texts the
    first way below and checked against their Size and Sha256 (the verifier's, handed over by intake).
    """
    return _read_attachments(_Kids(root), decoded)


_ATTACHMENT = _NS + "Attachment"


def _read_attachments(top: _Kids, decoded: Mapping[str, bytes] | None = None) -> tuple[Attachment, ...]:
    out = []
    container = top.get("Attachments")
    for i, a in enumerate([] if container is None else container.iterchildren(_ATTACHMENT), start=1):
        where = f"Attachments/Attachment[{i}]"
        k = _Kids(a)
        ref = _text(k, "ContentRef")
        if ref is not None:
            if ref != f"cid:{a.get('Id', '')}":
                raise EnvelopeError(f"ContentRef must be cid: followed by the Attachment's Id, not {ref!r}",
                                    code="attachment.content_ref_invalid", field=f"{where}/ContentRef")
            out.append(Attachment.external_part(
                id=a.get("Id", ""), file_name=_req(k, "FileName"), mime_type=_req(k, "MimeType"),
                size=int(_req(k, "Size")), sha256=_req(k, "Sha256"), role=a.get("role", "enclosure")))
            continue
        known = decoded.get(a.get("Id", "")) if decoded else None
        if known is not None:
            out.append(Attachment(id=a.get("Id", ""), file_name=_req(k, "FileName"),
                                  mime_type=_req(k, "MimeType"), content=known, role=a.get("role", "enclosure")))
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
                                field=f"{where}/Content") from None
        check_content(where, content, declared_size=_req(k, "Size"), declared_sha256=_req(k, "Sha256"))
        out.append(Attachment(id=a.get("Id", ""), file_name=_req(k, "FileName"),
                              mime_type=_req(k, "MimeType"), content=content,
                              role=a.get("role", "enclosure")))
    return tuple(out)


def read_envelope(root: etree._Element, *, attachments: bool = True) -> Envelope:
    """Read a parsed, schema-valid envelope tree into records (attachments checked; with
    ``attachments=False`` neither read nor checked, for the checks that come before the signature's)."""
    k = _Kids(root)  # the root's children, indexed once for the header, the body and the attachments
    header = _read_header(k)
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
    return Envelope(header=header, body=body, attachments=_read_attachments(k) if attachments else ())
