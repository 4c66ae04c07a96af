"""Writing the native envelope: :mod:`gateway.core.envelope` records -> XML.

:func:`build_envelope` writes an envelope with lxml's element builder (``SubElement``; an envelope
of a shape already built is a copy of that shape's emptied skeleton with its values put in,
:mod:`gateway.core.xmlshapes`; :data:`E`, an ElementMaker, is kept for small documents such as
acknowledgements); it is used by the CLI, the e-CMS mapping, receipts and the tests. Nothing here
formats XML by hand."""

from __future__ import annotations

import base64
import datetime as dt
import re

from lxml import etree
from lxml.builder import ElementMaker

from gateway.core.envelope import Attachment, Body, Envelope, Header, Letter, LetterReference, Notifier, Party
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


# ---- what envelope-v1.xsd says of the values, for the shapes this module writes --------------------------
# Each is the XSD's facet or a *narrower* one (an ASCII NCName, a date-time as ``isoformat`` writes it):
# ``fits_schema`` may say no to a valid envelope (the XSD then decides), never yes to an invalid one.
_AGENCY = re.compile(r"[0-9]{5}|[0-9]{10}")
_MESSAGE_ID = re.compile(r"[A-Za-z0-9._:@\-]{1,128}")
_LIST_NAME = re.compile(r"[a-z0-9][a-z0-9._\-]{0,63}")
_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_CONTENT_REF = re.compile(r"cid:[A-Za-z_][A-Za-z0-9_.\-]{0,99}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+\-]*/[a-z0-9][a-z0-9!#$&^_.+\-]*")
_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{6})?[+-][0-9]{2}:[0-9]{2}")
_MAX_OFFSET = dt.timedelta(hours=14)


def _text(value: str | None, *, optional: bool = False) -> bool:
    """env:Text: 1 to 1000 characters (None: absent, which only an optional element may be)."""
    if value is None:
        return optional
    return 0 < len(value) <= 1000


def _zoned(value: dt.datetime | None) -> bool:
    """env:ZonedDateTime as :func:`_iso` writes it: a zone of whole minutes within +-14:00 (xs:dateTime)."""
    if value is None:
        return True
    offset = value.utcoffset()
    return offset is not None and abs(offset) <= _MAX_OFFSET and _DATE_TIME.fullmatch(value.isoformat()) is not None


def _party_fits(p: Party) -> bool:
    return (_AGENCY.fullmatch(p.agency) is not None and _text(p.given_name, optional=True)
            and _text(p.family_name, optional=True) and _text(p.job_title, optional=True))


def _reference_fits(r: LetterReference) -> bool:
    return _text(r.number) and _text(r.subject, optional=True)


def _letter_fits(b: Letter) -> bool:
    if not (_text(b.number) and _text(b.subject) and _text(b.addressee) and _text(b.signer_name)
            and _text(b.signer_position) and _text(b.sent_at, optional=True)
            and (b.body is None or len(b.body) <= 100_000)
            and len(b.references) <= 100 and len(b.enclosures) <= 100 and len(b.receiver_parties) <= 5000):
        return False
    if not (all(_reference_fits(r) for r in b.references) and all(_text(t) for t in b.enclosures)):
        return False
    if b.sender_party is not None and not _party_fits(b.sender_party):
        return False
    if not all(_party_fits(p) for p in b.receiver_parties):
        return False
    ls = b.legacy_signature
    return ls is None or _text(ls.type_code, optional=True)


def _notifier_fits(b: Notifier) -> bool:
    return (_text(b.letter_number) and _text(b.subject, optional=True) and _text(b.registry_number, optional=True)
            and _zoned(b.registered_at) and _text(b.reason, optional=True))


def _attachment_fits(a: Attachment) -> bool:
    if not (_ID.fullmatch(a.id) and _text(a.file_name) and _MIME.fullmatch(a.mime_type)
            and a.role in ("main", "enclosure") and a.size >= 0):
        return False
    # an inline file's Sha256 is hashlib's hexdigest of it (64 hex digits); a declared one is checked
    return not a.external or (_SHA256.fullmatch(a.sha256) is not None
                              and _CONTENT_REF.fullmatch(a.content_ref) is not None)


def fits_schema(env: Envelope) -> bool:
    """True only if :func:`build_envelope_tree` of ``env`` is valid against envelope-v1.xsd.

    The builder fixes the structure (which elements, in which order, the namespace, ``version="1"``);
    what is left to the XSD are the values and the counts, checked here facet by facet, more narrowly
    where that is simpler. Letters and notifiers only (a receipt says False).
    ``tests/ecms/test_built_fits_schema.py`` generates envelopes at and across every facet's edge and
    holds: whenever this says True, the XSD accepts the built tree.
    """
    h, body = env.header, env.body
    if not (_MESSAGE_ID.fullmatch(h.message_id) and _AGENCY.fullmatch(h.sender) and _zoned(h.created_at)
            and (h.conversation_id is None or _MESSAGE_ID.fullmatch(h.conversation_id))
            and (h.ref_to_message_id is None or _MESSAGE_ID.fullmatch(h.ref_to_message_id))
            and (h.recipients or h.recipient_lists) and len(h.recipients) <= 5000 and len(h.recipient_lists) <= 20
            and all(_AGENCY.fullmatch(r) for r in h.recipients)
            and all(_LIST_NAME.fullmatch(n) for n in h.recipient_lists)):
        return False
    if isinstance(body, Letter):
        if not _letter_fits(body):
            return False
    elif not isinstance(body, Notifier) or not _notifier_fits(body):
        return False
    if not _ID.fullmatch(body.id) or len(env.attachments) > 100:
        return False
    ids = {body.id}
    for a in env.attachments:
        if a.id in ids or not _attachment_fits(a):
            return False
        ids.add(a.id)
    return True
