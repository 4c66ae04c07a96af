"""Checking a submitted envelope, in the order that fails cheapest first.

1. size (before reading; again here), 2. hardened parse (and no processing
instructions; at most 100 attachments), 3. XSD (then no attachment declared
larger than the request limit), 4. header:
the sender is the authenticated agency, the message type matches the body,
5. recipients exist in the directory, 6. policy (top-secret is never carried),
7. attachments decode and match their declared size and SHA-256, 8. the
author's signature and the signer's authority for the sender (when a verifier
is configured).

Each failure is a :class:`GatewayError` with a stable code and the field.
The result, :class:`CheckedEnvelope`, is what the rest of the gateway works
on: the exact bytes received and the records read from the tree that was
checked (with a verifier: the tree whose signature was verified).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional

from lxml import etree

from gateway import xml
from gateway.directory import Directory
from gateway.envelope import Envelope, Letter, MessageType, Notifier, Receipt, Secrecy, read_envelope
from gateway.errors import AuthError, EnvelopeError

SCHEMA = "envelope-v1.xsd"

_BODY_TYPES = {MessageType.LETTER: Letter, MessageType.NOTIFIER: Notifier, MessageType.RECEIPT: Receipt}

#: ``async verify(raw, root, sender, *, channel) -> (verified_root, facts)``; raises a GatewayError/PkiError.
Verifier = Callable[[bytes, etree._Element, str], Awaitable[tuple[etree._Element, dict[str, Any]]]]


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

    @property
    def sha256_hex(self) -> str:
        return self.sha256.hex()


def _refuse_processing_instructions(root: etree._Element) -> None:
    """The schema cannot see processing instructions, yet they travel to every receiver inside
    the bytes the gateway seals (``<?xml-stylesheet?>`` makes a browser fetch and run XSLT)."""
    outside = [*root.itersiblings(etree.ProcessingInstruction, preceding=True),
               *root.itersiblings(etree.ProcessingInstruction)]
    inside = next(root.iter(etree.ProcessingInstruction), None)
    if outside or inside is not None:
        field = "/" if outside else xml.named_path(root, inside.getparent())
        raise EnvelopeError("processing instructions are not accepted in an envelope", code="envelope.pi_forbidden",
                            field=field)


#: Most attachments one envelope may carry: the XSD's maxOccurs of Attachments/Attachment (a test keeps
#: them equal), checked first so that the refusal names the limit rather than a schema position.
MAX_ATTACHMENTS = 100


def _check_attachment_limits(root: etree._Element, *, max_bytes: int, sizes: bool) -> None:
    """``attachment.too_many``; with ``sizes`` (after the XSD), ``attachment.too_large`` for a declared
    Size over the request limit: no attachment can be larger than the request that carries it."""
    ns = f"{{{xml.ENVELOPE_NS}}}"
    container = root.find(f"{ns}Attachments")
    if container is None:
        return
    items = container.findall(f"{ns}Attachment")
    if len(items) > MAX_ATTACHMENTS:
        raise EnvelopeError(f"{len(items)} attachments, the limit is {MAX_ATTACHMENTS}", code="attachment.too_many",
                            field=f"Attachments/Attachment[{MAX_ATTACHMENTS + 1}]", status=413)
    if not sizes:
        return
    for i, a in enumerate(items, start=1):
        declared = (a.findtext(f"{ns}Size") or "").strip().lstrip("+").lstrip("0") or "0"
        if len(declared) > len(str(max_bytes)) or int(declared) > max_bytes:
            raise EnvelopeError(f"attachment declared as {declared[:40]} bytes, the limit is {max_bytes}",
                                code="attachment.too_large", field=f"Attachments/Attachment[{i}]/Size", status=413)


class Intake:
    def __init__(self, directory: Directory, *, max_bytes: int, verifier: Optional[Verifier] = None,
                 pdf_checker=None) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.verifier = verifier
        self.pdf_checker = pdf_checker

    async def check(self, data: bytes, *, agency: str, channel: str = "native",
                    allow_receipts: bool = False) -> CheckedEnvelope:
        root = xml.parse(data, max_bytes=self.max_bytes)
        _refuse_processing_instructions(root)
        _check_attachment_limits(root, max_bytes=self.max_bytes, sizes=False)
        xml.validate(SCHEMA, root)
        _check_attachment_limits(root, max_bytes=self.max_bytes, sizes=True)
        if root.tag != f"{{{xml.ENVELOPE_NS}}}Envelope":
            raise EnvelopeError("the document is not an Envelope", code="envelope.schema_invalid", field="/")
        facts: dict[str, Any] = {"schema_valid": True}
        sender = root.findtext(f"{{{xml.ENVELOPE_NS}}}Header/{{{xml.ENVELOPE_NS}}}Sender")
        if sender != agency:
            raise AuthError(f"agency {agency} cannot send as {sender}", code="auth.wrong_sender",
                            field="Header/Sender", status=403)
        if self.verifier is not None:
            root, signature_facts = await self.verifier(data, root, sender, channel=channel)
            facts.update(signature_facts)
        env = read_envelope(root)
        h = env.header
        if not isinstance(env.body, _BODY_TYPES[h.message_type]):
            raise EnvelopeError(f"MessageType {h.message_type.value} does not match the body",
                                code="envelope.type_mismatch", field="Header/MessageType", status=422)
        if h.message_type is MessageType.RECEIPT and not allow_receipts:
            raise EnvelopeError("receipts are issued by the gateway, not submitted",
                                code="envelope.receipt_not_submittable", field="Header/MessageType", status=422)
        for i, code in enumerate(h.recipients, start=1):
            agency_rec = self.directory.get(code)
            if agency_rec is None or not agency_rec.active:
                raise EnvelopeError(f"recipient {code} is not in the directory",
                                    code="envelope.unknown_recipient",
                                    field=f"Header/Recipients/Recipient[{i}]", status=422)
        letter = env.letter
        if letter is not None and letter.secrecy is Secrecy.TOP_SECRET:
            raise EnvelopeError("top-secret (ลับที่สุด) letters are never carried electronically",
                                code="policy.top_secret", field="Letter/Secrecy", status=422)
        if env.notifier is not None and env.notifier.kind.value == "accepted" and not env.notifier.registry_number:
            raise EnvelopeError("an accepted notifier needs the registry number",
                                code="envelope.registry_number_missing", field="Notifier/RegistryNumber",
                                status=422)
        if self.pdf_checker is not None:
            main = next((a for a in env.attachments if a.role == "main" and a.mime_type == "application/pdf"), None)
            if main is not None:
                facts.update(await self.pdf_checker(main.content, h.sender))
        return CheckedEnvelope(raw=bytes(data), sha256=hashlib.sha256(data).digest(), envelope=env, facts=facts)
