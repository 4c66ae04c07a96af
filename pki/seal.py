"""The gateway seal (``Id="GatewaySeal"``): made over what the gateway forwards, checked by receivers.

The seal has detached references to the header, the body, every attachment
*and the author's ds:Signature element*, so a receiver verifies the path (who
forwarded what, with which routing) as well as the author, and nobody can swap
the author's signature underneath. It is a lean signature
(:mod:`pki.xmlsig_lean`) unless XAdES is asked for (then signxml makes it, as
:mod:`pki.sign` does). :func:`verify_sealed` checks it pinned to the gateway's
certificate, and the author's signature as :mod:`pki.verify` does.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import NamedTuple

from cryptography import x509
from lxml import etree

from pki.errors import PkiError, SignatureError, StructureError
from pki.keys import Signer
from pki.sign import sign_detached
from pki.trust import TrustStore
from pki.verify import ValidationReport, VerifiedEnvelope, check_signature, validate_author
from pki.xmlparse import make_parser, parse
from pki.xmlsig_lean import lean_signature, lean_signature_xml, serialize_with
from pki.xmlsig_parts import (
    AUTHOR_SIGNATURE_ID,
    DS,
    SEAL_ID,
    E,
    author_signature,
    ensure_unique_id,
    envelope_parts,
    id_index,
    parse_for_verify,
    serialize,
    signatures_container,
)

__all__ = ["SealedEnvelope", "seal_envelope", "seal_tree", "verify_sealed"]


class SealedEnvelope(NamedTuple):
    """Result of :func:`verify_sealed`: the author's verified envelope and the seal's verdict."""

    author: VerifiedEnvelope
    #: The gateway seal verifies with the pinned gateway certificate and covers header, body,
    #: attachments and the author's signature.
    seal_ok: bool
    #: Why the seal failed (None when it holds).
    seal_failure: PkiError | None


def seal_envelope(envelope_bytes: bytes, seal_signer: Signer, *, xades: bool = False) -> bytes:
    """Add the gateway seal (``Id="GatewaySeal"``) after the author's signature.

    The seal covers the header (given ``Id="Header"`` if it has none), the
    body, every attachment and the author's ``ds:Signature`` element (given
    ``Id="AuthorSignature"`` if it has none). Call it on the verified bytes
    (:attr:`pki.verify.VerifiedEnvelope.raw`).
    """
    return seal_tree(parse(envelope_bytes), seal_signer, xades=xades)


def seal_tree(root: etree._Element, seal_signer: Signer, *, xades: bool = False,
              ids: Mapping[str, list[etree._Element]] | None = None,
              exclusive_sha256: Mapping[str, bytes] | None = None, keep_seal: bool = True) -> bytes:
    """:func:`seal_envelope` of the tree already parsed from the verified bytes, without parsing them again:
    the tree :func:`pki.verify.verify_envelope` verified (:attr:`pki.verify.VerifiedEnvelope.root`) is the
    one sealed, in place: the ids the seal needs are set, ``env:Signatures`` made if missing, and the seal
    added. The usual seal is written straight into the bytes returned
    (:func:`pki.xmlsig_lean.lean_signature_xml`) and those bytes read back into the tree.

    ``ids``: the tree's id index as its verifier built it (:attr:`pki.verify.VerifiedEnvelope.ids`),
    instead of a walk of the whole tree for a new one (~15-28 us a letter); copied, not changed. Every
    element the seal references must then be the one its id names in it (else ``StructureError``), so an
    index of another tree is refused rather than signed over. ``exclusive_sha256``: the digests its verifier
    checked for this tree's elements (:attr:`pki.verify.VerifiedEnvelope.exclusive_sha256`; the body's and
    attachments' are the seal's too: nothing in them changes between the two), with ``ids`` only.
    ``keep_seal=False``: the caller only wants the bytes (the gateway's sealer, which drops the tree): a seal
    written as bytes is not read back into the tree (0.19M instructions a letter); the bytes are the same."""
    parts = envelope_parts(root)
    if parts.header is None:
        raise StructureError("the envelope has no Header", field="Header")
    if parts.signatures is not None and any(s.get("Id") == SEAL_ID for s in parts.signatures):
        raise SignatureError("the envelope is already sealed", code="signature.sealed", field="Signatures")
    index = id_index(root) if ids is None else dict(ids)
    if not parts.header.get("Id"):
        ensure_unique_id(index, "Header", parts.header)
        parts.header.set("Id", "Header")
        index["Header"] = [parts.header]
    covered = [parts.header, parts.body, *parts.attachments]
    author = author_signature(parts)
    if author is not None:
        signature = author[1]
        if not signature.get("Id"):
            ensure_unique_id(index, AUTHOR_SIGNATURE_ID, signature)
            signature.set("Id", AUTHOR_SIGNATURE_ID)
            index[AUTHOR_SIGNATURE_ID] = [signature]
        covered.append(signature)
    references = [f"#{el.get('Id')}" for el in covered]
    if xades:
        sign_detached(parts, seal_signer, references, signature_id=SEAL_ID, xades=True)
        return serialize(root)
    targets = []
    for uri, element in zip(references, covered, strict=True):
        holders = index.get(uri[1:], [])
        if len(holders) != 1:
            raise StructureError(f"Id {uri[1:]!r} must occur exactly once, found {len(holders)}", field=uri)
        if holders[0] is not element:
            raise StructureError(f"Id {uri[1:]!r} names another element than the one sealed", field=uri)
        targets.append((uri, element))
    if SEAL_ID in index:
        raise StructureError(f"Id {SEAL_ID!r} is already used in the envelope", field=f"@Id={SEAL_ID}")
    container = signatures_container(parts)
    signature = lean_signature_xml(seal_signer, targets, signature_id=SEAL_ID,
                                   known=exclusive_sha256 if ids is not None else None)
    written = serialize_with(root, container, signature) if signature is not None else None
    if written is not None and signature is not None:
        if keep_seal:  # the tree gets the very seal written (read back: ~5 us, where making it as a tree costs ~20)
            container.append(etree.fromstring(signature, _parser()))
        return written
    lean_signature(seal_signer, targets, signature_id=SEAL_ID, parent=container)
    return serialize(root)


_local = threading.local()


def _parser() -> etree.XMLParser:
    """This thread's parser for the seal just written (lxml's parsers are not to be shared between threads)."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = make_parser()
    return parser


async def verify_sealed(envelope_bytes: bytes, trust: TrustStore, *, gateway_cert: x509.Certificate,
                        sender: str | None = None, allow_sha1: bool = False,
                        require_signature: bool = True) -> SealedEnvelope:
    """Verify a forwarded envelope: the gateway seal (pinned to ``gateway_cert``) and the author's signature.

    Raises the author's failure like :func:`pki.verify.verify_envelope`; the seal's
    verdict is returned (``seal_ok``, ``seal_failure``) so a receiver can tell
    "forged path" from "bad letter". ``sender`` defaults to the header's
    Sender, which the seal covers.
    """
    raw = bytes(envelope_bytes)
    root = parse_for_verify(raw)
    parts = envelope_parts(root)
    seal_failure: PkiError | None = None
    seals = [s for s in parts.signatures.findall(DS + "Signature") if s.get("Id") == SEAL_ID] \
        if parts.signatures is not None else []
    if len(seals) != 1 or parts.header is None:
        seal_failure = SignatureError("the envelope carries no gateway seal", code="signature.missing",
                                      field="Signatures")
    else:
        author = author_signature(parts)
        required = [parts.header, parts.body, *parts.attachments] + ([author[1]] if author else [])
        check = check_signature(parts, seals[0], id_index(root), required=required, allow_sha1=False,
                                report=ValidationReport(), pinned_cert=gateway_cert)
        seal_failure = check.report.failure
    if sender is None:
        sender_el = parts.header.find(E + "Sender") if parts.header is not None else None
        sender = (sender_el.text or "").strip() if sender_el is not None else ""
    report, verified = await validate_author(raw, root, trust, sender=sender, allow_sha1=allow_sha1,
                                             require_signature=require_signature)
    if verified is None or not report.ok:
        raise report.failure or SignatureError("the envelope did not verify")
    return SealedEnvelope(verified, seal_failure is None, seal_failure)
