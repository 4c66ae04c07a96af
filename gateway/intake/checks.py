"""Checking a submitted envelope, in the order that fails cheapest first.

1. size (before reading; again here), 2. hardened parse (and no processing
instructions; at most 100 attachments), 3. XSD (then no attachment declared
larger than the request limit), 4. header:
the sender is the authenticated agency, the message type matches the body,
5. recipients exist in the directory, and the distribution lists it names exist (looked up through
``lists``; a list is not limited in size, explicit recipients are, to the XSD's 5,000), 6. policy (top-secret is never carried),
7. attachments decode and match their declared size and SHA-256, 8. the
author's signature and the signer's authority for the sender (when a verifier
is configured), 9. files sent beside the envelope (multipart/related, see
:mod:`gateway.core.parts`) match the size and SHA-256 that the verified tree
declares for them, and no part is left unreferenced.

Each failure is a :class:`GatewayError` with a stable code and the field.
The result, :class:`CheckedEnvelope`, is what the rest of the gateway works
on: the exact bytes received and the records read from the tree that was
checked (with a verifier: the tree whose signature was verified).

An envelope the gateway builds itself (the e-CMS facade maps a schema-valid
e-CMS letter to records and builds the envelope from them) arrives as a
:class:`BuiltEnvelope`: the bytes together with the tree and the records they
were made from. Parsing those bytes again would only give back that tree, and
reading it again only those records, so both are skipped, and so is the search
for comments and processing instructions (the builder makes neither). The XSD
(it holds limits the e-CMS schema does not, such as a non-empty Subject or at
most 100 references) is skipped only when
:func:`gateway.core.envelope_builder.fits_schema` says every value of the records
fits it (``tests/ecms/test_built_fits_schema.py``: whatever it admits, the XSD
accepts); otherwise the tree is validated and refused as any envelope is. Every
other check above runs on that tree, and the stored bytes are the same. ``tests/ecms/test_built_envelopes.py`` checks that
the two ways through agree on every e-CMS shape it generates.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import structlog
from lxml import etree

from gateway.core import xml
from gateway.core.directory import Directory
from gateway.core.envelope import (
    Attachment,
    Envelope,
    Header,
    Letter,
    MessageType,
    Notifier,
    Receipt,
    Secrecy,
)
from gateway.core.envelope_builder import build_envelope_tree, fits_schema
from gateway.core.envelope_reader import read_attachments, read_envelope
from gateway.core.errors import AuthError, EnvelopeError
from gateway.core.lists import DistributionList, expand
from gateway.core.parts import GENERIC_TYPE, SpooledPart
from gateway.core.sealing import PdfChecker, Verifier
from gateway.core.signing import VERIFIED_CONTENTS
from pki.digests import check_digest
from pki.sigzone import check_signature_zone

SCHEMA = "envelope-v1.xsd"

_BODY_TYPES = {MessageType.LETTER: Letter, MessageType.NOTIFIER: Notifier, MessageType.RECEIPT: Receipt}

#: Looks distribution lists up by name: the ones that exist (``gateway.storage.lists.source``).
ListSource = Callable[[Sequence[str]], Awaitable[Mapping[str, DistributionList]]]

@dataclass(frozen=True)
class CheckedEnvelope:
    raw: bytes
    """The exact bytes received."""
    sha256: bytes
    """SHA-256 of ``raw``."""
    envelope: Envelope
    """Records read from the checked (and, with a verifier, verified) tree."""
    facts: dict[str, Any]
    """What was established: schema_valid, signature facts from the verifier."""
    parts: tuple[SpooledPart, ...] = ()
    """Files received beside the envelope, each checked against its verified Attachment."""
    lists: tuple[DistributionList, ...] = ()
    """The distribution lists the header names (``recipient_lists``), as defined when checked."""

    @property
    def sha256_hex(self) -> str:
        return self.sha256.hex()


class BuiltEnvelope(bytes):
    """The bytes of an envelope the gateway built from :attr:`envelope`, with the tree it serialised.

    It is ``bytes`` (what :meth:`Intake.check` and ``Exchange.submit`` take, what is hashed,
    stored as received and sealed) and :meth:`Intake.check` uses :attr:`tree` and
    :attr:`envelope` instead of parsing and reading the bytes again. Made only by building:
    the three cannot disagree.
    """

    tree: etree._Element
    """The element tree that was serialised (not to be changed)."""
    envelope: Envelope
    """The records the tree was built from."""
    fits_schema: bool
    """:func:`gateway.core.envelope_builder.fits_schema` of the records: the tree is valid against
    envelope-v1.xsd and intake does not validate it again (False: intake runs the XSD and refuses
    as it refuses any envelope)."""

    def __new__(cls, envelope: Envelope) -> BuiltEnvelope:
        tree = build_envelope_tree(envelope)
        # the serialisation of gateway.core.envelope_builder.build_envelope, so the stored bytes are the same
        self = super().__new__(cls, etree.tostring(tree, xml_declaration=True, encoding="UTF-8"))
        self.tree = tree
        self.envelope = envelope
        self.fits_schema = fits_schema(envelope)
        return self


def _refuse_processing_instructions(root: etree._Element) -> None:
    """The schema cannot see processing instructions, yet they travel to every receiver inside
    the bytes the gateway seals (``<?xml-stylesheet?>`` makes a browser fetch and run XSLT)."""
    outside = [*root.itersiblings(etree.ProcessingInstruction, preceding=True),
               *root.itersiblings(etree.ProcessingInstruction)]
    inside = next(root.iter(etree.ProcessingInstruction), None)
    if outside or inside is not None:
        field = "/" if outside or inside is None else xml.named_path(root, inside.getparent())
        raise EnvelopeError("processing instructions are not accepted in an envelope", code="envelope.pi_forbidden",
                            field=field)


#: Most attachments one envelope may carry: the XSD's maxOccurs of Attachments/Attachment (a test keeps
#: them equal), checked first so that the refusal names the limit rather than a schema position.
MAX_ATTACHMENTS = 100


def _attachment_items(root: etree._Element) -> list[etree._Element]:
    """The Attachment elements of the first Attachments child (listed once: both steps below read them)."""
    for container in root[:]:  # (children as a list made in C, see _child)
        if container.tag == _ATTACHMENTS:
            return [el for el in container[:] if el.tag == _ATTACHMENT]
    return []


def _check_attachment_limits(items: list[etree._Element], *, max_bytes: int, max_part_bytes: int,
                             sizes: bool) -> None:
    """``attachment.too_many``; with ``sizes`` (after the XSD), ``attachment.too_large`` for a declared
    Size over the limit: no inline attachment can be larger than the request that carries it, and no
    file beside the envelope (``ContentRef``) larger than one part may be."""
    if len(items) > MAX_ATTACHMENTS:
        raise EnvelopeError(f"{len(items)} attachments, the limit is {MAX_ATTACHMENTS}", code="attachment.too_many",
                            field=f"Attachments/Attachment[{MAX_ATTACHMENTS + 1}]")
    if not sizes:
        return
    for i, a in enumerate(items, start=1):
        limit = max_part_bytes if _child(a, _CONTENT_REF) is not None else max_bytes
        size = _child(a, _SIZE)
        declared = ((size.text if size is not None else None) or "").strip().lstrip("+").lstrip("0") or "0"
        if len(declared) > len(str(limit)) or int(declared) > limit:
            raise EnvelopeError(f"attachment declared as {declared[:40]} bytes, the limit is {limit}",
                                code="attachment.too_large", field=f"Attachments/Attachment[{i}]/Size")


_NS = f"{{{xml.ENVELOPE_NS}}}"
_ENVELOPE = _NS + "Envelope"
_HEADER, _MESSAGE_ID, _SENDER = _NS + "Header", _NS + "MessageId", _NS + "Sender"
_ATTACHMENTS, _ATTACHMENT, _CONTENT_REF, _SIZE = _NS + "Attachments", _NS + "Attachment", _NS + "ContentRef", _NS + "Size"


def _child(parent: etree._Element, tag: str) -> etree._Element | None:
    """``parent.find(tag)`` for a Clark name, without ElementPath (~3 us a call, a few a letter). The
    children are read as ``parent[:]`` (the nodes iteration gives, as a list made in C) and their tags
    compared: a tag-filtered ``iterchildren`` costs ~7k instructions to set up, the list of a handful of
    children and their tags ~2k (callgrind)."""
    for el in parent[:]:
        if el.tag == tag:
            return el
    return None


def _header_text(root: etree._Element, tag: str) -> str | None:
    """``root.findtext("{ns}Header/" + tag)``: the text ("" if it has none) of the first such child of
    the first Header that has one, None when there is none (ElementPath parses the path and walks it
    in Python: ~5 us)."""
    for header in root[:]:  # (see _child)
        if header.tag == _HEADER:
            for el in header[:]:
                if el.tag == tag:
                    return el.text or ""
    return None


def _check_built_attachment_limits(env: Envelope, *, max_bytes: int, max_part_bytes: int) -> None:
    """:func:`_check_attachment_limits` (both steps) on the records a schema-valid built tree was written
    from: its ``Size`` elements are ``str(a.size)`` of a non-negative integer, in the same order."""
    if len(env.attachments) > MAX_ATTACHMENTS:
        raise EnvelopeError(f"{len(env.attachments)} attachments, the limit is {MAX_ATTACHMENTS}",
                            code="attachment.too_many", field=f"Attachments/Attachment[{MAX_ATTACHMENTS + 1}]")
    for i, a in enumerate(env.attachments, start=1):
        limit = max_part_bytes if a.external else max_bytes
        if a.size > limit:
            raise EnvelopeError(f"attachment declared as {str(a.size)[:40]} bytes, the limit is {limit}",
                                code="attachment.too_large", field=f"Attachments/Attachment[{i}]/Size")


class Intake:
    def __init__(self, directory: Directory, *, max_bytes: int, verifier: Verifier | None = None,
                 pdf_checker: PdfChecker | None = None, max_part_bytes: int | None = None,
                 lists: ListSource | None = None) -> None:
        self.directory = directory
        #: Distribution lists by name (``None``: this gateway has none; a letter naming one is refused).
        self.lists = lists
        self.max_bytes = max_bytes
        self.max_part_bytes = max_part_bytes or max_bytes
        self.verifier = verifier
        self.pdf_checker = pdf_checker

    async def check(self, data: bytes, *, agency: str, channel: str = "native",
                    allow_receipts: bool = False,
                    parts: Mapping[str, SpooledPart] | None = None) -> CheckedEnvelope:
        """Check ``data`` (a :class:`BuiltEnvelope`: not parsed nor read again, see the module)."""
        built = data if isinstance(data, BuiltEnvelope) else None
        held: list[etree._Element] = []  # noqa: F841 (kept alive for its proxies, see below)
        if built is None:
            root = xml.parse(data, max_bytes=self.max_bytes)
        elif len(built) > self.max_bytes:
            raise EnvelopeError(f"document is {len(built)} bytes, the limit is {self.max_bytes}",
                                code="envelope.too_large")
        else:
            root = built.tree
        # From here on every log line of this request names the letter (refusals included), so an
        # operator can find it with the id the agency's own system logged.
        structlog.contextvars.bind_contextvars(
            message_id=built.envelope.header.message_id if built is not None
            else _header_text(root, _MESSAGE_ID))
        if built is None:  # (a built tree holds neither: the builder sets only element texts and attributes)
            _refuse_comments(root)
            _refuse_processing_instructions(root)
        if built is not None and built.fits_schema:
            # the records the tree's Attachment elements were written from, in their order: the same refusals
            _check_built_attachment_limits(built.envelope, max_bytes=self.max_bytes,
                                           max_part_bytes=self.max_part_bytes)
            check_signature_zone(root, seal=False)
        else:
            items = _attachment_items(root)  # the XSD and the zone check change nothing: listed once
            _check_attachment_limits(items, max_bytes=self.max_bytes, max_part_bytes=self.max_part_bytes,
                                     sizes=False)
            xml.validate(SCHEMA, root)
            if self.verifier is not None:
                # Every element's proxy, made once and held until the verifier is done: the zone check, the
                # reader and the verifier (pki.verify.validate_author, which lists them again) visit the same
                # elements, and lxml hands back a living proxy where it would make (and free) a new one.
                held = list(root.iter(etree.Element))
            # what the schemas leave open in Signatures, signed or not; no seal yet (it is added after intake)
            check_signature_zone(root, seal=False)
            _check_attachment_limits(items, max_bytes=self.max_bytes, max_part_bytes=self.max_part_bytes,
                                     sizes=True)
        if root.tag != _ENVELOPE:
            raise EnvelopeError("the document is not an Envelope", code="envelope.schema_invalid", field="/")
        facts: dict[str, Any] = {"schema_valid": True}
        sender = _header_text(root, _SENDER)
        if sender != agency:
            raise AuthError(f"agency {agency} cannot send as {sender}", code="auth.wrong_sender",
                            field="Header/Sender")
        # The directory and policy first: they cost microseconds, while the signature check may reach
        # the network for revocation data. They read the tree as received; should the verifier hand
        # back another tree (the one its signature covers), that one is read and checked again.
        # (Attachments are read after the signature: a letter with no signature where one is required
        # is refused as unsigned, whatever its attachments.)
        env = built.envelope if built is not None else read_envelope(root, attachments=False)
        self._check_policy(env, allow_receipts=allow_receipts)
        lists = await self._lists(env.header, sender)
        decoded: Mapping[str, bytes] = {}
        if self.verifier is not None:
            verified, signature_facts = await self.verifier(data, root, sender, channel=channel)
            decoded = VERIFIED_CONTENTS.take(verified)  # at once: nothing is left behind by a refusal below
            facts.update(signature_facts)
            if verified is not root:
                root, env = verified, read_envelope(verified)
                self._check_policy(env, allow_receipts=allow_receipts)
                lists = await self._lists(env.header, sender)
        del held  # the verifier is done: the proxies go with the tree's other references
        if built is None and not env.attachments:
            env = replace(env, attachments=read_attachments(root, decoded))
        h = env.header
        checked_parts = _match_parts(env.attachments, parts or {})
        if self.pdf_checker is not None:
            main = next((a for a in env.attachments if a.role == "main" and a.mime_type == "application/pdf"), None)
            if main is not None:
                content = main.content
                if main.external:  # PAdES validation needs the file in memory; only this once
                    content = next(p for p in checked_parts if p.content_id == main.id).read_bytes()
                facts.update(await self.pdf_checker(content, h.sender))
        return CheckedEnvelope(raw=bytes(data), sha256=hashlib.sha256(data).digest(), envelope=env, facts=facts,
                               parts=checked_parts, lists=lists)

    async def _lists(self, h: Header, sender: str) -> tuple[DistributionList, ...]:
        """The named distribution lists, in order; ``envelope.unknown_recipient`` naming the
        ``RecipientList`` (the same code as an unknown agency: both are recipients that do not exist),
        also when the lists are all the recipients and have no active member but the sender
        (a letter to nobody is not accepted)."""
        names = h.recipient_lists
        if not names:
            return ()
        found = await self.lists(names) if self.lists is not None else {}
        for i, name in enumerate(names, start=1):
            if name not in found:
                raise EnvelopeError(f"distribution list {name} does not exist at this gateway",
                                    code="envelope.unknown_recipient",
                                    field=f"Header/Recipients/RecipientList[{i}]")
        lists = tuple(found[name] for name in names)
        if not h.recipients and all(set(expand(x, self.directory)) <= {sender} for x in lists):
            raise EnvelopeError(f"distribution list {names[0]} has no active member: the letter would reach nobody",
                                code="envelope.unknown_recipient", field="Header/Recipients/RecipientList[1]")
        return lists

    def _check_policy(self, env: Envelope, *, allow_receipts: bool) -> None:
        """What the envelope may be, whoever signed it: its type, its recipients, its secrecy."""
        h = env.header
        if not isinstance(env.body, _BODY_TYPES[h.message_type]):
            raise EnvelopeError(f"MessageType {h.message_type.value} does not match the body",
                                code="envelope.type_mismatch", field="Header/MessageType")
        if h.message_type is MessageType.RECEIPT and not allow_receipts:
            raise EnvelopeError("receipts are issued by the gateway, not submitted",
                                code="envelope.receipt_not_submittable", field="Header/MessageType")
        for i, code in enumerate(h.recipients, start=1):
            agency_rec = self.directory.get(code)
            if agency_rec is None or not agency_rec.active:
                raise EnvelopeError(f"recipient {code} is not in the directory",
                                    code="envelope.unknown_recipient",
                                    field=f"Header/Recipients/Recipient[{i}]")
        letter = env.letter
        if letter is not None and letter.secrecy is Secrecy.TOP_SECRET:
            raise EnvelopeError("top-secret (ลับที่สุด) letters are never carried electronically",
                                code="policy.top_secret", field="Letter/Secrecy")
        if env.notifier is not None and env.notifier.kind.value == "accepted" and not env.notifier.registry_number:
            raise EnvelopeError("an accepted notifier needs the registry number",
                                code="envelope.registry_number_missing", field="Notifier/RegistryNumber")


def _refuse_comments(root: etree._Element) -> None:
    """Refuse comments anywhere in the envelope.

    Canonical XML without comments (what signatures cover) ignores them, but
    they split text for anyone who reads the stored bytes: a signed Subject
    ``ขอเชิญ<!---->ประชุม`` verifies, yet a receiver's parser reads ``ขอเชิญ``.
    An official letter has no use for them, so the bytes that travel say
    exactly what was signed. (Processing instructions: ``envelope.pi_forbidden``.)
    """
    inside = next(root.iter(etree.Comment), None)
    outside = [*root.itersiblings(etree.Comment, preceding=True), *root.itersiblings(etree.Comment)]
    if inside is not None or outside:
        field = "/" if inside is None else xml.named_path(root, inside.getparent())
        raise EnvelopeError("a comment is not accepted in an envelope (it would hide text from what is signed)",
                            code="envelope.comment_forbidden", field=field)


def _match_parts(attachments: Sequence[Attachment], parts: Mapping[str, SpooledPart]) -> tuple[SpooledPart, ...]:
    """Every external attachment has its part, of the declared (signed) size and SHA-256; no part is extra.
    The parts come back typed with their Attachment's signed ``MimeType``: the only type stored and sent
    on. A part whose own Content-Type names another type is refused (see :mod:`gateway.core.parts`).

    Codes: ``attachment.part_missing``, ``attachment.digest_mismatch`` (pki.digests),
    ``attachment.type_mismatch``, ``attachment.part_unreferenced``.
    """
    matched = []
    for i, a in enumerate(attachments, start=1):
        if not a.external:
            continue
        where = f"Attachments/Attachment[{i}]"
        p = parts.get(a.id)
        if p is None:
            raise EnvelopeError(f"attachment {a.id} refers to part <{a.id}>, which the request does not carry",
                                code="attachment.part_missing", field=f"{where}/ContentRef")
        check_digest(where, size=p.size, sha256_hex=p.sha256, declared_size=a.size, declared_sha256=a.sha256)
        if p.content_type not in ("", GENERIC_TYPE, a.mime_type):
            raise EnvelopeError(f"part <{a.id}> is sent as {p.content_type}, its signed MimeType is {a.mime_type}",
                                code="attachment.type_mismatch", field=f"part <{a.id}>/Content-Type")
        matched.append(replace(p, content_type=a.mime_type))
    extra = sorted(set(parts) - {p.content_id for p in matched})
    if extra:
        raise EnvelopeError(f"part <{extra[0]}> is not referenced by any Attachment's ContentRef",
                            code="attachment.part_unreferenced", field=f"part <{extra[0]}>")
    return tuple(matched)
