"""Writing the native envelope: :mod:`gateway.core.envelope` records -> XML.

:func:`build_envelope` writes an envelope with lxml's element builder
(``SubElement``; :data:`E`, an ElementMaker, is kept for small documents such as
acknowledgements); it is used by the CLI, the e-CMS mapping, receipts and the
tests. Nothing here formats XML by hand.
"""

from __future__ import annotations

import base64
import datetime as dt

from lxml import etree
from lxml.builder import ElementMaker

from gateway.core.envelope import Attachment, Body, Envelope, Header, Letter, Notifier, Party
from gateway.core.xml import ENVELOPE_NS

E = ElementMaker(namespace=ENVELOPE_NS, nsmap={None: ENVELOPE_NS})


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
    for name in h.recipient_lists:
        _add(recipients, "RecipientList", name)
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
            _add_opt(legacy, "Signature",
                     base64.b64encode(ls.signature).decode("ascii") if ls.signature else None)
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
