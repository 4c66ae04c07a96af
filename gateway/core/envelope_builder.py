"""Writing the native envelope: :mod:`gateway.core.envelope` records -> XML.

:func:`build_envelope` writes an envelope with lxml's element builder (``SubElement``; an envelope
of a shape already built is a copy of that shape's emptied skeleton with its values put in,
:mod:`gateway.core.xmlshapes`; :data:`E`, an ElementMaker, is kept for small documents such as
acknowledgements); it is used by the CLI, the e-CMS mapping, receipts and the tests. Nothing here
formats XML by hand."""

from __future__ import annotations

import base64
import datetime as dt

from lxml import etree
from lxml.builder import ElementMaker

from gateway.core.envelope import Attachment, Body, Envelope, Header, Letter, Notifier, Party
from gateway.core.xml import ENVELOPE_NS
from gateway.core.xmlshapes import Item, Shapes, append_items, fill

E = ElementMaker(namespace=ENVELOPE_NS, nsmap={None: ENVELOPE_NS})


def _iso(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("date-times in envelopes must be zone-aware")
    return value.isoformat()


_N = f"{{{ENVELOPE_NS}}}"


#: Skeletons of the envelope shapes built so far (:mod:`gateway.core.xmlshapes`).
_shapes = Shapes()


def _opt(out: list[Item], depth: int, name: str, value: str | None) -> None:
    if value is not None:
        out.append((depth, _N + name, value, ()))


def _header_items(out: list[Item], h: Header) -> None:
    out.append((0, _N + "Header", None, ()))
    out.append((1, _N + "MessageId", h.message_id, ()))
    _opt(out, 1, "ConversationId", h.conversation_id)
    _opt(out, 1, "RefToMessageId", h.ref_to_message_id)
    out += ((1, _N + "MessageType", h.message_type.value, ()), (1, _N + "CreatedAt", _iso(h.created_at), ()),
            (1, _N + "Sender", h.sender, ()), (1, _N + "Recipients", None, ()))
    out += ((2, _N + "Recipient", r, ()) for r in h.recipients)
    out += ((2, _N + "RecipientList", name, ()) for name in h.recipient_lists)


def _party_items(out: list[Item], tag: str, p: Party) -> None:
    out.append((2, _N + tag, None, (("agency", p.agency),)))
    _opt(out, 3, "GivenName", p.given_name)
    _opt(out, 3, "FamilyName", p.family_name)
    _opt(out, 3, "JobTitle", p.job_title)


def _body_items(out: list[Item], body: Body) -> None:
    if isinstance(body, Letter):
        out += ((0, _N + "Letter", None, (("Id", body.id),)), (1, _N + "Number", body.number, ()),
                (1, _N + "Date", body.date.isoformat(), ()), (1, _N + "Subject", body.subject, ()),
                (1, _N + "Addressee", body.addressee, ()))
        if body.references:
            out.append((1, _N + "References", None, ()))
            for r in body.references:
                out += ((2, _N + "Reference", None, ()), (3, _N + "Number", r.number, ()),
                        (3, _N + "Date", r.date.isoformat(), ()))
                _opt(out, 3, "Subject", r.subject)
        if body.enclosures:
            out.append((1, _N + "Enclosures", None, ()))
            out += ((2, _N + "Enclosure", t, ()) for t in body.enclosures)
        out += ((1, _N + "Speed", body.speed.value, ()), (1, _N + "Secrecy", body.secrecy.value, ()))
        _opt(out, 1, "Body", body.body)
        out += ((1, _N + "Signer", None, ()), (2, _N + "Name", body.signer_name, ()),
                (2, _N + "Position", body.signer_position, ()))
        if body.sender_party is not None or body.receiver_parties:
            out.append((1, _N + "Parties", None, ()))
            if body.sender_party is not None:
                _party_items(out, "SenderParty", body.sender_party)
            for p in body.receiver_parties:
                _party_items(out, "ReceiverParty", p)
        _opt(out, 1, "SentAt", body.sent_at)
        if body.legacy_signature is not None:
            ls = body.legacy_signature
            out.append((1, _N + "LegacySignature", None, ()))
            _opt(out, 2, "TypeCode", ls.type_code)
            _opt(out, 2, "Signature", base64.b64encode(ls.signature).decode("ascii") if ls.signature else None)
        return
    if isinstance(body, Notifier):
        out += ((0, _N + "Notifier", None, (("Id", body.id),)), (1, _N + "Kind", body.kind.value, ()),
                (1, _N + "LetterNumber", body.letter_number, ()),
                (1, _N + "LetterDate", body.letter_date.isoformat(), ()))
        _opt(out, 1, "Subject", body.subject)
        _opt(out, 1, "RegistryNumber", body.registry_number)
        _opt(out, 1, "RegisteredAt", _iso(body.registered_at) if body.registered_at else None)
        _opt(out, 1, "Reason", body.reason)
        return
    out += ((0, _N + "Receipt", None, (("Id", body.id),)), (1, _N + "Kind", body.kind, ()),
            (1, _N + "MessageId", body.message_id, ()), (1, _N + "Sender", body.sender, ()))
    _opt(out, 1, "Recipient", body.recipient)
    _opt(out, 1, "DeliveryId", body.delivery_id)
    out += ((1, _N + "Sha256", body.sha256, ()), (1, _N + "At", _iso(body.at), ()))


def _attachment_items(out: list[Item], a: Attachment) -> None:
    out += ((1, _N + "Attachment", None, (("Id", a.id), ("role", a.role))), (2, _N + "FileName", a.file_name, ()),
            (2, _N + "MimeType", a.mime_type, ()), (2, _N + "Size", str(a.size), ()),
            (2, _N + "Sha256", a.sha256, ()))
    if a.external:
        out.append((2, _N + "ContentRef", a.content_ref, ()))
    else:
        out.append((2, _N + "Content", base64.b64encode(a.content).decode("ascii"), ()))


def _items(env: Envelope) -> list[Item]:
    out: list[Item] = []
    _header_items(out, env.header)
    _body_items(out, env.body)
    if env.attachments:
        out.append((0, _N + "Attachments", None, ()))
        for a in env.attachments:
            _attachment_items(out, a)
    return out


def build_envelope_tree(env: Envelope) -> etree._Element:
    """The envelope as an element tree.

    The elements are listed with their values in document order, and an envelope of a shape already
    built (which elements, in which order) is a copy of that shape's emptied skeleton with the values
    put in: making each element anew (``SubElement``, ~1 us each) was most of the cost of the e-CMS
    letter's native envelope (~50 elements), a copy ~6 us. A new shape is built element by element
    (each made in place: an ElementMaker call makes a document per element and moves it on append)."""
    items = _items(env)
    # (each tag has its one set of attributes: the names need not be in the shape)
    shape = tuple([(depth, tag, text is None) for depth, tag, text, _ in items])
    root = _shapes.copy_of(shape)
    if root is None:
        root = append_items(etree.Element(_N + "Envelope", {"version": "1"}, nsmap={None: ENVELOPE_NS}), items)
        _shapes.keep(shape, root)
        return root
    fill(root, items)
    return root


def build_envelope(env: Envelope) -> bytes:
    """Serialise an envelope (unsigned) as UTF-8 XML bytes."""
    return etree.tostring(build_envelope_tree(env), xml_declaration=True, encoding="UTF-8")
